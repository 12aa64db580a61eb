"""The one Kirchhoff solver.

Every state in jaxnet (free, clamped, the loss and its gradient) comes from `solve_system`:

    A(k) X = B,    A(k) = M L(k) M + (I - M),

where `L(k) = Bᵀ diag(k) B` is the weighted graph Laplacian (`B` the incidence matrix) and
`M = diag(free)` masks out the fixed nodes, whose rows become identity. `A` is symmetric
positive definite exactly when every free node has a path of positive conductance to a fixed
node. Columns of `X` are node-voltage fields; at fixed nodes they equal the right-hand side.

Two interchangeable ways to solve it:

- ``"dense"``: assemble `A` (N x N), one Cholesky factorization, triangular solves for all
  right-hand sides at once. Best for small and medium networks.
- ``"cg"``: matrix-free Jacobi-preconditioned conjugate gradients on the incidence structure
  (O(E) memory), all right-hand sides advanced together, warm-startable. For large networks.

``method="auto"`` picks ``"dense"`` for `n_nodes <= DENSE_MAX_NODES` and ``"cg"`` above.

Both are wrapped in `jax.lax.custom_linear_solve` with the matrix-free `A(k)` as the linear
map, so derivatives (with respect to conductances and right-hand sides) are an adjoint solve
with the same factorization (dense) or another CG solve (cg) — never differentiation through
the factorization or the CG iterations.
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, ArrayLike, Float, Int

from ._checks import check_conductances, check_fixed_nodes, check_no_floating, is_concrete
from ._network import Network

Method = Literal["auto", "dense", "cg"]

#: `method="auto"` uses the dense Cholesky path up to this many nodes and CG above it.
DENSE_MAX_NODES = 200


def resolve_method(net: Network, method: Method) -> Literal["dense", "cg"]:
    """Turn ``"auto"`` into ``"dense"`` or ``"cg"`` by the documented size rule."""
    if method == "auto":
        return "dense" if net.n_nodes <= DENSE_MAX_NODES else "cg"
    if method not in ("dense", "cg"):
        raise ValueError(f"method must be 'auto', 'dense' or 'cg'; got {method!r}.")
    return method


def free_mask(net: Network, fixed_nodes: Int[Array, " fixed"], dtype) -> Float[Array, " nodes"]:
    """1.0 at free nodes, 0.0 at fixed nodes."""
    return jnp.ones(net.n_nodes, dtype).at[fixed_nodes].set(0.0)


def laplacian_apply(
    net: Network, k: Float[Array, " edges"], x: Float[Array, "nodes cols"]
) -> Float[Array, "nodes cols"]:
    """`L(k) @ x` without forming `L`: net current out of each node for each column of `x`."""
    current = k[:, None] * (x[net.senders] - x[net.receivers])
    return jnp.zeros_like(x).at[net.senders].add(current).at[net.receivers].add(-current)


def system_apply(
    net: Network, k: Float[Array, " edges"], free: Float[Array, " nodes"], x: Float[Array, "nodes cols"]
) -> Float[Array, "nodes cols"]:
    """`A(k) @ x` with `A = M L M + (I - M)`, matrix-free."""
    f = free[:, None]
    return f * laplacian_apply(net, k, f * x) + (1 - f) * x


def system_matrix(
    net: Network, k: Float[Array, " edges"], free: Float[Array, " nodes"]
) -> Float[Array, "nodes nodes"]:
    """Dense `A(k)` (N x N)."""
    s, r = net.senders, net.receivers
    lap = (
        jnp.zeros((net.n_nodes, net.n_nodes), k.dtype)
        .at[s, s].add(k)
        .at[r, r].add(k)
        .at[s, r].add(-k)
        .at[r, s].add(-k)
    )
    return free[:, None] * lap * free[None, :] + jnp.diag(1 - free)


def system_diagonal(
    net: Network, k: Float[Array, " edges"], free: Float[Array, " nodes"]
) -> Float[Array, " nodes"]:
    """Diagonal of `A(k)`: weighted degree at free nodes, 1 at fixed nodes."""
    degree = jnp.zeros(net.n_nodes, k.dtype).at[net.senders].add(k).at[net.receivers].add(k)
    return free * degree + (1 - free)


class CGInfo(eqx.Module):
    """Diagnostics of a CG solve: iterations taken and whether every column converged."""

    iterations: Int[Array, ""]
    converged: Array


def _pcg(matvec, b, x0, inv_diag, rtol, max_steps):
    """Jacobi-preconditioned CG on all columns of `b` at once (each column its own step sizes).

    Stops when every column has `||r|| <= rtol ||b||` or after `max_steps` iterations.
    """
    tiny = jnp.finfo(b.dtype).tiny
    threshold = rtol * jnp.linalg.norm(b, axis=0)

    def not_done(carry):
        _, r, _, _, step = carry
        return (step < max_steps) & jnp.any(jnp.linalg.norm(r, axis=0) > threshold)

    def body(carry):
        x, r, p, rz, step = carry
        ap = matvec(p)
        pap = jnp.sum(p * ap, axis=0)
        alpha = jnp.where(pap > tiny, rz / jnp.where(pap > tiny, pap, 1), 0)
        x = x + alpha * p
        r = r - alpha * ap
        z = inv_diag[:, None] * r
        rz_new = jnp.sum(r * z, axis=0)
        beta = jnp.where(rz > tiny, rz_new / jnp.where(rz > tiny, rz, 1), 0)
        return x, r, z + beta * p, rz_new, step + 1

    r0 = b - matvec(x0)
    z0 = inv_diag[:, None] * r0
    init = (x0, r0, z0, jnp.sum(r0 * z0, axis=0), jnp.zeros((), jnp.int32))
    x, r, _, _, steps = lax.while_loop(not_done, body, init)
    converged = jnp.all(jnp.linalg.norm(r, axis=0) <= threshold)
    return x, CGInfo(iterations=steps, converged=converged)


def solve_system(
    net: Network,
    k: Float[Array, " edges"],
    free: Float[Array, " nodes"],
    rhs: Float[Array, "nodes cols"],
    *,
    method: Method = "auto",
    x0: Float[Array, "nodes cols"] | None = None,
    rtol: float | None = None,
    max_steps: int | None = None,
) -> tuple[Float[Array, "nodes cols"], CGInfo]:
    """Solve `A(k) X = rhs` for all columns with one factorization; differentiable by adjoint.

    **Arguments:**

    - `net`: the network.
    - `k`: conductances `(E,)`, non-negative.
    - `free`: `(N,)` mask, 1 at free nodes and 0 at fixed nodes (see `free_mask`).
    - `rhs`: `(N, C)` right-hand sides.
    - `method`: ``"auto"``, ``"dense"`` or ``"cg"`` (see module docs).
    - `x0`: CG initial guess `(N, C)` (warm start); ignored by the dense path.
    - `rtol`, `max_steps`: CG stopping rule, relative residual per column (default 1e-5 in
      float32, 1e-10 in float64) and iteration cap (default `4 * N`).

    **Returns:** `(X, info)`: `X` `(N, C)` and a `CGInfo` (for the dense path `iterations`
    is 0 and `converged` is True).

    Derivatives with respect to `k` and `rhs` come from `jax.lax.custom_linear_solve`: the
    adjoint system is solved with the same Cholesky factor, or by CG; `x0` is not
    differentiated.
    """
    method = resolve_method(net, method)

    def matvec(x):
        return system_apply(net, k, free, x)

    k_const = lax.stop_gradient(k)
    if method == "dense":
        chol = lax.linalg.cholesky(system_matrix(net, k_const, free))

        def solve(_, b):
            y = lax.linalg.triangular_solve(chol, b, left_side=True, lower=True)
            x = lax.linalg.triangular_solve(chol, y, left_side=True, lower=True, transpose_a=True)
            return x, CGInfo(jnp.zeros((), jnp.int32), jnp.array(True))

        return lax.custom_linear_solve(matvec, rhs, solve, symmetric=True, has_aux=True)

    eps = jnp.finfo(rhs.dtype).eps
    rtol = (1e-5 if eps > 1e-10 else 1e-10) if rtol is None else rtol
    max_steps = 4 * net.n_nodes if max_steps is None else max_steps
    inv_diag = 1.0 / system_diagonal(net, k_const, free)
    const_mv = lambda x: system_apply(net, k_const, free, x)  # noqa: E731

    def solve_from(init):
        def solve(_, b):
            guess = jnp.zeros_like(b) if init is None else lax.stop_gradient(init)
            return _pcg(const_mv, b, guess, inv_diag, rtol, max_steps)

        return solve

    return lax.custom_linear_solve(
        matvec, rhs, solve_from(x0), transpose_solve=solve_from(None), symmetric=True, has_aux=True
    )


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
    method: Method = "auto",
) -> Float[Array, "*examples nodes"]:
    """Node voltages of a resistor network with some nodes held at given voltages.

    Fixed nodes hold `fixed_values`; every other node obeys Kirchhoff's current law — the
    state that minimizes the dissipated power `sum_e k_e (ΔV_e)²`. All examples (leading
    axes of `fixed_values`) share one factorization: the network is solved once per fixed
    node (its response to 1 V there) and the examples are superposed.

    **Arguments:**

    - `net`: the `Network`.
    - `conductances`: `(E,)` edge conductances (siemens, or any consistent unit), `>= 0`.
    - `fixed_nodes`: int `(F,)` distinct node ids held at given voltages (at least one).
    - `fixed_values`: `(..., F)` voltages at `fixed_nodes` (volts); leading axes are examples.
    - `method`: ``"auto"`` (dense Cholesky up to `DENSE_MAX_NODES` nodes, CG above),
      ``"dense"`` or ``"cg"``.

    **Returns:** `(..., N)` node voltages (volts), same leading axes as `fixed_values`.

    **Errors:** called with concrete arrays, bad input raises `ValueError` (wrong shapes,
    negative or non-finite conductances, fixed node out of range or repeated, no fixed node,
    a floating node). Under `jit`/`vmap` the values are not visible to Python; then a
    non-finite conductance, a negative one, or a non-finite result (what a floating node
    produces) raises `equinox`'s runtime error naming the problem.

    Differentiable (`grad`, `jvp`, `vmap`) in `conductances` and `fixed_values`; the
    derivative is an adjoint solve with the same factorization.

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
    dtype = jnp.result_type(k.dtype, fixed_values.dtype, float)
    k = k.astype(dtype)
    free = free_mask(net, fixed_nodes, dtype)
    response, info = solve_system(net, k, free, unit_rhs(net, k, free, fixed_nodes), method=method)
    # One combined in-graph check (one branch, one callback) rather than one per condition.
    failures = jnp.stack([
        ~jnp.all(jnp.isfinite(k)),
        jnp.any(k < 0),
        ~jnp.all(jnp.isfinite(response)),
        ~info.converged,
    ])
    response = eqx.branched_error_if(response, jnp.any(failures), jnp.argmax(failures), [
        "jaxnet.solve: a conductance is not finite.",
        "jaxnet.solve: a conductance is negative.",
        "jaxnet.solve: non-finite voltages. Is a node floating (no path of positive "
        "conductance to a fixed node)?",
        "jaxnet.solve: CG did not converge.",
    ])
    return fixed_values.astype(dtype) @ response.T
