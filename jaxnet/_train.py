"""`train`: one `lax.scan` over learning steps, written for one network (batch with `vmap`)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ._network import Network, is_concrete
from ._solver import Method, check_conductances, check_no_floating
from ._states import Physics, transfer_loss
from ._tasks import Task
from .rules._base import Rule


class TrainResult(eqx.Module):
    """What `train` returns. `L` is the number of logged steps (see `steps`).

    - `conductances` `(E,)`: final conductances.
    - `steps` `(L,)`: the logged step numbers `0, log_every, ..., steps`.
    - `loss` `(L,)`: training loss (full training set) at those steps.
    - `test_loss` `(L,)` or None: test loss at those steps, if the task has test data.
    - `accuracy`, `test_accuracy` `(L,)` or None: fraction classified right (classification).
    - `cosine` `(L,)` or None: cosine between the step's change of `k` and `-grad` of the
      training loss, at each logged step but the last (the last entry is NaN, no step follows);
      only with `track_cosine=True`.
    """

    conductances: Float[Array, " edges"]
    steps: Int[Array, " logged"]
    loss: Float[Array, " logged"]
    test_loss: Float[Array, " logged"] | None = None
    accuracy: Float[Array, " logged"] | None = None
    test_accuracy: Float[Array, " logged"] | None = None
    cosine: Float[Array, " logged"] | None = None

    @property
    def normalized_loss(self) -> Float[Array, " logged"]:
        """`C / C0`: training loss relative to its value at step 0."""
        return self.loss / self.loss[..., :1]


def _accuracy(transfer, x, y):
    """Fraction of examples whose highest output voltage is at the target's highest output."""
    return jnp.mean(jnp.argmax(x @ jnp.swapaxes(transfer, -1, -2), -1) == jnp.argmax(y, -1), -1)


def _cosine(a, b):
    norm = jnp.linalg.norm(a) * jnp.linalg.norm(b)
    return jnp.where(norm > 0, jnp.sum(a * b) / jnp.where(norm > 0, norm, 1), 0.0)


def _extrapolate(warm):
    """CG warm start: linear extrapolation of the last two solutions (the last one at first).

    Conductances change smoothly from step to step, so this first-order guess cuts the CG
    iterations per step about threefold against reusing the last solution (measured on a
    32x32 grid: 31 -> 10). The dense path ignores it.
    """
    previous, before, seen = warm
    return jnp.where(seen >= 2, 2 * previous - before, previous)


def _remember(warm, solution):
    previous, _, seen = warm
    return solution, previous, seen + 1


def _check(net, task, rule, k0, steps, batch_size, log_every):
    if not isinstance(rule, Rule):
        raise ValueError(f"rule must be a jaxnet rule (jn.rules.*); got {type(rule).__name__}.")
    if steps < 1 or log_every < 1:
        raise ValueError(f"steps and log_every must be >= 1; got steps={steps}, log_every={log_every}.")
    n_train = task.x_train.shape[0]
    if batch_size is not None and not 1 <= batch_size <= n_train:
        raise ValueError(f"batch_size must be None or between 1 and {n_train} (training examples); got {batch_size}.")
    if jnp.shape(k0) != (net.n_edges,):
        raise ValueError(f"k0 must have shape ({net.n_edges},) (one conductance per edge); got {jnp.shape(k0)}.")
    task.check(net)
    if is_concrete(k0, net.senders, task.inputs, task.ground):
        check_conductances(net, k0)
        if not np.all(np.asarray(k0) > 0):
            raise ValueError(f"k0 must be > 0; edge {int(np.flatnonzero(np.asarray(k0) <= 0)[0])} is not.")
        check_no_floating(net, k0, np.concatenate([np.asarray(task.inputs), np.asarray(task.ground)]))


