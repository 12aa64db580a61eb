"""The two algorithms under the linear solvers of `_solver`, and the test both pass.

- `backward_excess`: the componentwise (Oettli-Prager) test every solve's true residual must
  pass.
- `pcg`: Jacobi-preconditioned conjugate gradients on all right-hand sides at once, stopped by
  that test on the TRUE residual (`CG`).
- `dense_solve`: Cholesky refined with its own factor, with the subtraction-free elimination
  of `_elimination` for whatever Cholesky cannot resolve (`Dense`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from equinox.internal import unvmap_any
from jax import lax

from ._elimination import eliminate, eliminated_solve, leaks
from ._lapack import cho_solve as _cho_solve, cholesky as _cholesky
from ._system import abs_system_apply, system_apply, system_diagonal, system_matrix


def within(excess):
    """True when every column meets the tolerance (`excess <= 0`, see `backward_excess`)."""
    return jnp.all(excess <= 0)


def backward_excess(r, scale, rtol, atol):
    """Per column: `max_i |r_i| - rtol scale_i - atol` (<= 0: accepted; NaN counts as refused),
    and the componentwise backward error `max_i |r_i| / scale_i`, with `scale = |A| |x| + |b|`.

    The Oettli-Prager test: `x` solves `(A + dA) x = b + db` with `|dA| <= rtol |A|` and
    `|db| <= rtol |b|`. Node by node, so a part of the network joined to the rest only by weak
    conductances is held to the currents through ITS edges, not to the network's largest.
    """
    excess = jnp.max(jnp.abs(r) - rtol * scale - atol, axis=0)
    backward = jnp.max(jnp.abs(r) / jnp.maximum(scale, jnp.finfo(r.dtype).tiny), axis=0)
    return jnp.where(jnp.isnan(excess), jnp.inf, excess), backward


def pcg(matvec, b, x0, inv_diag, rtol, atol, max_steps, residual_every, abs_matvec):
    """Jacobi-preconditioned CG on all columns of `b` at once (each column its own step sizes).

    Runs in cycles of at most `residual_every` iterations, each ending with the true residual
    `b - A x`: the stopping rule reads the TRUE residual, componentwise,
    `|r_i| <= rtol (|A||x| + |b|)_i + atol` at every node of every column (or `max_steps`
    iterations); `abs_matvec(x)` is `|A| |x|`. Within a cycle the recurrence residual is held
    to the bound of the cycle's start. A column whose recurrence residual claims convergence
    that the true residual denies (rounding drift) restarts from its true residual.

    **Returns:** `(x, iterations, (excess, backward error) per column)` (see `backward_excess`).
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
        return (true_r,) + backward_excess(true_r, abs_matvec(x) + jnp.abs(b), rtol, atol)

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




def factor(net, k, free, dtype):
    """`(A, Cholesky factor of A, singular)`: `singular` where a pivot (nearly) vanished, as a
    floating cluster makes it (exactly in exact arithmetic, to rounding here; NaN, from a
    negative pivot, counts as vanished)."""
    a = system_matrix(net, k, free)
    chol = _cholesky(a)  # batch-safe on sharded CPU programs (see _lapack)
    singular = ~jnp.all(jnp.diagonal(chol) ** 2 > net.n_nodes * jnp.finfo(dtype).eps * jnp.diagonal(a))
    return a, chol, singular


def dense_solve(net, k, free, b, factors, rtol, atol, refine, forward_rtol):
    """Cholesky solve of `A(k) x = b`, refined `refine` times with the same factor (`factors`
    from `factor`), accepted when its pivots, residual and last refinement step (the relative
    correction, an estimate of the forward error, at most `forward_rtol`) pass; where they do
    not, the subtraction-free elimination of `_elimination` answers instead (it runs only when
    some instance of a vmapped batch needs it). `k` must carry no gradient.

    **Returns:** `(x, (excess, backward error) per column, singular)`.
    """
    a, chol, singular = factors

    def matvec(x):
        return system_apply(net, k, free, x)

    def measure(x):
        return backward_excess(b - matvec(x), jnp.abs(a) @ jnp.abs(x) + jnp.abs(b), rtol, atol)

    x = _cho_solve(chol, b)
    change = jnp.zeros(b.shape[1], b.dtype)
    for _ in range(refine):
        dx = _cho_solve(chol, b - matvec(x))  # the residual edge by edge: no `|A||x|` rounding to hide the error
        x = x + dx
        change = jnp.max(jnp.abs(dx), axis=0) / jnp.maximum(jnp.max(jnp.abs(x), axis=0), jnp.finfo(b.dtype).tiny)
    measured = measure(x)
    refused = singular | ~within(measured[0]) | ~jnp.all(change <= forward_rtol) | ~jnp.all(jnp.isfinite(x))

    def eliminated(x, measured, singular):
        # The elimination's error is within O(n eps) of `z = A^-1 |b|` node by node (the
        # voltages of the same network driven by |b|), not of |x|, which cancels where `b`
        # has both signs: its residual is measured against the currents `|A| z` of that drive.
        factors = eliminate(a, leaks(net, k, free))
        xe, ze = jnp.split(eliminated_solve(factors, jnp.concatenate([b, jnp.abs(b)], axis=1)), 2, axis=1)
        measured_e = backward_excess(b - matvec(xe), jnp.abs(a) @ ze + jnp.abs(b), rtol, atol)
        return jax.tree.map(lambda e, c: jnp.where(refused, e, c), (xe, measured_e, factors[2]),
                            (x, measured, singular))

    return lax.cond(unvmap_any(refused), eliminated, lambda *a: a, x, measured, singular)


def cg_solve(net, k, free, b, guess, inv_diag, rtol, atol, max_steps, residual_every):
    """`pcg` on `A(k) x = b` from `guess`, with `inv_diag = 1 / diag(A)` (`system_diagonal`);
    fixed rows (identity) answered exactly. `k` must carry no gradient.

    **Returns:** `(x, iterations, (excess, backward error) per column)`.
    """
    x, steps, measured = pcg(lambda x: system_apply(net, k, free, x), b, guess, inv_diag, rtol, atol, max_steps,
                             residual_every, lambda x: abs_system_apply(net, k, free, x))
    return jnp.where(free[:, None] > 0, x, b), steps, measured


def jacobi(net, k, free):
    """`1 / diag(A(k))`, CG's preconditioner."""
    return 1.0 / system_diagonal(net, k, free)
