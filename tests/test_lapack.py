"""The batch-safe LAPACK wrappers (`jaxnet._lapack`): the plan, and that the looped form (what
a sharded CPU program runs under jaxlib >= 0.10) gives what the batched call gives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import _lapack


def test_plan():
    chol64 = 64**3 // 3  # 87,381 FLOP: two W64 factorizations per call stay under 200,000
    assert _lapack.loop_plan(256, chol64, devices=2) == (2, 2)  # 64 steps of 2 per device
    assert _lapack.loop_plan(4, chol64, devices=2) is None  # 2 per device: inline already
    assert _lapack.loop_plan(256, chol64, devices=1) is None
    assert _lapack.loop_plan(6, chol64, devices=4) == (2, 1)  # the batch spans gcd(6, 4) devices
    assert _lapack.loop_plan(8192, 80, devices=2) == (2, 2048)  # tiny systems: few steps
    assert _lapack.loop_plan(8, 10**6, devices=2) == (2, 1)  # one instance always runs inline


@pytest.fixture
def looped(monkeypatch):
    """Two CPU devices under a jaxlib that splits batches, as far as the plan can tell: the
    looped form runs (here on this process's one device)."""
    monkeypatch.setattr(_lapack, "_splits_batches", lambda: True)
    monkeypatch.setattr(_lapack, "_cpu_devices", lambda: 2)


def _spd(key, batch, n):
    a = jax.random.normal(key, (batch, n, n))
    return a @ jnp.swapaxes(a, -1, -2) + n * jnp.eye(n)


def test_looped_equals_batched(looped):
    a = _spd(jax.random.key(0), 12, 64)  # 2 devices x 3 steps x 2 instances
    b = jax.random.normal(jax.random.key(1), (12, 64, 30))  # 64^2 * 30 FLOP: one per call
    assert _lapack.loop_plan(12, _lapack._cholesky_cost(a[0])) == (2, 2)
    assert _lapack.loop_plan(12, _lapack._triangular_cost(a[0], b[0])) == (2, 1)
    chol = jax.jit(jax.vmap(_lapack.cholesky))(a)
    np.testing.assert_array_equal(np.asarray(chol), np.asarray(jax.vmap(jax.lax.linalg.cholesky)(a)))
    x = jax.jit(jax.vmap(_lapack.cho_solve))(chol, b)
    np.testing.assert_allclose(np.asarray(x), np.asarray(jnp.linalg.solve(a, b)), rtol=1e-4, atol=1e-6)
    # an unbatched operand is shared by every instance
    x0 = jax.jit(jax.vmap(_lapack.cho_solve, in_axes=(None, 0)))(chol[0], b)
    np.testing.assert_allclose(np.asarray(x0), np.asarray(jnp.linalg.solve(a[0], b)), rtol=1e-4, atol=1e-6)


def test_small_solve_differentiates_as_jnp_linalg_solve(looped, monkeypatch):
    monkeypatch.setattr(_lapack, "WORK_PER_CALL", 50)  # so that 3x3 systems loop too
    m = jax.random.normal(jax.random.key(2), (8, 3, 3)) + 3 * jnp.eye(3)
    r = jax.random.normal(jax.random.key(3), (8, 3, 5))
    with jax.enable_x64(True):
        m, r = m.astype(jnp.float64), r.astype(jnp.float64)
        assert _lapack.loop_plan(8, _lapack._lu_cost(m[0])) == (2, 1)

        def loss(solve):
            return lambda m, r: jnp.sum(jnp.sin(solve(m, r)))

        ours = jax.jit(jax.vmap(jax.grad(loss(_lapack.solve), argnums=(0, 1))))(m, r)
        ref = jax.vmap(jax.grad(loss(jnp.linalg.solve), argnums=(0, 1)))(m, r)
        for u, v in zip(ours, ref):
            np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-10)
        np.testing.assert_allclose(np.asarray(jax.vmap(_lapack.solve)(m, r)), np.asarray(jnp.linalg.solve(m, r)),
                                   rtol=1e-12)
        hess = jax.hessian(loss(_lapack.solve))(m[0], r[0])
        np.testing.assert_allclose(np.asarray(hess), np.asarray(jax.hessian(loss(jnp.linalg.solve))(m[0], r[0])),
                                   rtol=1e-9, atol=1e-12)
