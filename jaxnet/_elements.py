"""What each edge is: a linear resistor, a diode, a smooth diode or a transistor.

Every element is a two-terminal, *reciprocal* element: its current `I_e` (sender to receiver)
is a monotone function of its own voltage drop `Δ_e = V[sender] - V[receiver]` and of one
learned parameter `k_e` (the number `train` and the rules carry per edge). So the network has
a *co-content* `Φ(V) = Σ_e C_e(Δ_e)` with `∂C_e/∂Δ_e = I_e`: Kirchhoff's current law at the
free nodes is `∂Φ/∂V = 0`, and the state is the minimum of the convex `Φ` (for linear
resistors `C_e = k_e Δ_e² / 2`, half the dissipated power). The linearization of every element
is a conductance `dI_e/dΔ_e >= 0`, so each Newton step is a solve with the one Kirchhoff
solver, `jn.solve`'s, on those conductances.

The elements (`k` is the learned parameter; the others are fixed `Elements` fields):

- **resistor**: `I = k Δ`, `k` its conductance.
- **diode** (Shockley, with a series resistance): a junction `I = I_s (exp(v / nV_T) - 1) +
  g_min v` in series with a resistor of conductance `k`. SPICE's diode with `IS`, `N`, `RS =
  1/k` and its `GMIN` across the junction. Fields `saturation_current` (`I_s`, A),
  `emission_voltage` (`n V_T`, V), `leak` (`g_min`, S). With a finite `breakdown_voltage`
  `B` the junction also breaks down in reverse, SPICE's way: `- I_s exp(-(B + v) / n_bv V_T)`
  is added, `breakdown_emission` being `n_bv V_T` (SPICE's `NBV` times the thermal voltage;
  `B` is SPICE's knee-matched breakdown voltage, see `jn.from_spice`). The junction voltage `v`
  is found per edge by Newton's method safeguarded by bisection: the junction's current is
  increasing in `v`, so the root is bracketed between 0 and the edge's drop; without breakdown
  it is also convex and Newton, started above the root, descends onto it without a bisection.
- **smooth_diode**: a piecewise-linear diode, conductance `leak` below its turn-on voltage
  `threshold` and `k` above it, with the corner rounded over `width` volts:
  `I = g_off Δ + (k - g_off) [s(Δ - V_on) - s(-V_on)]`, `s(u) = (u + sqrt(u² + w²) - w) / 2`.
- **transistor**: the edge of the self-learning transistor network (Dillavou et al., PNAS
  2024), a MOSFET whose gate voltage `k = V_G` is the learned parameter. Square law, ohmic
  below saturation: with overdrive `V_ov = max(V_G - V_th, 0)` and `a = |Δ|`,
  `I = sign(Δ) K (V_ov a - a² / 2)` for `a < V_ov`, `sign(Δ) K V_ov² / 2` above (saturated),
  plus `leak Δ`. Fields `threshold` (`V_th`, V), `gain` (`K`, A/V²), `leak` (S).
  **The model's choice:** the gate voltage is held relative to the edge's lower-potential
  terminal (its source), which keeps the edge reciprocal (a function of `Δ` alone, with a
  co-content). In the laboratory network the gate capacitor is referenced to ground, so the
  conductance also falls with the mean voltage of the edge's two ends; that network has no
  co-content and needs a non-symmetric solver, which jaxnet does not model.

Units are SI (volts, amperes, siemens) or any consistent set.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from ._checks import is_concrete

KINDS = ("resistor", "diode", "smooth_diode", "transistor")
"""Element kinds, in the order of their integer codes in `Elements.kind`."""
RESISTOR, DIODE, SMOOTH_DIODE, TRANSISTOR = range(4)

THERMAL_VOLTAGE = 1.38064852e-23 * 300.15 / 1.6021766208e-19
"""Thermal voltage `k_B T / q` at 27 °C (V), with the constants ngspice uses, so a diode's
`emission_voltage` is `N * THERMAL_VOLTAGE` for SPICE's emission coefficient `N`."""

