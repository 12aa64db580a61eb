"""The diode's reverse breakdown: its current law, derivatives and junction solve."""

import jax
import jax.numpy as jnp
import numpy as np
import jaxnet as jn

I_S, N_VT, LEAK, B, N_BV, K = 1e-14, jn.THERMAL_VOLTAGE, 1e-12, 5.1, 1.5 * jn.THERMAL_VOLTAGE, 0.5


def numpy_diode_current(drop):
    """The series diode's current by bisection on the junction voltage, in plain NumPy."""

    def junction(v):
        return I_S * np.expm1(v / N_VT) + LEAK * v - I_S * np.exp(-(B + v) / N_BV)

    low, high = np.minimum(drop, 0.0), np.maximum(drop, 0.0)
    for _ in range(200):
        mid = 0.5 * (low + high)
        above = junction(mid) > K * (drop - mid)
        low, high = np.where(above, low, mid), np.where(above, mid, high)
    return junction(0.5 * (low + high))


def breakdown_diodes():
    """Seven diodes that break down at 5.1 V, in the current precision."""
    return jn.Elements.from_kinds(["diode"] * 7, saturation_current=I_S, leak=LEAK, breakdown_voltage=B,
                                  breakdown_emission=N_BV)


DROPS = [-12.0, -5.3, -5.1, -0.2, 0.0, 0.6, 3.0]


def test_breakdown_current_and_derivatives(x64):
    diodes = breakdown_diodes()
    drop, k = jnp.array(DROPS), jnp.full(7, K)
    current = diodes.current(drop, k)
    np.testing.assert_allclose(current, numpy_diode_current(np.array(DROPS)), rtol=1e-9, atol=1e-18)
    assert current[0] < -6e-3  # 12 V reverse: the junction holds about 5.2 V, the resistor the rest
    h = 1e-6
    for name, f in [("drop", lambda d: diodes.current(d, k)), ("k", lambda kk: diodes.current(drop, kk))]:
        x = drop if name == "drop" else k
        numeric = (f(x + h) - f(x - h)) / (2 * h)
        np.testing.assert_allclose(diodes.conductance(drop, k) if name == "drop" else jax.jvp(f, (x,), (jnp.ones(7),))[1],
                                   numeric, rtol=1e-5, atol=1e-12)
    # the co-content's derivative in the drop is the current
    np.testing.assert_allclose(jax.grad(lambda d: diodes.cocontent(d, k).sum())(drop), current, rtol=1e-9, atol=1e-18)


def test_without_breakdown_the_diode_is_unchanged(x64):
    plain = jn.Elements.from_kinds(["diode"] * 7)
    drop, k = jnp.array(DROPS), jnp.full(7, K)
    expected = [1e-12 * np.expm1(v / jn.THERMAL_VOLTAGE) + 1e-12 * v for v in np.asarray(DROPS)]
    np.testing.assert_allclose(plain.current(drop, k)[:5], expected[:5], rtol=1e-6)  # reverse: the junction takes it all
    assert np.all(np.isfinite(jax.grad(lambda d: plain.cocontent(d, k).sum())(drop)))


def test_breakdown_junction_solve_stays_finite_in_float32():
    diodes = breakdown_diodes()
    drop, k = jnp.array(DROPS, jnp.float32), jnp.full(7, K, jnp.float32)
    current = diodes.current(drop, k)
    assert current.dtype == jnp.float32 and np.all(np.isfinite(np.asarray(current)))
    np.testing.assert_allclose(current, numpy_diode_current(np.array(DROPS)), rtol=1e-3, atol=1e-9)
