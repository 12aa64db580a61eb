"""Desynchronous learning (Wycoff, Dillavou, Stern, Liu & Durian, J. Chem. Phys. 2022)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import Rule

# The mask key is folded from the step key, so the wrapped rule sees the very key it would see
# unwrapped, and p = 1 reproduces it bit for bit.
_MASK_STREAM = 0x6D61736B


class Desync(Rule):
    """Applies the wrapped rule's update only on edges drawn Bernoulli(`p`) (see `desync`)."""

    rule: Rule
    p: Float[Array, ""] | float

    constraints = {"p": "probability"}
    # No bounds of its own (`bounds` are the wrapped rule's), so `step` does not clip it again:
    # its update is the wrapped rule's `step`, clipped once, masked; an edge not drawn keeps its
    # conductance.

    def constraint_checks(self):
        return super().constraint_checks() + self.rule.constraint_checks()

    @property
    def bounds(self):
        return self.rule.bounds

    def init(self, key, k):
        return self.rule.init(key, k)

    def update(self, key, k, physics, state):
        k_new, state, meas = self.rule.step(key, k, physics, state)
        mask = jax.random.bernoulli(jax.random.fold_in(key, _MASK_STREAM), self.p, jnp.shape(k))
        return jnp.where(mask, k_new, k), state, meas


def desync(rule: Rule, p) -> Desync:
    """Drop the global clock: each step, each edge updates only with probability `p`.

    Independently per edge and per step, from the step's key; edges not drawn keep their
    conductance. `p = 1` reproduces the wrapped rule exactly; `p` may be traced (vmap over it).
    The wrapped rule's own state (e.g. an optimizer's moments) advances every step.

    ```python
    rule = jn.rules.desync(jn.rules.coupled_learning(alpha=0.05, eta=1e-3), p=0.5)
    ```
    """
    if not isinstance(rule, Rule):
        raise ValueError(f"desync wraps a jaxnet rule; got {type(rule).__name__}.")
    return Desync(rule=rule, p=p)