#: Newton iterations of the per-edge junction solve (monotone, quadratic near the root).
_JUNCTION_STEPS = 40


class Elements(eqx.Module):
    """Per-edge element kinds and their fixed parameters, each `(E,)` (see the module docs).

    Build with `Elements.from_kinds` and attach with `Network.with_elements`. Fields a kind does
    not use are ignored for its edges.

    - `kind`: int codes, `KINDS.index(name)`: 0 resistor, 1 diode, 2 smooth_diode, 3 transistor.
    - `saturation_current`: diode `I_s` (A).
    - `emission_voltage`: diode `n V_T` (V).
    - `leak`: diode junction `g_min`, smooth diode off conductance, transistor off leak (S).
    - `threshold`: smooth diode turn-on voltage, transistor `V_th` (V).
    - `width`: smooth diode corner width (V).
    - `gain`: transistor `K` (A/V²).
    - `breakdown_voltage`: diode reverse breakdown voltage `B` (V, > 0); `inf`: no breakdown.
    - `breakdown_emission`: diode breakdown `n_bv V_T` (V).
    """

    kind: Int[Array, " edges"]
    saturation_current: Float[Array, " edges"]
    emission_voltage: Float[Array, " edges"]
    leak: Float[Array, " edges"]
    threshold: Float[Array, " edges"]
    width: Float[Array, " edges"]
    gain: Float[Array, " edges"]
    breakdown_voltage: Float[Array, " edges"]
    breakdown_emission: Float[Array, " edges"]

    @classmethod
    def from_kinds(
        cls,
        kinds: Sequence[str] | Int[ArrayLike, " edges"],
        *,
        saturation_current: Float[ArrayLike, "*edges"] = 1e-12,
        emission_voltage: Float[ArrayLike, "*edges"] = THERMAL_VOLTAGE,
        leak: Float[ArrayLike, "*edges"] = 1e-12,
        threshold: Float[ArrayLike, "*edges"] = 0.0,
        width: Float[ArrayLike, "*edges"] = 0.05,
        gain: Float[ArrayLike, "*edges"] = 1.0,
        breakdown_voltage: Float[ArrayLike, "*edges"] = np.inf,
        breakdown_emission: Float[ArrayLike, "*edges"] = THERMAL_VOLTAGE,
    ) -> "Elements":
        """Elements from a kind per edge (names from `KINDS` or their codes); parameters are
        scalars or `(E,)` arrays.

        Defaults: a diode with `I_s` 1e-12 A, `n V_T` = `THERMAL_VOLTAGE` (`N = 1` at 27 °C),
        `g_min` 1e-12 S as SPICE) and no breakdown, a smooth diode turning on at 0 V over 50 mV, a transistor
        with `V_th` 0 and `K` 1 A/V².

        **Raises:** `ValueError` for an unknown kind or a parameter out of its range
        (`saturation_current`, `emission_voltage`, `width`, `gain`, `breakdown_voltage`,
        `breakdown_emission` must be > 0, `breakdown_voltage` may be `inf`; `leak` >= 0).

        ```python
        kinds = ["resistor", "diode", "resistor"]
        net = jn.Network.from_edges([[0, 1], [1, 2], [2, 0]]).with_elements(jn.Elements.from_kinds(kinds))
        ```
        """
        names = np.asarray(kinds)
        if names.ndim != 1:
            raise ValueError(f"kinds must be 1-D (one per edge); got shape {names.shape}.")
        if names.dtype.kind in "US":
            unknown = [str(n) for n in names if str(n) not in KINDS]
            if unknown:
                raise ValueError(f"unknown element kind {unknown[0]!r}; the kinds are {', '.join(KINDS)}.")
            codes = np.array([KINDS.index(str(n)) for n in names], np.int32)
        else:
            codes = names.astype(np.int32)
            if np.any((codes < 0) | (codes >= len(KINDS))):
                raise ValueError(f"element codes must be in 0..{len(KINDS) - 1} ({', '.join(KINDS)}); got {codes.tolist()}.")
        n_edges = codes.shape[0]
        params = {}
        for name, value, low in [
            ("saturation_current", saturation_current, "positive"), ("emission_voltage", emission_voltage, "positive"),
            ("leak", leak, "non-negative"), ("threshold", threshold, None), ("width", width, "positive"),
            ("gain", gain, "positive"), ("breakdown_voltage", breakdown_voltage, "positive"),
            ("breakdown_emission", breakdown_emission, "positive"),
        ]:
            v = np.broadcast_to(np.asarray(value, float), (n_edges,)) if np.ndim(value) == 0 else np.asarray(value, float)
            if v.shape != (n_edges,):
                raise ValueError(f"{name} must be a scalar or have shape ({n_edges},); got {v.shape}.")
            finite = np.isfinite(v) | ((v == np.inf) & (name == "breakdown_voltage"))
            if not np.all(finite) or (low == "positive" and np.any(v <= 0)) or (low == "non-negative" and np.any(v < 0)):
                raise ValueError(f"{name} must be finite{' and ' + low if low else ''}; got {v.tolist()}.")
            params[name] = jnp.asarray(v)
        return cls(kind=jnp.asarray(codes), **params)

    @property
    def n_edges(self) -> int:
        return self.kind.shape[-1]

    def current(self, drop: Float[Array, "*batch edges"], k: Float[Array, " edges"]) -> Float[Array, "*batch edges"]:
        """Current through each edge, sender to receiver (A), at drops `drop` (V)."""
        return self._select(drop, k, "current")

    def cocontent(self, drop: Float[Array, "*batch edges"], k: Float[Array, " edges"]) -> Float[Array, "*batch edges"]:
        """Each edge's co-content `C_e = ∫_0^Δ I_e` (W); `∂C/∂Δ` is the current."""
        return self._select(drop, k, "cocontent")

    def conductance(self, drop: Float[Array, "*batch edges"], k: Float[Array, " edges"]) -> Float[Array, "*batch edges"]:
        """Small-signal conductance `dI_e/dΔ_e` (S) of each edge at `drop`: the Newton step's."""
        return jax.jvp(lambda d: self.current(d, k), (drop,), (jnp.ones_like(drop),))[1]

    def parameter_gradient(self, drop: Float[Array, "*batch edges"], k: Float[Array, " edges"]) -> Float[Array, "*batch edges"]:
        """`∂C_e/∂k_e` at fixed drop: what an edge's local rule reads (`Δ²/2` for a resistor).

        For a diode it is half the squared drop across its series resistor; for a transistor,
        `K a²/2` in the ohmic region.
        """
        return jax.jvp(lambda kk: self.cocontent(drop, kk), (k,), (jnp.ones_like(k),))[1]

    def _select(self, drop, k, what):
        dtype = jnp.result_type(drop, k)
        el = jax.tree.map(lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p, self)
        out = jnp.zeros(jnp.broadcast_shapes(drop.shape, k.shape), dtype)
        present = range(len(_MODELS))
        if is_concrete(self.kind):  # trace only the kinds the network has
            with jax.ensure_compile_time_eval():
                present = np.unique(np.asarray(self.kind)).tolist()
        for code in present:
            model, mine = _MODELS[code], self.kind == code
            # Every kind is evaluated on every edge, on safe parameter values where the edge is
            # another kind, so the unused branches stay finite (and so do their gradients).
            safe_k = jnp.where(mine, k, 1.0)
            out = jnp.where(mine, getattr(model, what)(el, drop, safe_k), out)
        return out


