"""Coupled learning (Stern, Hexner, Rocks & Liu, PRX 2021)."""

from __future__ import annotations

from jaxtyping import Array, Float

from ._base import Rule


class CoupledLearning(Rule):
    """`dk = (alpha / eta) mean[(dV_F)^2 - (dV_C)^2]`; `step` clips to `[k_min, k_max]`."""

    alpha: Float[Array, ""] | float
    eta: Float[Array, ""] | float
    k_min: Float[Array, ""] | float = 1e-6
    k_max: Float[Array, ""] | float = 1e6

    constraints = {"alpha": "positive", "eta": "positive"}

    def init(self, key, k):
        return None

    def update(self, key, k, physics, state):
        d, meas = physics.coupled_contrast(k, self.eta)
        return k + (self.alpha / self.eta) * d, state, meas


def coupled_learning(alpha, eta, k_min=1e-6, k_max=1e6) -> CoupledLearning:
    """Coupled learning: each edge updates from its own free and clamped voltage drops.

    Clamped state: outputs held at `V_O^F + eta (y - V_O^F)`. Update
    `dk = (alpha / eta) * mean over the step's examples of [(dV_F)^2 - (dV_C)^2]`, then `k` is
    clipped to `[k_min, k_max]` (by `Rule.step`, as `train` takes it). On a network with
    nonlinear elements, `(dV)^2` becomes twice the derivative of the edge's co-content with
    respect to its parameter (`Physics.coupled_contrast`), so the rule still reads only the
    edge's own state.

    **Arguments:** `alpha` learning rate (> 0, units of conductance per volt²), `eta` nudge
    amplitude (> 0, dimensionless), `k_min`, `k_max` conductance bounds.

    ```python
    rule = jn.rules.coupled_learning(alpha=0.05, eta=1e-3)
    ```
    """
    return CoupledLearning(alpha=alpha, eta=eta, k_min=k_min, k_max=k_max)
