"""`conductance_trajectory`: the conductances of a run every few steps, `train` continued in a scan."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._network import Network
from ._solve import solver_for
from ._tasks import Task
from ._train import TrainState, check_arguments, initial_state, train
from .rules._base import Rule


def conductance_trajectory(
    net: Network,
    task: Task,
    rule: Rule,
    start: Float[Array, " edges"] | TrainState,
    *,
    key: PRNGKeyArray | None = None,
    steps: int,
    every: int = 1,
    **train_kwargs,
) -> tuple[TrainState, Float[Array, "records edges"]]:
    """The conductances of a run every `every` steps: `train` continued in a `lax.scan`.

    Because a run continued from its `TrainState` is the uninterrupted run bit for bit, the
    recorded conductances are those of `train(net, task, rule, start, key=key, steps=steps)`.
    Each record costs one extra solve (the loss `train` logs at the end of a call).

    **Arguments:** as `train`; `steps` a multiple of `every`; `train_kwargs` go to `train`
    (`batch_size`, `solver`).

    **Returns:** `(state, k)`: the final `TrainState` and `k` `(steps // every + 1, E)`, the
    conductances at steps `0, every, ..., steps` of this call.
    """
    if every < 1 or steps % every:
        raise ValueError(f"steps ({steps}) must be a positive multiple of every ({every}).")
    if train_kwargs.get("method") is not None:  # the deprecated name warns here, at the caller's line
        train_kwargs["solver"] = solver_for(net, train_kwargs.pop("solver", None), train_kwargs.pop("method"))
    if not isinstance(start, TrainState):
        check_arguments(net, task, rule, start, key, steps, train_kwargs.get("batch_size"), 1)
        start = initial_state(net, task, rule, jnp.asarray(start, jnp.result_type(start, float)), key)
    elif key is not None:
        raise ValueError("a TrainState carries its own key: pass key=None when continuing a run.")

    def record(state, _):
        state = train(net, task, rule, state, steps=every, log_every=every, **train_kwargs).state
        return state, state.conductances

    state, ks = jax.lax.scan(record, start, length=steps // every)
    return state, jnp.concatenate([start.conductances[None], ks])