class _Resistor:
    @staticmethod
    def current(el, drop, k):
        return k * drop

    @staticmethod
    def cocontent(el, drop, k):
        return 0.5 * k * drop**2


def _breakdown_exponent(v, b, n_bv):
    """`-(b + v) / n_bv`, and `-inf` where there is no breakdown (`b` infinite), written so
    that no infinity reaches a derivative."""
    broken = jnp.isfinite(b)
    return jnp.where(broken, -(jnp.where(broken, b, 0.0) + v) / n_bv, -jnp.inf)


def _junction(v, i_s, n, g, b, n_bv):
    """Junction current `I_s (exp(v / n) - 1) + g v - I_s exp(-(b + v) / n_bv)`."""
    return i_s * jnp.expm1(v / n) + g * v - i_s * jnp.exp(_breakdown_exponent(v, b, n_bv))


def _junction_conductance(v, i_s, n, g, b, n_bv):
    """`d _junction / dv` (> 0)."""
    return i_s / n * jnp.exp(v / n) + g + i_s / n_bv * jnp.exp(_breakdown_exponent(v, b, n_bv))


@jax.custom_jvp
def _junction_voltage(drop, k, i_s, n, g, b, n_bv):
    """The junction voltage `v` of a diode edge: `_junction(v) = k (drop - v)`.

    Newton's method on the increasing `h(v) = _junction(v) - k (drop - v)`, whose root lies
    between 0 (`h = -k drop`) and `drop` (`h = _junction(drop)`), started at `min(drop, n log(1
    + k drop / I_s))` for a forward drop, 0 for a reverse one. Without breakdown `h` is convex,
    the start is above the root and Newton descends onto it monotonically. Breakdown makes `h`
    concave below `-b`, where Newton may overshoot: each step keeps a bracket of the root and
    bisects it whenever Newton's step leaves it (or overflows). The bracket's reverse end is
    also at or above `-(b + n_bv log(1 + k |drop| / I_s))`, where the breakdown current alone
    exceeds what the resistor can carry (`h < 0`), so no step reaches the far, overflowing
    side of the exponential.

    Differentiable to any order, in every mode, by implicit differentiation of `h(v) = 0`
    (the rule below), never through the iterations: the rule is built from this function
    itself and plain arithmetic, so differentiating it again is implicit differentiation
    again (what `jax.hessian` of a state, `jacfwd` over `grad` or `grad` over `grad`, needs).
    """
    start = jnp.where(drop > 0, jnp.minimum(drop, n * jnp.log1p(k * jnp.maximum(drop, 0) / i_s)), 0.0)
    past_breakdown = -(b + n_bv * jnp.log1p(k * jnp.abs(drop) / i_s))  # -inf without breakdown

    def step(_, state):
        v, low, high = state
        h = _junction(v, i_s, n, g, b, n_bv) - k * (drop - v)
        low, high = jnp.where(h < 0, v, low), jnp.where(h < 0, high, v)
        newton = v - h / (_junction_conductance(v, i_s, n, g, b, n_bv) + k)
        inside = (newton >= low) & (newton <= high)  # False for a NaN step
        return jnp.where(inside, newton, 0.5 * (low + high)), low, high

    bracket = (jnp.maximum(jnp.minimum(drop, 0.0), past_breakdown), jnp.maximum(drop, 0.0))
    return jax.lax.fori_loop(0, _JUNCTION_STEPS, step, (start, *bracket))[0]


