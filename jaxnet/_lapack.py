"""Batched LAPACK calls that sharded CPU programs can run under jaxlib 0.10.

jaxlib 0.10's CPU LAPACK kernels (Cholesky, LU, triangular solves, ...) split a batch whose
estimated work reaches 200,000 FLOP into chunks, schedule the chunks on XLA's intra-op thread
pool and block the calling pool thread until they are done (`ParallelBatchMap` in jaxlib's
`lapack_kernels.cc`). That pool has one thread per core and every CPU device of the process
shares it. With the instance axis sharded over as many CPU devices as there are cores
(`shard_instances` after `--xla_force_host_platform_device_count=<cores>`), each device's
program makes its batched call at the same time, every pool thread waits for chunks that no
thread is left to run, and the process hangs with its CPU idle. (Where one device already
waits in a cross-device all-reduce, the other's blocked call is enough; XLA then aborts the
process after 40 s, "Termination timeout for all reduce".) jaxlib 0.9 ran a batch on the
calling thread and never blocked.

`per_instance(fn, cost)` makes a function of one instance's arrays safe there: vmapped, and
lowered for the CPU while the process has several CPU devices under jaxlib >= 0.10, its batch
runs as a loop whose every step gives each device a group of its own instances small enough
(`cost` FLOP each, jaxlib's estimate) that the kernel runs it on the calling thread. A step's
slice takes the same instances from every device's contiguous share of the batch (the layout
`shard_instances` makes), so the loop needs no communication between devices. On a GPU, with
one CPU device, or under jaxlib < 0.10 the batched call is the one jax makes. The function is
never differentiated through this wrapper (JAX's `custom_vmap` has no reverse mode): callers
apply it to stop-gradient factors and inside `custom_linear_solve`.
"""

from __future__ import annotations

import functools
import math
import re

import jax
import jax.numpy as jnp
import jaxlib
from jax import lax
from jax.custom_batching import custom_vmap

# jaxlib 0.10 runs a batched call on the calling thread while batch * cost < 200,000, `cost`
# being its FLOP estimate for one matrix (`kMinWorkPerTask` and the kernels' `cost_per_matrix`
# in jaxlib's lapack_kernels.cc; the costs below are those formulas).
WORK_PER_CALL = 200_000


def _jaxlib_version() -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", jaxlib.__version__).groups()
    return int(major), int(minor)


@functools.cache
def _splits_batches() -> bool:
    """Whether this jaxlib's CPU LAPACK kernels block a pool thread on a split batch."""
    return _jaxlib_version() >= (0, 10)


def _cpu_devices() -> int:
    try:
        return len(jax.devices("cpu"))
    except RuntimeError:
        return 0


