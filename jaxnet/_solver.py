"""The linear solvers: objects, as in lineax, that solve one Kirchhoff system.

Every state in jaxnet (free, clamped, the loss and its gradient) comes from one system,

    A(k) X = B,    A(k) = M L(k) M + (I - M),

where `L(k) = Bᵀ diag(k) B` is the weighted graph Laplacian (`B` the incidence matrix) and
`M = diag(free)` masks out the fixed nodes, whose rows become identity (`_system` applies and
assembles it). `A` is symmetric positive definite exactly when every free node has a path of
positive conductance to a fixed node. Columns of `X` are node-voltage fields; at fixed nodes
they equal the right-hand side.

The solvers (each an immutable `eqx.Module`, every field static):

- `Dense`: assemble `A` (N x N), one Cholesky factorization, triangular solves for all
  right-hand sides at once, refined with the same factor. Where Cholesky's checks fail
  (conductances over many decades, which float32 Cholesky cannot resolve), the
  subtraction-free elimination of `_elimination` answers instead, accurate in any precision.
  Best for small and medium networks.
- `CG`: matrix-free Jacobi-preconditioned conjugate gradients on the incidence structure
  (O(E) memory), all right-hand sides advanced together, warm-startable. For large networks,
  and from a warm start (every step of `train`) the fastest path at every size.
- `CGThenDense`: CG, then `Dense` for any instance whose CG fails its check.
- `Auto` (the default): `Auto.select` returns one of the three by the network's size and
  whether the solve is warm-started.
- `Newton` (in `_nonlinear`) holds one of these for the steps of a network with elements.

Each solver has `init` (the state it carries from solve to solve: `TrainState.solver_state`)
and `solve`, which returns the solution, a `SolveInfo` whose `result` is a `jn.RESULTS` code,
and the next state. Every solve, forward or adjoint, checks its true residual `||b - A x||`
against the solver's tolerance and reports a failure in its result code, never silently;
nothing here raises (no host callbacks: solves run inside sharded programs).

Solves are wrapped in `jax.lax.custom_linear_solve` with the matrix-free `A(k)` as the linear
map, so derivatives (with respect to conductances and right-hand sides) are an adjoint solve
with the same factorization (`Dense`) or another CG solve (`CG`), never differentiation
through the factorization or the CG iterations.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from equinox.internal import unvmap_any
from jax import lax
from jaxtyping import Array, Float, Int

from ._algorithms import cg_solve, dense_solve, factor, jacobi, within
from ._checks import plain_int
from ._network import Network
from ._results import RESULTS, failed, first_failure
from ._system import system_apply


class SolveInfo(eqx.Module):
    """Diagnostics of one solve.

    - `iterations`: CG iterations (0 on the dense path; Newton iterations with elements).
    - `residual`: the componentwise backward error reached, the largest
      `|b - A x|_i / (|A| |x| + |b|)_i` over nodes and columns (Newton: the worst current
      imbalance against its node's tolerance, times `rtol`, so that a converged solve reports
      at most `rtol`).
    - `tolerance`: the backward error the solve had to reach (`rtol`).
    - `result`: `RESULTS.successful`, or why the solve failed (see `jn.RESULTS`).
    """

    iterations: Int[Array, ""]
    residual: Float[Array, ""]
    tolerance: Float[Array, ""]
    result: RESULTS


class WarmStart(eqx.Module):
    """What a solver carries from one solve to the next (`TrainState.solver_state`): the last
    two solutions, from which `guess` extrapolates the next.

    Conductances change smoothly from step to step of `train`, so the first-order guess
    `2 x_t - x_(t-1)` cuts CG's iterations per step about threefold against reusing the last
    solution (measured on a 32x32 grid: 31 -> 10). `Dense` keeps it as it is.

    - `previous` `(2, N, C)`: the last solution and the one before.
    - `seen`: how many solves have been pushed (0, 1, 2 or more).
    """

    previous: Float[Array, "2 nodes cols"]
    seen: Int[Array, ""]

    @staticmethod
    def empty(n_nodes: int, columns: int, dtype) -> "WarmStart":
        return WarmStart(jnp.zeros((2, n_nodes, columns), dtype), jnp.int32(0))

    def guess(self) -> Float[Array, "nodes cols"]:
        """The next solve's starting point: the last solution at first, then the extrapolation."""
        return jnp.where(self.seen >= 2, 2 * self.previous[0] - self.previous[1], self.previous[0])

    def push(self, x: Float[Array, "nodes cols"]) -> "WarmStart":
        return WarmStart(jnp.stack([x, self.previous[0]]), self.seen + 1)


