"""Equilibrium propagation (Scellier & Bengio 2017; centered: Laborieux et al. 2021)."""

from __future__ import annotations

import equinox as eqx
from jaxtyping import Array, Float

from ._base import Rule


class EquilibriumPropagation(Rule):
    """`dk = -(alpha / beta) mean[(dV_beta)^2 - (dV_F)^2]`; `step` clips (see `equilibrium_propagation`)."""

    alpha: Float[Array, ""] | float
    beta: Float[Array, ""] | float
    centered: bool = eqx.field(static=True, default=False)
    k_min: Float[Array, ""] | float = 1e-6
    k_max: Float[Array, ""] | float = 1e6

    constraints = {"alpha": "positive", "beta": "positive"}

    def init(self, key, k):
        return None

    def update(self, key, k, physics, state):
        d, meas = physics.equilibrium_contrast(k, self.beta, self.centered)
        return k - (self.alpha / self.beta) * d, state, meas


def equilibrium_propagation(alpha, beta, centered: bool = False, k_min=1e-6, k_max=1e6) -> EquilibriumPropagation:
    """Equilibrium propagation: a local contrastive rule with a current nudge at the outputs.

    Nudged state: the free state with a current `beta (y - V_O)` injected at each output (the
    minimum of the co-content plus `beta` times the cost `0.5 sum_o (V_o - y_o)²`). Each edge
    updates from its own drops, `dk = -(alpha / beta) * mean over the step's examples of
    [(dV_beta)^2 - (dV_F)^2]`, then `k` is clipped to `[k_min, k_max]`
    (by `Rule.step`, as `train` takes it).

    **Sign and scale:** as `beta -> 0` the update tends to `-2 alpha dL/dk`, gradient descent on
    the loss `L = 0.5 mean sum_o (V_O - y)^2` with step `2 alpha` (the factor 2 because the
    co-content of a resistor is `k dV^2 / 2`). The one-sided estimate errs by O(beta);
    `centered=True` nudges by `+beta` and `-beta`, `dk = -(alpha / (2 beta)) mean[(dV_{+beta})^2
    - (dV_{-beta})^2]`, and errs by O(beta²) (it costs one more nudged state). On nonlinear
    networks `(dV)^2` is twice the derivative of the edge's co-content by its parameter.

    On a linear network the nudged state costs no extra factorization: it is the free state
    plus the Green's function's response to the injected currents.

    **Arguments:** `alpha` learning rate (> 0), `beta` nudge strength (> 0, siemens: the
    current injected per volt of error), `centered`, `k_min`, `k_max` conductance bounds.

    ```python
    rule = jn.rules.equilibrium_propagation(alpha=0.05, beta=1e-3, centered=True)
    ```
    """
    return EquilibriumPropagation(alpha=alpha, beta=beta, centered=centered, k_min=k_min, k_max=k_max)
