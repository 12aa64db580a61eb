"""`solve`: node voltages of a network with some nodes held, the one front door to every solver.

A linear network (every edge a resistor) is solved by superposition: one call of a linear
solver (`_solver`) for its responses to 1 V at each fixed node (`unit_rhs`), superposed for
every example. A network with nonlinear `Elements` is solved per example by damped Newton
(`_nonlinear.Newton`), each step a call of its linear solver. `solver_for` says which solver a
call uses on a network. This module sits above both (`_nonlinear` is built on `_solver`, which
imports neither).
"""

from __future__ import annotations

import warnings

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from ._checks import check_conductances, check_fixed_nodes, check_no_floating, is_concrete
from ._network import Network
from ._nonlinear import Newton, boundary_of
from ._results import RESULTS, Failure, SolverError, describe, failed, first_failure
from ._solver import AbstractSolver, Auto, CG, Dense, SolveInfo
from ._system import free_mask, laplacian_apply


_METHODS = {"auto": Auto, "dense": Dense, "cg": CG}


def Solver(method: str = "auto", *, rtol=None, atol=0.0, max_steps=None, dense_max_nodes=200, refine=1,
           forward_rtol=None, residual_every=50, newton_steps=50) -> AbstractSolver:
    """Deprecated (for one release): the solver objects `jn.Auto`, `jn.Dense`, `jn.CG` and
    `jn.Newton` replace it. Returns the solver the old `jn.Solver(method, ...)` described:
    `Auto(...)`, `Dense(...)` or `CG(...)` with the same fields, in a `Newton` when
    `newton_steps` is not its default 50."""
    warnings.warn("jn.Solver is deprecated: use the solver objects jn.Auto, jn.Dense, jn.CG, jn.CGThenDense "
                  "and jn.Newton (e.g. jn.Solver('cg', rtol=1e-7) is jn.CG(rtol=1e-7)).", DeprecationWarning,
                  stacklevel=2)
    if method not in _METHODS:
        raise ValueError(f"method must be 'auto', 'dense' or 'cg'; got {method!r}.")
    fields = dict(rtol=rtol, atol=atol, max_steps=max_steps, dense_max_nodes=dense_max_nodes, refine=refine,
                  forward_rtol=forward_rtol, residual_every=residual_every)
    cls = _METHODS[method]
    linear = cls(**{name: value for name, value in fields.items() if name in cls.__dataclass_fields__})
    return linear if newton_steps == 50 else Newton(linear, rtol=rtol, atol=atol, max_steps=newton_steps)


def solver_for(net: Network, solver: AbstractSolver | None = None, method=None) -> AbstractSolver:
    """The solver a call with `solver=` (and the deprecated `method=`) uses on `net`.

    None is `Auto()`. A network with elements takes a `Newton`: a linear solver given there
    becomes `Newton(linear=solver, rtol=solver.rtol, atol=solver.atol)`. A network of
    resistors takes a linear solver: a `Newton` given there gives its `linear`. `method=`
    (``"auto"``, ``"dense"``, ``"cg"`` or a solver object) is the deprecated name of
    `solver=`, kept for one release.
    """
    if method is not None:
        solver = solver_of_method(method, solver)
    if solver is None:
        solver = Auto()
    if not isinstance(solver, AbstractSolver):
        raise ValueError(f"solver must be a jaxnet solver object (jn.Auto(), jn.Dense(), jn.CG(), jn.CGThenDense(), "
                         f"jn.Newton()); got {solver!r}.")
    if net.linear:
        return solver.linear if isinstance(solver, Newton) else solver
    if isinstance(solver, Newton):
        return solver
    return Newton(solver, rtol=getattr(solver, "rtol", None), atol=getattr(solver, "atol", 0.0))


