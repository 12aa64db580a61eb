"""The one Kirchhoff solver.

Every state in jaxnet (free, clamped, the loss and its gradient) comes from `solve_system`:

    A(k) X = B,    A(k) = M L(k) M + (I - M),

where `L(k) = Bᵀ diag(k) B` is the weighted graph Laplacian (`B` the incidence matrix) and
`M = diag(free)` masks out the fixed nodes, whose rows become identity (`_system` applies and
assembles it). `A` is symmetric positive definite exactly when every free node has a path of
positive conductance to a fixed node. Columns of `X` are node-voltage fields; at fixed nodes
they equal the right-hand side.

Two interchangeable ways to solve it:

- ``"dense"``: assemble `A` (N x N), one Cholesky factorization, triangular solves for all
  right-hand sides at once. Best for small and medium networks. Where Cholesky's checks fail
  (conductances over many decades, which float32 Cholesky cannot resolve), the
  subtraction-free elimination of `_elimination` answers instead, accurate in any precision.
- ``"cg"``: matrix-free Jacobi-preconditioned conjugate gradients on the incidence structure
  (O(E) memory), all right-hand sides advanced together, warm-startable. For large networks,
  and from a warm start (every step of `train`) the fastest path at every size.

``method="auto"`` picks ``"cg"`` above `Solver.dense_max_nodes` (200) nodes; up to it,
``"dense"`` for a cold solve and, for a warm-started one, CG with dense Cholesky for whatever
CG fails (``"cg+dense"``, see `Solver.resolve`). A `Solver` holds that rule and the
tolerances; every solve, forward or adjoint, checks its true residual `||b - A x||` against
them and fails loudly, never silently.

Both are wrapped in `jax.lax.custom_linear_solve` with the matrix-free `A(k)` as the linear
map, so derivatives (with respect to conductances and right-hand sides) are an adjoint solve
with the same factorization (dense) or another CG solve (cg) — never differentiation through
the factorization or the CG iterations.
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
from equinox.internal import unvmap_any
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int

from ._elimination import eliminate, eliminated_solve, leaks
from ._lapack import cho_solve as _cho_solve, cholesky as _cholesky
from ._network import Network
from ._results import RESULTS, failed, first_failure
from ._system import abs_system_apply, system_apply, system_diagonal, system_matrix

Method = Literal["auto", "dense", "cg"]


class Solver(eqx.Module):
    """How to solve the Kirchhoff system, and how accurately: pass as `method=` to `solve` and `train`.

    `method="cg"` is short for `method=jn.Solver("cg")`. Every solve (forward, and the adjoint
    solve of a gradient) is checked against its *true* residual: with `r = b - A x` for each
    right-hand side `b`, it must hold at every node `i` that
    `|r_i| <= rtol (|A| |x| + |b|)_i + atol` (the componentwise backward error of Oettli and
    Prager: the current imbalance at a node against the currents through it), or the solve
    fails (`jn.RESULTS`; `jn.SolverError` on the host). The dense path refines its Cholesky
    solution once with the same factor; where that step moves `x` by more than `forward_rtol`
    (relative, per column: the step estimates the forward error), or a pivot or the residual
    fails, the solve is done again by elimination without subtraction (see
    `jaxnet._elimination`), whose error is `O(n eps)` times the largest held voltage however
    many decades the conductances span. What still fails is a floating node (`singular`), and
    numbers float32 cannot hold (conductances below about 1e-38 flush to zero: open circuits).

    **Fields** (all static: changing one recompiles):

    - `method`: ``"auto"`` (``"dense"`` up to `dense_max_nodes` nodes, ``"cg"`` above),
      ``"dense"`` (Cholesky) or ``"cg"`` (Jacobi-preconditioned conjugate gradients).
    - `rtol`: componentwise relative tolerance on the true residual (above); None for the
      default of the dtype, `8 eps` (about 9.5e-7) in float32 and 1e-10 in float64: what a
      backward-stable direct solve meets, with room for the rounding of the residual itself.
      CG iterates until it is met. (Newton's default on the current imbalance of a nonlinear
      network stays 1e-4 in float32; a given `rtol` serves both.)
    - `atol`: absolute tolerance on the true residual (amperes, the units of `A x`), default 0.
    - `max_steps`: CG iteration cap; None for `4 * n_nodes`. Reaching it unconverged is an error.
    - `dense_max_nodes`: the size rule of ``"auto"``.
    - `refine`: steps of iterative refinement on the dense path (same factor), default 1.
    - `forward_rtol`: largest relative correction `max|dx| / max|x|` per column the last
      refinement step may make (an estimate of the forward error of the Cholesky solve) before
      the elimination answers instead; None for the default of the dtype, 1e-3 in float32 and
      1e-7 in float64.
    - `residual_every`: CG recomputes its true residual `b - A x` every this many iterations
      (and whenever its recurrence says it has converged), so rounding in the recurrence
      cannot fake convergence.
    - `newton_steps`: Newton iteration cap for networks with nonlinear elements (each
      iteration one linear solve); not converging within it is an error. Newton's tolerance
      is `rtol` and `atol` too, on each free node's current imbalance (see `jn.solve`).
    """

    method: Method = eqx.field(static=True, default="auto")
    rtol: float | None = eqx.field(static=True, default=None)
    atol: float = eqx.field(static=True, default=0.0)
    max_steps: int | None = eqx.field(static=True, default=None)
    dense_max_nodes: int = eqx.field(static=True, default=200)
    refine: int = eqx.field(static=True, default=1)
    forward_rtol: float | None = eqx.field(static=True, default=None)
    residual_every: int = eqx.field(static=True, default=50)
    newton_steps: int = eqx.field(static=True, default=50)

    def __check_init__(self):
        if self.method not in ("auto", "dense", "cg"):
            raise ValueError(f"method must be 'auto', 'dense' or 'cg'; got {self.method!r}.")
        if self.rtol is not None and not 0 < self.rtol < 1:
            raise ValueError(f"rtol must lie in (0, 1) (or be None for the dtype's default); got {self.rtol}.")
        if self.forward_rtol is not None and not 0 < self.forward_rtol < 1:
            raise ValueError(f"forward_rtol must lie in (0, 1) (or be None for the dtype's default); got {self.forward_rtol}.")
        if not (isinstance(self.refine, int) and self.refine >= 0):
            raise ValueError(f"refine must be an int >= 0; got {self.refine!r}.")
        if not 0 <= self.atol < float("inf"):
            raise ValueError(f"atol must be >= 0; got {self.atol}.")
        for name in ("max_steps", "residual_every", "newton_steps"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a positive int; got {value!r}.")
        if not (isinstance(self.dense_max_nodes, int) and self.dense_max_nodes >= 0):
            raise ValueError(f"dense_max_nodes must be an int >= 0; got {self.dense_max_nodes!r}.")

    def resolve(self, n_nodes: int, warm: bool = False) -> Literal["dense", "cg", "cg+dense"]:
        """The path taken for a network of `n_nodes` nodes; `warm`: the solve has a warm start.

        ``"auto"`` takes CG above `dense_max_nodes` nodes. Up to it, a cold solve takes dense
        Cholesky, and a warm-started one (every step of `train`) ``"cg+dense"``: CG, which a
        good starting guess makes the fastest path at every size measured (9 to 144 nodes, one
        network or 256), then dense Cholesky for any instance whose CG fails its check. The
        adjoint solve of a gradient has no warm start and takes dense Cholesky there.
        """
        if self.method == "auto":
            if n_nodes > self.dense_max_nodes:
                return "cg"
            return "cg+dense" if warm else "dense"
        return self.method

    def tolerance(self, dtype) -> float:
        """`rtol`, or its default for `dtype` (`8 eps` = 2**-20 in float32, 1e-10 in float64)."""
        if self.rtol is not None:
            return self.rtol
        return 8 * float(jnp.finfo(dtype).eps) if jnp.finfo(dtype).eps > 1e-10 else 1e-10

    def newton_tolerance(self, dtype) -> float:
        """Newton's relative tolerance on each node's current imbalance: `rtol`, or its
        default for `dtype` (1e-4 in float32, 1e-10 in float64)."""
        if self.rtol is not None:
            return self.rtol
        return 1e-4 if jnp.finfo(dtype).eps > 1e-10 else 1e-10

    def forward_tolerance(self, dtype) -> float:
        """`forward_rtol`, or its default for `dtype` (1e-3 in float32, 1e-7 in float64)."""
        if self.forward_rtol is not None:
            return self.forward_rtol
        return 1e-3 if jnp.finfo(dtype).eps > 1e-10 else 1e-7


def as_solver(method: Method | Solver) -> Solver:
    """A `Solver` from a `method=` argument: a `Solver`, or one of its method names."""
    if isinstance(method, Solver):
        return method
    if method not in ("auto", "dense", "cg"):
        raise ValueError(f"method must be 'auto', 'dense', 'cg' or a jn.Solver; got {method!r}.")
    return Solver(method)


class SolveInfo(eqx.Module):
    """Diagnostics of one solve.

    - `iterations`: CG iterations (0 on the dense path; Newton iterations with elements).
    - `residual`: the componentwise backward error reached, the largest
      `|b - A x|_i / (|A| |x| + |b|)_i` over nodes and columns (Newton: the worst current
      imbalance relative to the current through the node).
    - `tolerance`: the backward error the solve had to reach (`rtol`).
    - `result`: `RESULTS.successful`, or why the solve failed (see `jn.RESULTS`).
    """

    iterations: Int[Array, ""]
    residual: Float[Array, ""]
    tolerance: Float[Array, ""]
    result: RESULTS


def _checked(x, measured, rtol, path, singular, check):
    """`(x, backward error reached, its tolerance, result)`: the solve's result code from its checks.

    `measured` is `(excess, backward)` per column: the worst `|r_i| - rtol (|A||x| + |b|)_i - atol`
    (see `_excess`) and the componentwise backward error. With `check`, a failed solve's `x` is
    NaN (never a plausible wrong number); without it (Newton's steps, which need no exact
    solves) `x` is returned as computed.
    """
    excess, backward = measured
    residual_code = RESULTS.cg_residual if path == "cg" else RESULTS.dense_residual
    result = first_failure(
        RESULTS.where(jnp.asarray(singular), RESULTS.singular, RESULTS.successful),
        RESULTS.where(jnp.all(jnp.isfinite(x)), RESULTS.successful, RESULTS.nonfinite),
        RESULTS.where(_within(excess), RESULTS.successful, residual_code),
    )
    if check:
        x = jnp.where(failed(result), jnp.nan, x)
    return x, jnp.max(backward), jnp.asarray(rtol, x.dtype), result


def _within(excess):
    """True when every column meets the tolerance (`excess <= 0`, see `_excess`)."""
    return jnp.all(excess <= 0)


def _excess(r, scale, rtol, atol):
    """Per column: `max_i |r_i| - rtol scale_i - atol` (<= 0: accepted; NaN counts as refused),
    and the componentwise backward error `max_i |r_i| / scale_i`, with `scale = |A| |x| + |b|`.

    The Oettli-Prager test: `x` solves `(A + dA) x = b + db` with `|dA| <= rtol |A|` and
    `|db| <= rtol |b|`. Node by node, so a part of the network joined to the rest only by weak
    conductances is held to the currents through ITS edges, not to the network's largest.
    """
    excess = jnp.max(jnp.abs(r) - rtol * scale - atol, axis=0)
    backward = jnp.max(jnp.abs(r) / jnp.maximum(scale, jnp.finfo(r.dtype).tiny), axis=0)
    return jnp.where(jnp.isnan(excess), jnp.inf, excess), backward


def _pcg(matvec, b, x0, inv_diag, rtol, atol, max_steps, residual_every, abs_matvec):
    """Jacobi-preconditioned CG on all columns of `b` at once (each column its own step sizes).

    Runs in cycles of at most `residual_every` iterations, each ending with the true residual
    `b - A x`: the stopping rule reads the TRUE residual, componentwise,
    `|r_i| <= rtol (|A||x| + |b|)_i + atol` at every node of every column (or `max_steps`
    iterations); `abs_matvec(x)` is `|A| |x|`. Within a cycle the recurrence residual is held
    to the bound of the cycle's start. A column whose recurrence residual claims convergence
    that the true residual denies (rounding drift) restarts from its true residual.

    **Returns:** `(x, iterations, (excess, backward error) per column)` (see `_excess`).
    """
    tiny = jnp.finfo(b.dtype).tiny

    def iterate(carry):
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

    def measure(x):
        true_r = b - matvec(x)
        return (true_r,) + _excess(true_r, abs_matvec(x) + jnp.abs(b), rtol, atol)

    def cycle(carry):
        x, r, p, rz, start, _, _, _ = carry
        step = start
        end = jnp.minimum(step + residual_every, max_steps)
        threshold = rtol * (abs_matvec(x) + jnp.abs(b)) + atol

        def going(c):
            return (c[4] < end) & jnp.any(jnp.abs(c[1]) > threshold)

        x, r, p, rz, step = lax.while_loop(going, iterate, (x, r, p, rz, step))
        true_r, excess, backward = measure(x)
        # Where the recurrence claims convergence that the true residual denies (rounding drift),
        # restart that column from its true residual; elsewhere the iteration goes on untouched.
        restart = jnp.all(jnp.abs(r) <= threshold, axis=0) & (excess > 0)
        z = inv_diag[:, None] * true_r
        r, p = jnp.where(restart, true_r, r), jnp.where(restart, z, p)
        rz = jnp.where(restart, jnp.sum(true_r * z, axis=0), rz)
        # A cycle that neither iterated nor restarted would repeat itself forever (a NaN
        # residual compares False everywhere): it ends the solve, which then fails its check.
        stalled = (step == start) & ~jnp.any(restart)
        return x, r, p, rz, step, excess, backward, stalled

    def not_done(carry):
        step, excess, stalled = carry[4], carry[5], carry[7]
        return (step < max_steps) & jnp.any(excess > 0) & ~stalled

    r0, excess0, backward0 = measure(x0)
    z0 = inv_diag[:, None] * r0
    init = (x0, r0, z0, jnp.sum(r0 * z0, axis=0), jnp.zeros((), jnp.int32), excess0, backward0, jnp.array(False))
    x, _, _, _, steps, excess, backward, _ = lax.while_loop(not_done, cycle, init)
    return x, steps, (excess, backward)


def solve_system(
    net: Network,
    k: Float[Array, " edges"],
    free: Float[Array, " nodes"],
    rhs: Float[Array, "nodes cols"],
    *,
    method: Method | Solver = "auto",
    x0: Float[Array, "nodes cols"] | None = None,
    check: bool = True,
) -> tuple[Float[Array, "nodes cols"], SolveInfo]:
    """Solve `A(k) X = rhs` for all columns with one factorization; differentiable by adjoint.

    **Arguments:**

    - `net`: the network.
    - `k`: conductances `(E,)`, non-negative.
    - `free`: `(N,)` mask, 1 at free nodes and 0 at fixed nodes (see `_system.free_mask`).
    - `rhs`: `(N, C)` right-hand sides.
    - `method`: a `Solver`, or ``"auto"``, ``"dense"`` or ``"cg"`` (see module docs).
    - `x0`: CG initial guess `(N, C)` (warm start); ignored by the dense path.
    - `check`: where the solve fails its checks, `X` is NaN (True); False returns `X` as
      computed (Newton's steps need no exact solves). Either way `info.result` says why.

    **Returns:** `(X, info)`: `X` `(N, C)` and a `SolveInfo`.

    **Errors:** nothing raises here (no host callbacks: this runs inside sharded programs).
    Every solve, this one and the adjoint solve of its derivative, checks its true residual
    against the `Solver`'s tolerance, its pivots (dense) and that the solution is finite; a
    failed forward solve reports it in `info.result`, a failed adjoint solve makes the
    derivative NaN.

    Derivatives with respect to `k` and `rhs` come from `jax.lax.custom_linear_solve`: the
    adjoint system is solved with the same Cholesky factor, or by CG (warm-started at zero,
    checked the same way); `x0` is not differentiated.
    """
    solver = as_solver(method)
    route = solver.resolve(net.n_nodes, warm=x0 is not None)
    rtol, atol = solver.tolerance(rhs.dtype), solver.atol
    forward_rtol = solver.forward_tolerance(rhs.dtype)

    def matvec(x):
        return system_apply(net, k, free, x)

    k_const = lax.stop_gradient(k)

    def factor():
        a = system_matrix(net, k_const, free)
        chol = _cholesky(a)  # batch-safe on sharded CPU programs (see _lapack)
        # A floating cluster makes a pivot vanish (exactly in exact arithmetic, to rounding here).
        # (NaN, from a negative pivot, counts as vanished.)
        singular = ~jnp.all(jnp.diagonal(chol) ** 2 > net.n_nodes * jnp.finfo(rhs.dtype).eps * jnp.diagonal(a))
        return a, chol, singular

    def dense(factors, b):
        """Cholesky solve refined `solver.refine` times with the same factor, accepted when its
        pivots, residual and last refinement step (the relative correction, an estimate of the
        forward error, at most `forward_rtol`) pass; where they do not, the subtraction-free
        elimination of `_elimination` answers instead (it runs only when some instance of a
        vmapped batch needs it). Returns `(x, (excess, backward error), singular)`."""
        a, chol, singular = factors

        def cho_solve(rhs):
            return _cho_solve(chol, rhs)

        def measure(x):
            return _excess(b - const_mv(x), jnp.abs(a) @ jnp.abs(x) + jnp.abs(b), rtol, atol)

        x = cho_solve(b)
        change = jnp.zeros(b.shape[1], b.dtype)
        for _ in range(solver.refine):
            dx = cho_solve(b - const_mv(x))  # the residual edge by edge: no `|A||x|` rounding to hide the error
            x = x + dx
            change = jnp.max(jnp.abs(dx), axis=0) / jnp.maximum(jnp.max(jnp.abs(x), axis=0), jnp.finfo(b.dtype).tiny)
        measured = measure(x)
        refused = singular | ~_within(measured[0]) | ~jnp.all(change <= forward_rtol) | ~jnp.all(jnp.isfinite(x))

        def eliminated(x, measured, singular):
            # The elimination's error is within O(n eps) of `z = A^-1 |b|` node by node (the
            # voltages of the same network driven by |b|), not of |x|, which cancels where `b`
            # has both signs: its residual is measured against the currents `|A| z` of that drive.
            factors = eliminate(a, leaks(net, k_const, free))
            xe, ze = jnp.split(eliminated_solve(factors, jnp.concatenate([b, jnp.abs(b)], axis=1)), 2, axis=1)
            measured_e = _excess(b - const_mv(xe), jnp.abs(a) @ ze + jnp.abs(b), rtol, atol)
            return jax.tree.map(lambda e, c: jnp.where(refused, e, c), (xe, measured_e, factors[2]),
                                (x, measured, singular))

        return lax.cond(unvmap_any(refused), eliminated, lambda *a: a, x, measured, singular)

    max_steps = 4 * net.n_nodes if solver.max_steps is None else solver.max_steps
    inv_diag = 1.0 / system_diagonal(net, k_const, free)
    const_mv = lambda x: system_apply(net, k_const, free, x)  # noqa: E731
    abs_mv = lambda x: abs_system_apply(net, k_const, free, x)  # noqa: E731

    def cg(b, guess):
        x, steps, (excess, backward) = _pcg(const_mv, b, guess, inv_diag, rtol, atol, max_steps, solver.residual_every,
                                            abs_mv)
        x = jnp.where(free[:, None] > 0, x, b)  # fixed rows of A are identity
        return x, steps, (excess, backward)

    shared = factor() if route == "dense" else None  # one factorization for forward and adjoint

    def make_solve(init, adjoint):
        # The adjoint of a warm-started small solve has no warm start: dense Cholesky serves it
        # (a gradient step then costs what it did on the dense path).
        path = "dense" if adjoint and route == "cg+dense" else route

        def solve(_, b):
            if path == "dense":
                x, measured, singular = dense(factor() if shared is None else shared, b)
                steps = jnp.zeros((), jnp.int32)
            else:
                x, steps, measured = cg(b, jnp.zeros_like(b) if init is None else lax.stop_gradient(init))
                singular = jnp.array(False)
            if path == "cg+dense":
                # CG first (fast from a warm start); where it fails its check, dense Cholesky.
                # The branch runs only when some instance of a vmapped batch failed, and each
                # instance keeps its own CG answer unless it failed, so no instance depends on which
                # others failed (a batched and a single LAPACK call may still round differently).
                cg_failed = ~(_within(measured[0]) & jnp.all(jnp.isfinite(x)))

                def fallback(x, measured, singular):
                    xd, md, sd = dense(factor(), b)
                    return jax.tree.map(lambda d, c: jnp.where(cg_failed, d, c), (xd, md, sd), (x, measured, singular))

                x, measured, singular = lax.cond(unvmap_any(cg_failed), fallback, lambda *a: a, x, measured, singular)
            x, relative, tolerance, result = _checked(x, measured, rtol, path, singular, check or adjoint)
            return x, SolveInfo(steps, relative, tolerance, result)

        return solve

    return lax.custom_linear_solve(
        matvec, rhs, make_solve(x0, False), transpose_solve=make_solve(None, True), symmetric=True, has_aux=True,
    )