class AbstractSolver(eqx.Module):
    """The base of every jaxnet solver (`Dense`, `CG`, `CGThenDense`, `Auto`, `Newton`):
    pass one as `solver=` to `jn.solve`, `jn.train`, `jn.sweep`'s runs and the observables.

    `init(net, columns, dtype)` gives the state a solver carries from solve to solve (a
    `WarmStart`, the same for every solver, so a run may be continued with another solver).
    """

    def init(self, net: Network, columns: int, dtype) -> WarmStart:
        """The state of a first solve of `columns` right-hand sides on `net` (`TrainState.solver_state`)."""
        return WarmStart.empty(net.n_nodes, columns, dtype)


def _default_tolerance(rtol, dtype) -> float:
    """`rtol`, or the default for `dtype`: `8 eps` (2**-20, about 9.5e-7) in float32, 1e-10 in
    float64: what a backward-stable direct solve meets, with room for the rounding of the
    residual itself."""
    if rtol is not None:
        return rtol
    return 8 * float(jnp.finfo(dtype).eps) if jnp.finfo(dtype).eps > 1e-10 else 1e-10


def check_fields(solver) -> None:
    rtol = getattr(solver, "rtol", None)
    if rtol is not None and not 0 < rtol < 1:
        raise ValueError(f"rtol must lie in (0, 1) (or be None for the dtype's default); got {rtol}.")
    forward_rtol = getattr(solver, "forward_rtol", None)
    if forward_rtol is not None and not 0 < forward_rtol < 1:
        raise ValueError(f"forward_rtol must lie in (0, 1) (or be None for the dtype's default); got {forward_rtol}.")
    if not 0 <= getattr(solver, "atol", 0.0) < float("inf"):
        raise ValueError(f"atol must be >= 0; got {solver.atol}.")
    refine = getattr(solver, "refine", 0)
    if not (isinstance(refine, int) and refine >= 0):
        raise ValueError(f"refine must be an int >= 0; got {refine!r}.")
    for name in ("max_steps", "residual_every"):
        value = getattr(solver, name, None)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ValueError(f"{name} must be a positive int; got {value!r}.")
    size = getattr(solver, "dense_max_nodes", 0)
    if not (isinstance(size, int) and size >= 0):
        raise ValueError(f"dense_max_nodes must be an int >= 0; got {size!r}.")


