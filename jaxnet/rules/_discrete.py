"""The laboratory rule: discrete conductance levels, one step by the sign of the contrast."""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import is_concrete, plain_int
from ._base import Rule

Spacing = Literal["linear", "geometric", "resistance"]
SPACINGS = ("linear", "geometric", "resistance")


class DiscreteState(eqx.Module):
    """Per-edge comparator offsets `(E,)`, drawn once at `init` (zero when disabled)."""

    offset: Float[Array, " edges"]


class Discrete(Rule):
    """Each edge moves one level by `sign(d)` when `|d| > threshold` (see `discrete`)."""

    eta: Float[Array, ""] | float
    n_states: int = eqx.field(static=True, converter=plain_int)
    k_min: Float[Array, ""] | float
    k_max: Float[Array, ""] | float
    spacing: Spacing = eqx.field(static=True)
    threshold: Float[Array, ""] | float = 0.0
    offset_std: Float[Array, ""] | float = 0.0
    noise_std: Float[Array, ""] | float = 0.0

    constraints = {"eta": "positive", "threshold": "non_negative", "offset_std": "non_negative",
                   "noise_std": "non_negative"}
    # Its update moves a level index, clipped to the grid: `k` stays on the levels from k_min to
    # k_max (a clip of `k` itself would move a level rounded past a bound off the grid).
    keeps_bounds = True

    def __check_init__(self):
        if not (isinstance(self.n_states, int) and not isinstance(self.n_states, bool) and self.n_states >= 2):
            raise ValueError(f"n_states must be an int >= 2; got {self.n_states!r}.")
        if self.spacing not in SPACINGS:
            raise ValueError(f"spacing must be one of {', '.join(map(repr, SPACINGS))}; got {self.spacing!r}.")

    def _position(self, k):
        """Continuous level coordinate of `k`: 0 at k_min, n_states - 1 at k_max."""
        if self.spacing == "linear":
            unit = (k - self.k_min) / (self.k_max - self.k_min)
        elif self.spacing == "geometric":
            unit = jnp.log(k / self.k_min) / jnp.log(self.k_max / self.k_min)
        else:
            unit = (1 / self.k_min - 1 / k) / (1 / self.k_min - 1 / self.k_max)
        return unit * (self.n_states - 1)

    @property
    def levels(self) -> Float[Array, " states"]:
        """The `n_states` conductance levels from `k_min` to `k_max` (increasing)."""
        unit = jnp.linspace(0.0, 1.0, self.n_states)
        if self.spacing == "linear":
            return self.k_min + unit * (self.k_max - self.k_min)
        if self.spacing == "geometric":
            return self.k_min * (self.k_max / self.k_min) ** unit
        return 1 / (1 / self.k_min - unit * (1 / self.k_min - 1 / self.k_max))

    def state_index(self, k: Float[Array, " edges"]) -> Array:
        """Level index `s` of each conductance (nearest level)."""
        return jnp.clip(jnp.round(self._position(k)), 0, self.n_states - 1).astype(jnp.int32)

    def init(self, key, k):
        if is_concrete(k, self.k_min, self.k_max):
            # Within 1% of a level spacing counts as on the grid (float32 rounding of the
            # level coordinate reaches ~1e-4 with a thousand geometric levels).
            with jax.ensure_compile_time_eval():  # concrete k inside a jit trace: check it now
                position, tol = np.asarray(self._position(jnp.asarray(k))), 1e-2
            bad = (np.abs(position - np.round(position)) > tol) | (position < -tol) | (position > self.n_states - 1 + tol)
            if bad.any():
                e = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"initial conductance of edge {e} ({float(np.asarray(k)[e])}) is not on the level grid; "
                    "start from rule.levels[s] for integer states s."
                )
        return DiscreteState(offset=self.offset_std * jax.random.normal(key, jnp.shape(k), jnp.result_type(k)))

    def update(self, key, k, physics, state):
        d, meas = physics.coupled_contrast(k, self.eta)
        d = d + state.offset + self.noise_std * jax.random.normal(key, d.shape, d.dtype)
        step = jnp.sign(d) * (jnp.abs(d) > self.threshold)
        s = jnp.clip(self.state_index(k) + step.astype(jnp.int32), 0, self.n_states - 1)
        return self.levels.astype(k.dtype)[s], state, meas


def discrete(
    eta,
    n_states: int,
    k_min,
    k_max,
    spacing: Spacing = "linear",
    threshold=0.0,
    offset_std=0.0,
    noise_std=0.0,
) -> Discrete:
    """The laboratory's discrete coupled-learning rule (twin networks, digital potentiometers).

    Each edge sits on one of `n_states` levels from `k_min` to `k_max`, spaced evenly in
    conductance (`"linear"`), in log conductance (`"geometric"`) or in resistance
    (`"resistance"`: the taps of a digital potentiometer, `1/k` evenly spaced from `1/k_min` to
    `1/k_max`, so the levels crowd together at low conductance).
    With `d = mean over examples of [(dV_F)^2 - (dV_C)^2]` (clamped state nudged by `eta`) the
    edge's level index moves `s <- clip(s + sign(d) * [|d| > threshold], 0, n_states - 1)`.

    Lab imperfections (off by default): a fixed per-edge comparator offset ~ N(0, offset_std²)
    drawn at `init`, and per-update noise ~ N(0, noise_std²), both added to `d`, both from keys.
    Initial conductances must be on the grid: use `rule.levels[s]`.

    ```python
    rule = jn.rules.discrete(eta=0.1, n_states=128, k_min=0.1, k_max=2.0)
    k0 = rule.levels[jnp.full(net.n_edges, 64)]
    ```
    """
    return Discrete(eta=eta, n_states=n_states, k_min=k_min, k_max=k_max, spacing=spacing,
                    threshold=threshold, offset_std=offset_std, noise_std=noise_std)