def solver_of_method(method, solver=None, warn: bool = True) -> AbstractSolver:
    """The solver object the deprecated `method=` (a word or an object) names; it warns
    (`DeprecationWarning`, at the caller of the caller) unless `warn` is False, and refuses
    both `method=` and `solver=` given."""
    if warn:
        warnings.warn("method= is deprecated: pass a solver object as solver= (jn.Auto(), jn.Dense(), jn.CG(), "
                      "jn.CGThenDense(), jn.Newton()).", DeprecationWarning, stacklevel=4)
    if solver is not None:
        raise ValueError("pass solver= (method= is its deprecated name), not both.")
    if isinstance(method, str):
        if method not in _METHODS:
            raise ValueError(f"method must be 'auto', 'dense', 'cg' or a solver object; got {method!r}.")
        method = _METHODS[method]()
    return method


def unit_rhs(net: Network, k: Float[Array, " edges"], free, nodes: Int[Array, " cols"]):
    """Right-hand sides whose solutions are the responses to 1 V at each fixed node in `nodes`.

    Column `j` is `e_j - M L e_j` with `e_j` the indicator of `nodes[j]`: fixed node `nodes[j]`
    at 1 V, every other fixed node at 0 V.
    """
    e = jnp.zeros((net.n_nodes, nodes.shape[0]), k.dtype).at[nodes, jnp.arange(nodes.shape[0])].set(1)
    return e - free[:, None] * laplacian_apply(net, k, e)


def solve(
    net: Network,
    conductances: Float[ArrayLike, " edges"],
    fixed_nodes: Int[ArrayLike, " fixed"],
    fixed_values: Float[ArrayLike, "*examples fixed"],
    *,
    solver: AbstractSolver | None = None,
    return_info: bool = False,
    method=None,
) -> Float[Array, "*examples nodes"] | tuple[Float[Array, "*examples nodes"], SolveInfo]:
    """Node voltages of a resistor network with some nodes held at given voltages.

    Fixed nodes hold `fixed_values`; every other node obeys Kirchhoff's current law — the
    state that minimizes the dissipated power `sum_e k_e (ΔV_e)²`. All examples (leading
    axes of `fixed_values`) share one factorization: the network is solved once per fixed
    node (its response to 1 V there) and the examples are superposed.

    A network with nonlinear `Elements` (diodes, transistors; `Network.with_elements`) is
    solved per example by damped Newton on its co-content, each step one solve of the same
    linear system with the elements' small-signal conductances; `conductances` are then the
    elements' parameters. Newton stops when every free node's current imbalance is within
    its `rtol` of the current through the node (plus `atol`), and not converging within
    `Newton.max_steps` iterations is an error that names the imbalance reached.

    **Arguments:**

    - `net`: the `Network`.
    - `conductances`: `(E,)` edge conductances (siemens, or any consistent unit), `>= 0`.
    - `fixed_nodes`: int `(F,)` distinct node ids held at given voltages (at least one).
    - `fixed_values`: `(..., F)` voltages at `fixed_nodes` (volts); leading axes are examples.
    - `solver`: a solver object, default `jn.Auto()` (dense Cholesky up to 200 nodes, CG
      above), or e.g. `jn.Dense()`, `jn.CG(rtol=1e-7)`; `jn.Newton(...)` for a network with
      elements (see `solver_for`).
    - `return_info`: also return the solve's `SolveInfo` (its `result` says why a solve
      failed, under `jit` too), and raise nothing for a failed solve.
    - `method`: deprecated name of `solver` (also ``"auto"``, ``"dense"``, ``"cg"``).

    **Returns:** `(..., N)` node voltages (volts), same leading axes as `fixed_values`; with
    `return_info`, `(voltages, info)`.

    **Errors:** called with concrete arrays, bad input raises `ValueError` (wrong shapes,
    negative or non-finite conductances, fixed node out of range or repeated, no fixed node,
    a floating node), and a solve that fails its checks (its true residual above the
    solver's tolerance, a vanishing pivot, a non-finite result) raises `jn.SolverError`
    with the residual reached. Under your own `jit`/`vmap` nothing can raise (see
    `jn.RESULTS`): a failed solve's voltages are NaN, never a plausible wrong number.

    Differentiable (`grad`, `jvp`, `vmap`) in `conductances` and `fixed_values`; the
    derivative is an adjoint solve with the same factorization (with nonlinear elements, by
    implicit differentiation at the solution: one adjoint solve, reverse mode).

    ```python
    net = jn.Network.from_edges([[0, 1], [1, 2]])
    V = jn.solve(net, jnp.array([1.0, 1.0]), jnp.array([0, 2]), jnp.array([1.0, 0.0]))
    # V == [1.0, 0.5, 0.0]
    ```
    """
    fixed_nodes = jnp.asarray(fixed_nodes)
    fixed_values = jnp.asarray(fixed_values)
    k = jnp.asarray(conductances)
    if k.ndim != 1 or k.shape[0] != net.n_edges:
        raise ValueError(
            f"conductances must have shape ({net.n_edges},) (one per edge); got {k.shape}. "
            "Batch over networks or conductances with jax.vmap."
        )
    if fixed_nodes.ndim != 1 or fixed_nodes.shape[0] == 0:
        raise ValueError(
            f"fixed_nodes must be a non-empty 1-D int array; got shape {fixed_nodes.shape}. "
            "At least one node must be held at a given voltage (e.g. ground)."
        )
    if fixed_values.ndim == 0 or fixed_values.shape[-1] != fixed_nodes.shape[0]:
        raise ValueError(
            f"fixed_values must have shape (..., {fixed_nodes.shape[0]}) to match fixed_nodes; "
            f"got {fixed_values.shape}."
        )
    if is_concrete(k, fixed_nodes, fixed_values, net.senders):
        check_conductances(net, k)
        check_fixed_nodes(net, fixed_nodes)
        if not np.all(np.isfinite(np.asarray(fixed_values))):
            raise ValueError("fixed_values contains non-finite voltages.")
        check_no_floating(net, k, fixed_nodes)
    voltages, info = _solve_checked(net, k, fixed_nodes, fixed_values, solver_for(net, solver, method))
    if return_info:
        return voltages, info
    if is_concrete(voltages) and bool(failed(info.result)):
        raise SolverError("jaxnet.solve: " + describe(Failure(
            info.result, jnp.int32(-1), info.residual, info.tolerance, jnp.min(k), jnp.max(k), jnp.int32(-1))))
    return voltages