class LinearSolver(AbstractSolver):
    """A solver of the linear Kirchhoff system `A(k) X = B` (see the module docs).

    Every solve is checked against its *true* residual: with `r = b - A x` for each
    right-hand side `b`, it must hold at every node `i` that
    `|r_i| <= rtol (|A| |x| + |b|)_i + atol` (the componentwise backward error of Oettli and
    Prager: the current imbalance at a node against the currents through it), or the solve
    fails (`jn.RESULTS`; `jn.SolverError` on the host).
    """

    residual_result: ClassVar[RESULTS] = RESULTS.dense_residual

    def __check_init__(self):
        check_fields(self)

    @abc.abstractmethod
    def tolerance(self, dtype) -> float:
        """The componentwise backward error a solve in `dtype` must reach."""

    @abc.abstractmethod
    def _prepare(self, net, k, free, dtype):
        """What forward and adjoint solves share (a factorization, a preconditioner)."""

    @abc.abstractmethod
    def _compute(self, net, k, free, b, guess, prepared):
        """`(x, iterations, (excess, backward) per column, singular)` for `A(k) x = b`."""

    def _adjoint(self) -> "LinearSolver":
        """The solver of the adjoint (transpose) system of a gradient."""
        return self

    def for_gradients(self, n_nodes: int) -> "LinearSolver":
        """The solver to use where a solve is differentiated (its adjoint then shares what it
        prepared): itself, but `CGThenDense` (and `Auto` where it would take it) gives its
        `Dense`, whose one factorization serves the forward and the adjoint solve."""
        return self

    def may_factorize(self, n_nodes: int) -> bool:
        """Whether a warm-started solve on `n_nodes` nodes may form the dense N x N matrix."""
        return True

    def solve(
        self,
        net: Network,
        k: Float[Array, " edges"],
        free: Float[Array, " nodes"],
        rhs: Float[Array, "nodes cols"],
        state: WarmStart | None = None,
        *,
        check: bool = True,
    ) -> tuple[Float[Array, "nodes cols"], SolveInfo, WarmStart | None]:
        """Solve `A(k) X = rhs` for all columns at once; differentiable by adjoint.

        **Arguments:** `net`; `k` `(E,)` conductances, non-negative; `free` `(N,)` mask, 1 at
        free nodes and 0 at fixed nodes (`_system.free_mask`); `rhs` `(N, C)`; `state` a
        `WarmStart` (warm start from its `guess`; None for a cold solve); `check`: where the
        solve fails its checks `X` is NaN (True), or returned as computed (False: Newton's
        steps need no exact solves). Either way `info.result` says why.

        **Returns:** `(X, info, state)`: `X` `(N, C)`, a `SolveInfo`, and the state with `X`
        pushed (None for a cold solve).

        Derivatives with respect to `k` and `rhs` come from `jax.lax.custom_linear_solve`: the
        adjoint system is solved with the same factorization, or by CG from zero, checked the
        same way (a failed adjoint solve makes the derivative NaN); the warm start is not
        differentiated.
        """
        x, info = self._system_solve(net, k, free, rhs, None if state is None else state.guess(), check)
        return x, info, (None if state is None else state.push(x))

    def _system_solve(self, net, k, free, rhs, guess, check):
        k_const = lax.stop_gradient(k)
        prepared = self._prepare(net, k_const, free, rhs.dtype)
        adjoint = self._adjoint()

        def make(solver, prepared, init, is_adjoint):
            def solve(_, b):
                here = solver._prepare(net, k_const, free, b.dtype) if prepared is None else prepared
                x, steps, measured, singular = solver._compute(net, k_const, free, b, init, here)
                x, backward, tolerance, result = _checked(x, measured, solver.tolerance(b.dtype),
                                                          solver.residual_result, singular, check or is_adjoint)
                return x, SolveInfo(steps, backward, tolerance, result)

            return solve

        return lax.custom_linear_solve(
            lambda x: system_apply(net, k, free, x), rhs, make(self, prepared, guess, False),
            transpose_solve=make(adjoint, prepared if adjoint is self else None, None, True),
            symmetric=True, has_aux=True,
        )


def _checked(x, measured, rtol, residual_result, singular, check):
    """`(x, backward error reached, its tolerance, result)`: the solve's result code from its checks.

    `measured` is `(excess, backward)` per column (see `_algorithms.backward_excess`). With
    `check`, a failed solve's `x` is NaN (never a plausible wrong number).
    """
    excess, backward = measured
    result = first_failure(
        RESULTS.where(jnp.asarray(singular), RESULTS.singular, RESULTS.successful),
        RESULTS.where(jnp.all(jnp.isfinite(x)), RESULTS.successful, RESULTS.nonfinite),
        RESULTS.where(within(excess), RESULTS.successful, residual_result),
    )
    if check:
        x = jnp.where(failed(result), jnp.nan, x)
    return x, jnp.max(backward), jnp.asarray(rtol, x.dtype), result


