"""The rule interface shared by every learning rule."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray

from .._states import Measurement, Physics


class Rule(eqx.Module):
    """A learning rule: a pair of pure functions `init` and `update` (as in optax).

    Hyperparameters are fields (pytree leaves), so a rule can be built inside `vmap` with
    traced values (e.g. a sweep over `alpha`, `eta` or `p`) and `jit` does not recompile for
    new values. Every rule keeps conductances in `[k_min, k_max]` (`bounds`). `key` comes
    first, as in `jax.random`; the state is a pytree that `train` carries from step to step
    and returns in `TrainState`, so a run continues exactly where it stopped.
    """

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray, k: Float[Array, " edges"]) -> Any:
        """State of the rule for initial conductances `k` `(E,)`."""

    @abc.abstractmethod
    def update(
        self, key: PRNGKeyArray, k: Float[Array, " edges"], physics: Physics, state: Any
    ) -> tuple[Float[Array, " edges"], Any, Measurement]:
        """One step: `(k_new, state_new, measurement)`, the measurement taken at `k`."""

    @property
    def bounds(self) -> tuple[Any, Any]:
        """`(k_min, k_max)`: the conductance range the rule keeps `k` in."""
        return self.k_min, self.k_max


def clip(k, k_min, k_max):
    """Clip conductances to `[k_min, k_max]`."""
    return jax.numpy.clip(k, k_min, k_max)