@eqx.filter_jit
def _solve_checked(net, k, fixed_nodes, fixed_values, solver):
    """`solve` past its Python-time checks, compiled once per shape: `(voltages, SolveInfo)`."""
    dtype = jnp.result_type(k.dtype, fixed_values.dtype, float)
    k = k.astype(dtype)
    bad_k = ~jnp.all(jnp.isfinite(k)) | jnp.any(k < 0)
    bad_values = ~jnp.all(jnp.isfinite(fixed_values))
    free = free_mask(net, fixed_nodes, dtype)
    if not net.linear:
        flat = fixed_values.reshape(-1, fixed_nodes.shape[0])
        states, info = solver.solve(net, k, free, boundary_of(net, fixed_nodes, flat, dtype))
        voltages = states.reshape(fixed_values.shape[:-1] + (net.n_nodes,))
    else:
        response, info, _ = solver.solve(net, k, free, unit_rhs(net, k, free, fixed_nodes))
        voltages = fixed_values.astype(dtype) @ response.T
    result = first_failure(RESULTS.where(bad_k, RESULTS.bad_conductance, RESULTS.successful),
                           RESULTS.where(bad_values, RESULTS.nonfinite, RESULTS.successful), info.result)
    info = SolveInfo(jnp.max(info.iterations), jnp.max(info.residual), info.tolerance, result)
    return jnp.where(bad_k | bad_values, jnp.nan, voltages), info