class Dense(LinearSolver):
    """Cholesky on the assembled `A` (N x N), refined with its own factor; elimination without
    subtraction where Cholesky's checks fail.

    The solution is refined `refine` times with the same factor; where the last step moves `x`
    by more than `forward_rtol` (relative, per column: the step estimates the forward error),
    or a pivot or the residual fails, the system is solved again by elimination without
    subtraction (`jaxnet._elimination`), whose error is `O(n eps)` times the largest held
    voltage however many decades the conductances span. What still fails is a floating node
    (`RESULTS.singular`) and numbers float32 cannot hold (conductances below about 1e-38 flush
    to zero: open circuits).

    **Fields:** `rtol` the componentwise tolerance on the true residual (None: `8 eps` in
    float32, 1e-10 in float64); `atol` amperes, default 0; `refine` steps of refinement,
    default 1; `forward_rtol` the largest relative correction of the last refinement step
    (None: 1e-3 in float32, 1e-7 in float64).
    """

    rtol: float | None = eqx.field(static=True, default=None)
    atol: float = eqx.field(static=True, default=0.0)
    refine: int = eqx.field(static=True, default=1, converter=plain_int)
    forward_rtol: float | None = eqx.field(static=True, default=None)

    def tolerance(self, dtype) -> float:
        return _default_tolerance(self.rtol, dtype)

    def forward_tolerance(self, dtype) -> float:
        """`forward_rtol`, or its default for `dtype` (1e-3 in float32, 1e-7 in float64)."""
        if self.forward_rtol is not None:
            return self.forward_rtol
        return 1e-3 if jnp.finfo(dtype).eps > 1e-10 else 1e-7

    def _prepare(self, net, k, free, dtype):
        return factor(net, k, free, dtype)

    def _compute(self, net, k, free, b, guess, prepared):
        x, measured, singular = dense_solve(net, k, free, b, prepared, self.tolerance(b.dtype), self.atol,
                                            self.refine, self.forward_tolerance(b.dtype))
        return x, jnp.zeros((), jnp.int32), measured, singular


class CG(LinearSolver):
    """Jacobi-preconditioned conjugate gradients, matrix-free, all columns at once.

    Runs in cycles of at most `residual_every` iterations, each ending with the true residual
    `b - A x`, so rounding in the recurrence cannot fake convergence; stops when the true
    residual passes (see `LinearSolver`). Reaching `max_steps` unconverged is a failure
    (`RESULTS.cg_residual`).

    **Fields:** `rtol` the componentwise tolerance on the true residual (None: `8 eps` in
    float32, 1e-10 in float64); `atol` amperes (the units of `A x`), default 0; `max_steps` the
    iteration cap (None: 4 times the network's number of nodes); `residual_every`: the true
    residual is recomputed, and the stopping test read, at least every this many iterations
    (default 50).
    """

    rtol: float | None = eqx.field(static=True, default=None)
    atol: float = eqx.field(static=True, default=0.0)
    max_steps: int | None = eqx.field(static=True, default=None, converter=plain_int)
    residual_every: int = eqx.field(static=True, default=50, converter=plain_int)

    residual_result: ClassVar[RESULTS] = RESULTS.cg_residual

    def tolerance(self, dtype) -> float:
        return _default_tolerance(self.rtol, dtype)

    def may_factorize(self, n_nodes: int) -> bool:
        return False

    def _prepare(self, net, k, free, dtype):
        return jacobi(net, k, free)

    def _compute(self, net, k, free, b, guess, prepared):
        max_steps = 4 * net.n_nodes if self.max_steps is None else self.max_steps
        start = jnp.zeros_like(b) if guess is None else lax.stop_gradient(guess)
        x, steps, measured = cg_solve(net, k, free, b, start, prepared, self.tolerance(b.dtype), self.atol, max_steps,
                                      self.residual_every)
        return x, steps, measured, jnp.array(False)