def loop_plan(batch: int, cost: int, devices: int | None = None) -> tuple[int, int] | None:
    """`(d, g)`: the looped call runs `batch / (d g)` steps of `g` instances on each of `d`
    devices; None where the batched call is safe as it is (jaxlib < 0.10, one CPU device, or
    each device's share of the batch already under `WORK_PER_CALL` FLOP)."""
    if devices is None:
        if not _splits_batches():
            return None
        devices = _cpu_devices()
    if devices <= 1:
        return None
    d = math.gcd(batch, devices)
    share = batch // d
    g_max = max(1, (WORK_PER_CALL - 1) // max(1, int(cost)))  # g cost < WORK_PER_CALL (one instance always runs inline)
    if share <= g_max:
        return None
    g = next(g for g in range(g_max, 0, -1) if share % g == 0)
    return d, g


def _looped(fn, in_batched, batch, d, g, *args):
    steps = batch // (d * g)

    def split(a):  # (B, ...) -> (steps, d g, ...): step j takes instances j g .. j g + g - 1 of each device's share
        a = jnp.moveaxis(a.reshape(d, steps, g, *a.shape[1:]), 1, 0)
        return a.reshape(steps, d * g, *a.shape[3:])

    def join(o):
        o = jnp.moveaxis(o.reshape(steps, d, g, *o.shape[2:]), 0, 1)
        return o.reshape(batch, *o.shape[3:])

    axes = [0 if b else None for b in in_batched]

    def body(carry, sliced):
        it = iter(sliced)
        full = [next(it) if b else a for a, b in zip(args, in_batched)]
        return carry, jax.vmap(fn, in_axes=axes)(*full)

    _, out = lax.scan(body, None, [split(a) for a, b in zip(args, in_batched) if b])
    return jax.tree.map(join, out)


def per_instance(fn, cost):
    """`fn` (a function of one instance's arrays) whose vmapped form cannot deadlock a sharded
    CPU program under jaxlib 0.10 (module docs). `cost(*args)`: jaxlib's FLOP estimate of
    `fn`'s largest LAPACK call for one instance (from the unbatched shapes). The innermost
    `vmap` runs the loop; an outer `vmap` batches each of its calls (its batch times `g`)."""
    wrapped = custom_vmap(fn)

    @wrapped.def_vmap
    def rule(axis_size, in_batched, *args):
        axes = [0 if b else None for b in in_batched]
        batched = lambda *a: jax.vmap(fn, in_axes=axes)(*a)  # noqa: E731
        one = [jax.ShapeDtypeStruct(a.shape[1:] if b else a.shape, a.dtype) for a, b in zip(args, in_batched)]
        plan = loop_plan(axis_size, cost(*one))
        if plan is None:
            out = batched(*args)
        else:
            out = lax.platform_dependent(
                *args, cpu=functools.partial(_looped, fn, in_batched, axis_size, *plan), default=batched)
        return out, jax.tree.map(lambda _: True, out)

    return functools.wraps(fn)(wrapped)


def _cholesky_cost(a):  # potrf
    return a.shape[-1] ** 3 // 3


def _triangular_cost(m, b):  # trsm, left side: rows(b)^2 cols(b)
    return m.shape[-1] ** 2 * b.shape[-1]


def _lu_cost(a):  # getrf
    return a.shape[-1] ** 3


def _cholesky(a):
    """Lower Cholesky factor of one SPD matrix (`lax.linalg.cholesky`), batch-safe (module docs)."""
    return lax.linalg.cholesky(a)


cholesky = per_instance(_cholesky, _cholesky_cost)


def _cho_solve(chol, b):
    """`A^-1 b` from `A`'s lower Cholesky factor (`b` `(n, C)`), batch-safe (module docs)."""
    y = lax.linalg.triangular_solve(chol, b, left_side=True, lower=True)
    return lax.linalg.triangular_solve(chol, y, left_side=True, lower=True, transpose_a=True)


cho_solve = per_instance(_cho_solve, _triangular_cost)


def _lu(a):
    lu, _, permutation = lax.linalg.lu(a)
    return lu, permutation


_lu_factor = per_instance(_lu, _lu_cost)


def _lu_solve(lu, permutation, b, transpose):
    if transpose:
        y = lax.linalg.triangular_solve(lu, b, left_side=True, lower=False, transpose_a=True)
        y = lax.linalg.triangular_solve(lu, y, left_side=True, lower=True, unit_diagonal=True, transpose_a=True)
        return y[jnp.argsort(permutation)]
    y = lax.linalg.triangular_solve(lu, b[permutation], left_side=True, lower=True, unit_diagonal=True)
    return lax.linalg.triangular_solve(lu, y, left_side=True, lower=False)


_lu_solve_n = per_instance(functools.partial(_lu_solve, transpose=False), lambda lu, p, b: _triangular_cost(lu, b))
_lu_solve_t = per_instance(functools.partial(_lu_solve, transpose=True), lambda lu, p, b: _triangular_cost(lu, b))


def solve(a, b):
    """`a^-1 b` for one small square `a` and `b` `(n, C)`: LU with partial pivoting (LAPACK, as
    `jnp.linalg.solve`), batch-safe (module docs); differentiable in `a` and `b` through
    `custom_linear_solve` (the factorization itself is not differentiated)."""
    if b.ndim != 2:
        raise ValueError(f"solve needs b as (n, C); got shape {b.shape}.")
    lu, permutation = _lu_factor(lax.stop_gradient(a))
    return lax.custom_linear_solve(
        lambda x: a @ x, b,
        solve=lambda _, x: _lu_solve_n(lu, permutation, x),
        transpose_solve=lambda _, x: _lu_solve_t(lu, permutation, x),
    )