@_junction_voltage.defjvp
def _junction_voltage_jvp(primals, tangents):
    # `dh = 0`: `(g_j + k) dv = k d_drop + u d_k - d_junction`, with `g_j` the junction's
    # conductance, `u = drop - v` the resistor's drop and `d_junction` the junction current's
    # change with its own parameters at fixed `v`. `u` is taken as `_junction(v) / k`, equal
    # to `drop - v` at the root (so are all its derivatives along the root) and free of the
    # cancellation `drop - v` suffers when the resistor's share of the drop is tiny.
    drop, k, *params = primals
    d_drop, d_k, *d_params = tangents
    v = _junction_voltage(drop, k, *params)
    current, d_junction = jax.jvp(lambda *p: _junction(v, *p), tuple(params), tuple(d_params))
    return v, (k * d_drop + current / k * d_k - d_junction) / (k + _junction_conductance(v, *params))


def _diode_current(drop, k, *params):
    # The junction's current at `v`, not `k (drop - v)`: when the resistor's share of the drop
    # is tiny, `drop - v` cancels and would cost the current its relative accuracy. Its
    # derivatives, `g_j dv` plus the parameters' share, have no such cancellation either.
    return _junction(_junction_voltage(drop, k, *params), *params)


class _Diode:
    @staticmethod
    def _params(el):
        return el.saturation_current, el.emission_voltage, el.leak, el.breakdown_voltage, el.breakdown_emission

    @staticmethod
    def current(el, drop, k):
        return _diode_current(drop, k, *_Diode._params(el))

    @staticmethod
    def cocontent(el, drop, k):
        # Series co-contents at the shared current: `k u² / 2` for the resistor (drop `u`) plus
        # the junction's. `v` minimizes their sum, so (envelope theorem) its own derivative
        # drops out of the first derivatives in `drop`, `k` and the parameters; it stays in
        # the second ones (the series conductance `k g_j / (k + g_j)`, not `k`), so `v` is
        # differentiated (implicitly, `_junction_voltage`). `u` takes its value from the
        # junction's current (no cancellation) and its derivatives from `drop - v`.
        params = _Diode._params(el)
        i_s, n, g, b, n_bv = params
        v = _junction_voltage(drop, k, *params)
        u = drop - v
        u = u + jax.lax.stop_gradient(_junction(v, *params) / k - u)
        breakdown = i_s * n_bv * (jnp.exp(_breakdown_exponent(v, b, n_bv)) - jnp.exp(_breakdown_exponent(0.0, b, n_bv)))
        return 0.5 * k * u**2 + i_s * (n * jnp.expm1(v / n) - v) + 0.5 * g * v**2 + breakdown


