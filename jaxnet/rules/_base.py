"""The rule interface shared by every learning rule."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._network import is_concrete
from .._states import Measurement, Physics


class Rule(eqx.Module):
    """A learning rule: a pair of pure functions `init` and `update` (as in optax).

    Hyperparameters are fields (pytree leaves), so a rule can be built inside `vmap` with
    traced values (e.g. a sweep over `alpha`, `eta` or `p`) and `jit` does not recompile for
    new values.
    """

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray, k: Float[Array, " edges"]) -> Any:
        """State of the rule for initial conductances `k` `(E,)`."""

    @abc.abstractmethod
    def update(
        self, key: PRNGKeyArray, k: Float[Array, " edges"], physics: Physics, state: Any
    ) -> tuple[Float[Array, " edges"], Any, Measurement]:
        """One step: `(k_new, state_new, measurement)`, the measurement taken at `k`."""


def clip(k, k_min, k_max):
    """Clip conductances to `[k_min, k_max]`."""
    return jax.numpy.clip(k, k_min, k_max)


def check_positive(name: str, value) -> None:
    """Raise `ValueError` unless `value` is > 0 (skipped for traced values)."""
    if is_concrete(value) and not np.all(np.asarray(value) > 0):
        raise ValueError(f"{name} must be > 0; got {value}.")


def check_bounds(k_min, k_max) -> None:
    """Raise `ValueError` unless 0 < k_min < k_max (skipped for traced values)."""
    check_positive("k_min", k_min)
    if is_concrete(k_min, k_max) and not np.all(np.asarray(k_min) < np.asarray(k_max)):
        raise ValueError(f"k_min must be < k_max; got k_min={k_min}, k_max={k_max}.")