def train(
    net: Network,
    task: Task,
    rule: Rule,
    k0: Float[Array, " edges"],
    *,
    key: PRNGKeyArray,
    steps: int = 1000,
    batch_size: int | None = None,
    log_every: int = 1,
    method: Method = "auto",
    track_cosine: bool = False,
) -> TrainResult:
    """Train one network's conductances on a task with a learning rule.

    Each step: pick the step's examples (all, or `batch_size` drawn without replacement from
    the key), let the rule measure the network (one solve for free and clamped states) and
    update `k`. Written for ONE network; batch over instances, networks of equal size, keys or
    rule hyperparameters with `jax.vmap` at the call site, and `jax.jit` it for speed:

    ```python
    run = jax.jit(jax.vmap(lambda k0, key: jn.train(net, task, rule, k0, key=key, steps=500)))
    result = run(k0s, keys)   # k0s (B, E), keys (B,)
    ```

    **Arguments:**

    - `net`, `task`: the network and the task (terminals, examples).
    - `rule`: a rule from `jn.rules`.
    - `k0`: initial conductances `(E,)`, > 0.
    - `key`: PRNG key; the same key gives the same result, bit for bit.
    - `steps`: number of learning steps.
    - `batch_size`: None for full batch, else examples per step.
    - `log_every`: log the losses every this many steps (and after the last step).
    - `method`: solver path, ``"auto"``, ``"dense"`` or ``"cg"``; CG is warm-started by
      extrapolating the previous two steps' solutions.
    - `track_cosine`: also log the cosine between each logged step's change of `k` and
      `-grad` of the training loss (one extra gradient per logged step).

    **Returns:** a `TrainResult`. The loss at a logged step comes from the free state the rule
    already solved (its transfer matrix), so logging costs no extra solve, except one after
    the last step.
    """
    _check(net, task, rule, k0, steps, batch_size, log_every)
    dtype = jnp.result_type(k0, float)
    k0 = jnp.asarray(k0, dtype)
    x_train, y_train = task.x_train.astype(dtype), task.y_train.astype(dtype)
    n_train = x_train.shape[0]

    def physics(x, y, guess):
        return Physics(net, task.inputs, task.outputs, task.ground, x, y, method, guess)

    def step(carry, step_key, *, logged):
        k, state, warm, converged = carry
        guess = _extrapolate(warm)
        batch_key, rule_key = jax.random.split(step_key)
        if batch_size is None:
            x, y = x_train, y_train
        else:
            pick = jax.random.choice(batch_key, n_train, (batch_size,), replace=False)
            x, y = x_train[pick], y_train[pick]
        k_new, state, meas = rule.update(rule_key, k, physics(x, y, guess), state)
        carry = (k_new, state, _remember(warm, meas.solution), converged & meas.info.converged)
        if not logged:
            return carry, None
        cosine = jnp.nan
        if track_cosine:
            grad, _ = jax.grad(physics(x_train, y_train, guess).loss, has_aux=True)(k)
            cosine = _cosine(k_new - k, -grad)
        return carry, (meas.transfer, cosine)

    def chunk(carry, chunk_keys):
        """One logged step, then the rest of the chunk unlogged."""
        carry, out = step(carry, chunk_keys[0], logged=True)
        carry, _ = jax.lax.scan(lambda c, kk: step(c, kk, logged=False), carry, chunk_keys[1:])
        return carry, out

    init_key, loop_key = jax.random.split(key)
    step_keys = jax.random.split(loop_key, steps)
    n_full, rest = divmod(steps, log_every)
    n_columns = task.inputs.shape[0] + task.outputs.shape[0]
    no_solution = jnp.zeros((net.n_nodes, n_columns), dtype)
    carry = (k0, rule.init(init_key, k0), (no_solution, no_solution, jnp.int32(0)), jnp.array(True))
    chunk_keys = step_keys[: n_full * log_every].reshape((n_full, log_every) + step_keys.shape[1:])
    carry, (transfers, cosines) = jax.lax.scan(chunk, carry, chunk_keys)
    if rest:
        carry, (t_rest, c_rest) = chunk(carry, step_keys[n_full * log_every :])
        transfers = jnp.concatenate([transfers, t_rest[None]])
        cosines = jnp.concatenate([cosines, jnp.asarray(c_rest, cosines.dtype)[None]])
    k_final, _, warm, converged = carry
    final_meas = physics(x_train, y_train, _extrapolate(warm)).responses(k_final)[2]
    final = final_meas.transfer
    transfers = jnp.concatenate([transfers, final[None]])
    cosines = jnp.concatenate([cosines, jnp.full((1,), jnp.nan, cosines.dtype)])
    logged_steps = np.minimum(np.arange(transfers.shape[0]) * log_every, steps)
    logged_steps[-1] = steps

    def evaluate(x, y):
        if x is None:
            return None, None
        x, y = x.astype(dtype), y.astype(dtype)
        loss = jax.vmap(transfer_loss, (0, None, None))(transfers, x, y)
        return loss, (_accuracy(transfers, x, y) if task.classification else None)

    loss, accuracy = evaluate(x_train, y_train)
    test_loss, test_accuracy = evaluate(task.x_test, task.y_test)
    result = TrainResult(
        conductances=k_final,
        steps=jnp.asarray(logged_steps),
        loss=loss,
        test_loss=test_loss,
        accuracy=accuracy,
        test_accuracy=test_accuracy,
        cosine=cosines if track_cosine else None,
    )
    # Guard every output, so the checks survive whichever part the caller keeps.
    result = eqx.error_if(
        result,
        ~(jnp.all(jnp.isfinite(k_final)) & jnp.all(jnp.isfinite(transfers))),
        "jaxnet.train: non-finite conductances or voltages. Check the task's examples for "
        "NaN/inf and that no node is floating.",
    )
    return eqx.error_if(
        result,
        ~(converged & final_meas.info.converged),
        "jaxnet.train: the CG solver hit its iteration cap; the network may be very badly "
        "conditioned (conductances spanning many decades). Try method='dense' or float64.",
    )