def _corner(u, w):
    """`s(u) = (u + sqrt(u² + w²) - w) / 2`: 0 far below zero, `u - w/2` far above."""
    return 0.5 * (u + jnp.sqrt(u**2 + w**2) - w)


def _corner_integral(u, w):
    """`∫_0^u s`."""
    root = jnp.sqrt(u**2 + w**2)
    return 0.5 * (0.5 * u**2 + 0.5 * (u * root + w**2 * jnp.arcsinh(u / w)) - w * u)


class _SmoothDiode:
    @staticmethod
    def current(el, drop, k):
        v_on, w, g_off = el.threshold, el.width, el.leak
        return g_off * drop + (k - g_off) * (_corner(drop - v_on, w) - _corner(-v_on, w))

    @staticmethod
    def cocontent(el, drop, k):
        v_on, w, g_off = el.threshold, el.width, el.leak
        shaped = _corner_integral(drop - v_on, w) - _corner_integral(-v_on, w) - _corner(-v_on, w) * drop
        return 0.5 * g_off * drop**2 + (k - g_off) * shaped


class _Transistor:
    @staticmethod
    def current(el, drop, k):
        overdrive, a = jnp.maximum(k - el.threshold, 0.0), jnp.abs(drop)
        channel = jnp.where(a < overdrive, drop * (overdrive - 0.5 * a), jnp.sign(drop) * 0.5 * overdrive**2)
        return el.gain * channel + el.leak * drop

    @staticmethod
    def cocontent(el, drop, k):
        overdrive, a = jnp.maximum(k - el.threshold, 0.0), jnp.abs(drop)
        channel = jnp.where(a < overdrive, 0.5 * overdrive * a**2 - a**3 / 6, 0.5 * overdrive**2 * a - overdrive**3 / 6)
        return el.gain * channel + 0.5 * el.leak * drop**2


_MODELS = (_Resistor, _Diode, _SmoothDiode, _Transistor)
