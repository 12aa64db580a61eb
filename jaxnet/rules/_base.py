"""The rule interface shared by every learning rule."""

from __future__ import annotations

import abc
import dataclasses
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .._checks import CONSTRAINTS, check_bounds, check_constraint, violates
from .._results import RESULTS, failed, first_failure
from .._states import Measurement, Physics


class Rule(eqx.Module):
    """A learning rule: a pair of pure functions `init` and `update` (as in optax).

    Hyperparameters are fields (pytree leaves), so a rule can be built inside `vmap` with
    traced values (e.g. a sweep over `alpha`, `eta` or `p`) and `jit` does not recompile for
    new values. `key` comes first, as in `jax.random`; the state is a pytree that `train`
    carries from step to step and returns in `TrainState`, so a run continues exactly where it
    stopped.

    **Bounds.** A rule keeps conductances in `[k_min, k_max]` by declaring the two as fields
    (`k_min: float = 1e-6`, `k_max: float = 1e6`: hyperparameters like any other, traced in a
    sweep); `bounds` reads them. Its `update` returns `k + dk` as it comes: `step`, which
    `train` calls, applies `update` and then the clip to `bounds`, the one place a rule's bounds
    act. A rule without them is unbounded (`bounds` is `(0, inf)`), and `step` leaves its
    conductances as they are: `train` refuses any that are not finite and positive. (A wrapper,
    as `desync`, has no bounds fields: its `bounds` are the wrapped rule's, which its update
    steps, clipped once.)

    `constraints` declares, once, the range of each hyperparameter field (`"positive"`,
    `"non_negative"`, `"probability"` ([0, 1]) or `"fraction"` ([0, 1))); a rule with `k_min`,
    `k_max` fields must have `0 < k_min < k_max`. Concrete values are checked when the rule is
    built (`ValueError`); traced ones (a rule built inside `vmap`) by `constraint_checks`, which
    `train` turns into the run's failure (`RESULTS.bad_hyperparameter`, naming the constraint
    broken, as the eager check does).
    """

    constraints: ClassVar[dict[str, str]] = {}

    #: True for a rule whose `update` keeps `k` in `bounds` by construction, which `step` then
    #: does not clip: `discrete` (its levels lie within the bounds up to rounding; a clip would
    #: move a level rounded past one off the grid).
    keeps_bounds: ClassVar[bool] = False

    if TYPE_CHECKING:
        # The bounds, declared here and held as fields by each rule that has them (see
        # `bounds`). Not fields of this class: a base class's fields come first in every rule's
        # fields, which would reorder its positional arguments and its sweep config keys, and a
        # rule redeclaring one with a default would then fail to define.
        k_min: Float[Array, ""] | float
        k_max: Float[Array, ""] | float

    @classmethod
    def field_constraints(cls) -> dict[str, str]:
        """`{field: constraint}` of every constrained field (a name of `jaxnet._checks.CONSTRAINTS`):
        `constraints`, and `k_min`, `k_max` positive for a rule with those fields. The eager
        check, the traced check (`invalid`) and a sweep config's validation all read it."""
        bounds = {"k_min": "positive", "k_max": "positive"} if cls._has_bounds() else {}
        return {**cls.constraints, **bounds}

    @classmethod
    def _has_bounds(cls) -> bool:
        """Whether the rule declares its bounds (fields `k_min`, `k_max`)."""
        return {"k_min", "k_max"} <= {f.name for f in dataclasses.fields(cls)}

    def __check_init__(self):
        for name, kind in self.field_constraints().items():
            check_constraint(name, getattr(self, name), kind)
        if self._has_bounds():
            check_bounds(self.k_min, self.k_max)

    def constraint_checks(self) -> tuple[tuple[str, Callable[[], Bool[Array, ""]]], ...]:
        """Each declared constraint as `(what it says, broken)`: "eta must be > 0", and a
        function giving, in-graph, whether the (possibly traced) values break it. A wrapper adds
        the wrapped rule's. `invalid` and the run's failure (which names the broken one) read it."""
        checks = [(f"{name} {CONSTRAINTS[kind].says()}", lambda name=name, kind=kind: violates(getattr(self, name), kind))
                  for name, kind in self.field_constraints().items()]
        if self._has_bounds():
            checks.append(("k_min must be < k_max", lambda: ~jnp.all(jnp.asarray(self.k_min) < jnp.asarray(self.k_max))))
        return tuple(checks)

    def invalid(self) -> Bool[Array, ""]:
        """Whether a hyperparameter breaks its declared range (for traced values, in-graph)."""
        bad = [broken() for _, broken in self.constraint_checks()]
        return jnp.any(jnp.stack(bad)) if bad else jnp.array(False)

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray, k: Float[Array, " edges"]) -> Any:
        """State of the rule for initial conductances `k` `(E,)`."""

    @abc.abstractmethod
    def update(
        self, key: PRNGKeyArray, k: Float[Array, " edges"], physics: Physics, state: Any
    ) -> tuple[Float[Array, " edges"], Any, Measurement]:
        """One step: `(k_new, state_new, measurement)`, the measurement taken at `k`. `k_new` is
        not clipped to `bounds` (`step` does that)."""

    def step(
        self, key: PRNGKeyArray, k: Float[Array, " edges"], physics: Physics, state: Any
    ) -> tuple[Float[Array, " edges"], Any, Measurement]:
        """`update`, its conductances then clipped to `bounds`: one step as `train` takes it.

        The one place a rule's bounds act, for every rule (not meant to be overridden; a rule
        with no bounds, or one that `keeps_bounds`, is not clipped). Step a rule by hand with it."""
        k_new, state, meas = self.update(key, k, physics, state)
        if self._has_bounds() and not self.keeps_bounds:
            k_new = jnp.clip(k_new, self.k_min, self.k_max)
        return k_new, state, meas

    @property
    def bounds(self) -> tuple[Any, Any]:
        """`(k_min, k_max)`: the conductance range the rule keeps `k` in (`(0, inf)` for a rule
        without `k_min`, `k_max` fields)."""
        return (self.k_min, self.k_max) if self._has_bounds() else (0.0, float("inf"))


def adjoint_checked(meas: Measurement, grad) -> Measurement:
    """`meas` with `RESULTS.adjoint` where the forward solve passed but the gradient is not
    finite: its adjoint solve failed (which it reports only by making the gradient NaN, so the
    backward error it reached is unknown: NaN, not the forward solve's)."""
    finite = jnp.all(jnp.isfinite(grad))
    bad = RESULTS.where(finite, RESULTS.successful, RESULTS.adjoint)
    meas = eqx.tree_at(lambda m: m.info.residual, meas,
                       jnp.where(failed(meas.info.result) | finite, meas.info.residual, jnp.nan))
    return eqx.tree_at(lambda m: m.info.result, meas, first_failure(meas.info.result, bad))
