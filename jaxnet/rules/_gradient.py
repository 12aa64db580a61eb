"""Global gradient descent through the same solver: the baseline for the local rules."""

from __future__ import annotations

import equinox as eqx
import jax
import optax
from jaxtyping import Array, Float

from ._base import Rule, adjoint_checked


class GradientDescent(Rule):
    """Gradient of the task loss w.r.t. conductances (adjoint solve), fed to an optax optimizer."""

    optimizer: optax.GradientTransformation = eqx.field(static=True)
    k_min: Float[Array, ""] | float = 1e-6
    k_max: Float[Array, ""] | float = 1e6

    def init(self, key, k):
        return self.optimizer.init(k)

    def update(self, key, k, physics, state):
        (_, meas), grad = jax.value_and_grad(physics.loss, has_aux=True)(k)
        meas = adjoint_checked(meas, grad)
        updates, state = self.optimizer.update(grad, state, k)
        return k + updates, state, meas


def gradient_descent(optimizer: optax.GradientTransformation, k_min=1e-6, k_max=1e6) -> GradientDescent:
    """Gradient descent on the loss `0.5 mean sum_o (V_O^F - y)^2` with any optax optimizer.

    The gradient w.r.t. conductances is taken through the shared solver by autodiff: an
    adjoint solve with the same factorization. The optimizer's update is added to `k`, which
    is then clipped to `[k_min, k_max]` (by `Rule.step`, as `train` takes it).

    ```python
    rule = jn.rules.gradient_descent(optax.sgd(0.1))
    ```
    """
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation (e.g. optax.sgd(0.1)); got {type(optimizer).__name__}.")
    return GradientDescent(optimizer=optimizer, k_min=k_min, k_max=k_max)