class CGThenDense(LinearSolver):
    """`cg` first (fast from a warm start); `dense` for any instance whose CG fails its check.

    The dense branch runs only when some instance of a vmapped batch failed, and each instance
    keeps its own CG answer unless it failed, so no instance depends on which others failed (a
    batched and a single LAPACK call may still round differently). The adjoint solve of a
    gradient has no warm start and takes `dense`. Both are held to one tolerance: `cg` and
    `dense` must have the same `rtol` and `atol`.
    """

    cg: CG = CG()
    dense: Dense = Dense()

    def __check_init__(self):
        if type(self.cg) is not CG or type(self.dense) is not Dense:
            raise ValueError(f"CGThenDense takes a jn.CG and a jn.Dense; got {type(self.cg).__name__} and "
                             f"{type(self.dense).__name__}.")
        if (self.cg.rtol, self.cg.atol) != (self.dense.rtol, self.dense.atol):
            raise ValueError(f"CGThenDense holds CG and its dense fallback to one tolerance: got rtol "
                             f"{self.cg.rtol} and {self.dense.rtol}, atol {self.cg.atol} and {self.dense.atol}.")

    def tolerance(self, dtype) -> float:
        return self.dense.tolerance(dtype)

    def _adjoint(self) -> LinearSolver:
        return self.dense

    def for_gradients(self, n_nodes: int) -> LinearSolver:
        return self.dense

    def _prepare(self, net, k, free, dtype):
        return self.cg._prepare(net, k, free, dtype)

    def _compute(self, net, k, free, b, guess, prepared):
        x, steps, measured, singular = self.cg._compute(net, k, free, b, guess, prepared)
        cg_failed = ~(within(measured[0]) & jnp.all(jnp.isfinite(x)))

        def fallback(x, measured, singular):
            xd, _, md, sd = self.dense._compute(net, k, free, b, None, self.dense._prepare(net, k, free, b.dtype))
            return jax.tree.map(lambda d, c: jnp.where(cg_failed, d, c), (xd, md, sd), (x, measured, singular))

        x, measured, singular = lax.cond(unvmap_any(cg_failed), fallback, lambda *a: a, x, measured, singular)
        return x, steps, measured, singular


class Auto(LinearSolver):
    """The default: `select` returns `CG` above `dense_max_nodes` (200) nodes; up to it,
    `Dense` for a cold solve and, for a warm-started one (every step of `train`),
    `CGThenDense`: warm-started CG was the fastest path at every size measured (9 to 144 nodes,
    one network or 256), and `Dense` takes any instance whose CG fails. The adjoint solve of a
    gradient has no warm start and takes `Dense` there.

    **Fields:** the tolerances and caps of the solvers it returns (see `Dense` and `CG`), and
    `dense_max_nodes`.
    """

    rtol: float | None = eqx.field(static=True, default=None)
    atol: float = eqx.field(static=True, default=0.0)
    dense_max_nodes: int = eqx.field(static=True, default=200, converter=plain_int)
    max_steps: int | None = eqx.field(static=True, default=None, converter=plain_int)
    residual_every: int = eqx.field(static=True, default=50, converter=plain_int)
    refine: int = eqx.field(static=True, default=1, converter=plain_int)
    forward_rtol: float | None = eqx.field(static=True, default=None)

    def select(self, n_nodes: int, warm: bool = False) -> LinearSolver:
        """The solver `Auto` takes for a network of `n_nodes` nodes (`warm`: the solve starts
        from a `WarmStart`, as every step of `train` does), with `Auto`'s own fields:
        `CG` when `n_nodes > dense_max_nodes`; else `CGThenDense` when warm, `Dense` when cold."""
        cg = CG(self.rtol, self.atol, self.max_steps, self.residual_every)
        if n_nodes > self.dense_max_nodes:
            return cg
        dense = Dense(self.rtol, self.atol, self.refine, self.forward_rtol)
        return CGThenDense(cg, dense) if warm else dense

    def tolerance(self, dtype) -> float:
        return _default_tolerance(self.rtol, dtype)

    def for_gradients(self, n_nodes: int) -> LinearSolver:
        return self.select(n_nodes, warm=True).for_gradients(n_nodes)

    def may_factorize(self, n_nodes: int) -> bool:
        return self.select(n_nodes, warm=True).may_factorize(n_nodes)

    def solve(self, net, k, free, rhs, state=None, *, check=True):
        return self.select(net.n_nodes, warm=state is not None).solve(net, k, free, rhs, state, check=check)

    def _prepare(self, net, k, free, dtype):
        raise NotImplementedError("Auto solves through the solver `select` returns")

    def _compute(self, net, k, free, b, guess, prepared):
        raise NotImplementedError("Auto solves through the solver `select` returns")
