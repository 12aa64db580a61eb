"""`train`: one `lax.scan` over learning steps, written for one network (batch with `vmap`)."""

from __future__ import annotations

import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ._checks import check_conductances, check_no_floating, is_concrete
from ._network import Network
from ._results import RESULTS, Failure, check, failed, first_failure
from ._solve import solver_for
from ._solver import AbstractSolver, WarmStart
from ._states import Physics, output_loss
from ._tasks import Task
from .rules._base import Rule


class TrainState(eqx.Module):
    """Everything `train`'s loop carries from one step to the next: pass it back to continue.

    `jn.train(net, task, rule, result.state, steps=S)` continues a run exactly: two calls of
    `S` steps give the same conductances and logged losses as one call of `2 S` steps, bit for
    bit, for every rule and under `vmap`. All fields are arrays (batched under `vmap`).

    - `conductances` `(E,)`: the conductances after `step` steps.
    - `rule_state`: the rule's state (e.g. optimizer moments, comparator offsets).
    - `solver_state`: what the solver carries from step to step (its warm start; opaque, the
      same for every solver, so a run may be continued with another one).
    - `step`: steps taken since the run began.
    - `key`: the run's PRNG key; step `t` draws from `jax.random.fold_in(key, t)`.
    - `failure`: the run's first failure (`jn.Failure`; `failure.result` is
      `RESULTS.successful` while it has none). A failed run stops where it failed: its state
      keeps the last good conductances (only `step` goes on counting), and continuing it
      changes nothing.
    - `initial_loss`: the training loss at step 0 of the run (`C0` of `normalized_loss`;
      NaN until the first call has measured it).
    """

    conductances: Float[Array, " edges"]
    rule_state: Any
    solver_state: WarmStart
    step: Int[Array, ""]
    key: PRNGKeyArray
    failure: Failure
    initial_loss: Float[Array, ""]


class TrainResult(eqx.Module):
    """What `train` returns. `L` is the number of logged steps (see `steps`).

    - `state`: a `TrainState` after the last step; pass it to `train` to continue the run.
    - `conductances` `(E,)`: final conductances (`state.conductances`, or NaN for a failed run,
      whose `state.conductances` keep the last good values).
    - `steps` `(L,)`: the logged step numbers, counted from the start of the run:
      `s, s + log_every, ..., s + steps` where `s` is the step the call started from.
    - `loss` `(L,)`: training loss (full training set) at those steps.
    - `test_loss` `(L,)` or None: test loss at those steps, if the task has test data.
    - `accuracy`, `test_accuracy` `(L,)` or None: fraction classified right (classification).
    - `cosine` `(L,)` or None: cosine between the step's change of `k` and `-grad` of the
      training loss, at each logged step but the last (the last entry is NaN, no step follows);
      only with `track_cosine=True`.
    - `at_bound` `(L,)`: fraction of edges whose conductance sits at `k_min` or `k_max`.
    - `solver_iterations`: the solver's iterations summed over this call's steps: CG's (0 on
      the dense path), Newton's with elements. (`cg_iterations` is its deprecated name.)

    A run that failed (a solve that missed its tolerance, a rule that returned non-positive
    conductances, a hyperparameter out of range; see `jn.RESULTS`) has NaN from the failed
    step on, NaN `conductances`, and says why in `failure`; `check()` raises on the host.
    """

    state: TrainState
    steps: Int[Array, " logged"]
    loss: Float[Array, " logged"]
    at_bound: Float[Array, " logged"]
    solver_iterations: Int[Array, ""]
    test_loss: Float[Array, " logged"] | None = None
    accuracy: Float[Array, " logged"] | None = None
    test_accuracy: Float[Array, " logged"] | None = None
    cosine: Float[Array, " logged"] | None = None

    @property
    def conductances(self) -> Float[Array, " edges"]:
        """Final conductances `(E,)` (NaN for a failed run)."""
        k = self.state.conductances
        return jnp.where(failed(self.failure.result)[..., None], jnp.nan, k)

    @property
    def cg_iterations(self) -> Int[Array, ""]:
        """Deprecated name of `solver_iterations` (it counts Newton's iterations too)."""
        warnings.warn("TrainResult.cg_iterations is deprecated: use solver_iterations.", DeprecationWarning,
                      stacklevel=2)
        return self.solver_iterations

    @property
    def failure(self) -> Failure:
        """The run's first failure, if any (`state.failure`)."""
        return self.state.failure

    @property
    def normalized_loss(self) -> Float[Array, " logged"]:
        """`C / C0`: training loss relative to its value at step 0 of the run (not of this
        call), so a run continued in several calls draws one curve."""
        return self.loss / self.state.initial_loss[..., None]

    def check(self) -> None:
        """Raise `jn.SolverError` naming each failed instance (see `jn.check`)."""
        check(self)


def _cosine(a, b):
    norm = jnp.linalg.norm(a) * jnp.linalg.norm(b)
    return jnp.where(norm > 0, jnp.sum(a * b) / jnp.where(norm > 0, norm, 1), 0.0)


def initial_state(net: Network, task: Task, rule: Rule, k0: Float[Array, " edges"], key: PRNGKeyArray,
                  solver: AbstractSolver | None = None) -> TrainState:
    """The `TrainState` of a new run at conductances `k0` `(E,)` with PRNG `key`, at step 0
    (`solver`: the one `train` will take, None for `jn.Auto()`; its `init` gives the state).

    `train(net, task, rule, initial_state(net, task, rule, k0, key), ...)` is exactly
    `train(net, task, rule, k0, key=key, ...)`: useful to build the states of a batch of runs
    once, then advance them in segments.
    """
    init_key, loop_key = jax.random.split(key)
    n_columns = task.inputs.shape[0] + task.outputs.shape[0]
    return TrainState(
        conductances=k0,
        rule_state=rule.init(init_key, k0),
        solver_state=solver_for(net, solver).init(net, n_columns, k0.dtype),
        step=jnp.int32(0),
        key=loop_key,
        failure=Failure.none(k0.dtype, train_constraints(rule)),
        initial_loss=jnp.array(jnp.nan, k0.dtype),
    )


def check_arguments(net, task, rule, start, key, steps, batch_size, log_every, intervals=None):
    if not isinstance(rule, Rule):
        raise ValueError(f"rule must be a jaxnet rule (jn.rules.*); got {type(rule).__name__}.")
    if intervals is not None and not (isinstance(intervals, int) and intervals >= 1):
        raise ValueError(f"intervals must be None or an int >= 1; got {intervals!r}.")
    if is_concrete(steps, log_every):
        if steps < 1 or log_every < 1:
            raise ValueError(f"steps and log_every must be >= 1; got steps={steps}, log_every={log_every}.")
        if intervals is not None and not _fits(int(steps), int(log_every), intervals):
            raise ValueError(f"steps ({steps}) must lie in ((intervals - 1) * log_every, intervals * log_every] "
                             f"= ({(intervals - 1) * log_every}, {intervals * log_every}] (intervals={intervals}).")
    elif intervals is None:
        raise ValueError("traced steps or log_every need intervals= (the number of logged intervals, an int).")
    n_train = task.x_train.shape[0]
    if batch_size is not None and not 1 <= batch_size <= n_train:
        raise ValueError(f"batch_size must be None or between 1 and {n_train} (training examples); got {batch_size}.")
    if isinstance(start, TrainState):
        if key is not None:
            raise ValueError("a TrainState carries its own key: pass key=None when continuing a run.")
        k0 = start.conductances
    else:
        if key is None:
            raise ValueError("train needs key= (a jax.random.key) when starting from conductances.")
        k0 = start
    if jnp.shape(k0) != (net.n_edges,):
        raise ValueError(f"k0 must have shape ({net.n_edges},) (one conductance per edge); got {jnp.shape(k0)}.")
    task.check(net)
    if is_concrete(k0, net.senders, task.inputs, task.ground):
        check_conductances(net, k0)
        if not np.all(np.asarray(k0) > 0):
            raise ValueError(f"k0 must be > 0; edge {int(np.flatnonzero(np.asarray(k0) <= 0)[0])} is not.")
        check_no_floating(net, k0, np.concatenate([np.asarray(task.inputs), np.asarray(task.ground)]))


#: What train's own traced arguments must satisfy (the last of a run's constraints).
_SCHEDULE = ("train's traced steps and log_every must satisfy (intervals - 1) * log_every < steps "
             "<= intervals * log_every, both >= 1")


def train_constraints(rule: Rule) -> tuple[str, ...]:
    """What each constraint a run checks in-graph says, in order (`Failure.constraints`): the
    rule's (`Rule.constraint_checks`), then train's traced schedule."""
    return tuple(label for label, _ in rule.constraint_checks()) + (_SCHEDULE,)


def _fits(steps, log_every, intervals):
    """Whether `steps` steps logged every `log_every` make `intervals` logged intervals (traced or not)."""
    return (steps >= 1) & (log_every >= 1) & ((intervals - 1) * log_every < steps) & (steps <= intervals * log_every)


def train(
    net: Network,
    task: Task,
    rule: Rule,
    start: Float[Array, " edges"] | TrainState,
    *,
    key: PRNGKeyArray | None = None,
    steps: int | Int[Array, ""] = 1000,
    batch_size: int | None = None,
    log_every: int | Int[Array, ""] = 1,
    solver: AbstractSolver | None = None,
    track_cosine: bool = False,
    intervals: int | None = None,
    method=None,
) -> TrainResult:
    """Train one network's conductances on a task with a learning rule.

    Each step: pick the step's examples (all, or `batch_size` drawn without replacement from
    the step's key), let the rule measure the network (one solve for free and clamped states)
    and update `k`. Written for ONE network; batch over instances, networks of equal size, keys
    or rule hyperparameters with `jax.vmap` at the call site, and `jax.jit` it for speed:

    ```python
    run = jax.jit(jax.vmap(lambda k0, key: jn.train(net, task, rule, k0, key=key, steps=500)))
    result = run(k0s, keys)   # k0s (B, E), keys (B,)
    ```

    To continue a run, pass its `result.state` in place of `k0` (and no key):
    `jn.train(net, task, rule, result.state, steps=500)`. Two calls of `S` steps give exactly
    the conductances and losses of one call of `2 S` steps.

    **Arguments:**

    - `net`, `task`: the network and the task (terminals, examples).
    - `rule`: a rule from `jn.rules`.
    - `start`: initial conductances `k0` `(E,)`, > 0; or a `TrainState` to continue from.
    - `key`: PRNG key of a new run (required with `k0`, refused with a `TrainState`); the
      same key gives the same result, bit for bit.
    - `steps`: number of learning steps in this call (an int; see `intervals` for a traced one).
    - `batch_size`: None for full batch, else examples per step.
    - `log_every`: log the losses every this many steps of this call (and after its last step).
    - `solver`: a solver object (None: `jn.Auto()`; see `jn.solve`); CG is warm-started by
      extrapolating the previous two steps' solutions (`TrainState.solver_state`).
      `jn.Auto()` takes that warm-started CG at every size, with dense Cholesky (up to
      `dense_max_nodes` nodes) for any step where CG fails its check. Every solve checks its
      true residual (see `jn.Dense`, `jn.CG`).
    - `track_cosine`: also log the cosine between each logged step's change of `k` and
      `-grad` of the training loss (one extra gradient per logged step).
    - `intervals`: None (`steps` and `log_every` are ints), or the number of logged intervals
      of this call, an int: then `steps` and `log_every` may be traced int scalars (shape `()`,
      counted in steps), so that one compiled program serves several step counts (a sweep's p
      grid under `clock = "edge_updates"`). They must satisfy `(intervals - 1) * log_every <
      steps <= intervals * log_every`; the call logs `intervals + 1` steps, the same steps and
      numbers as with their values as ints, and its loop is a `while_loop` of `steps + 1`
      iterations. Under `vmap` an unbatched `steps` keeps the loop plain; a batched one runs
      every instance as long as the longest (the others wait, unchanged). Traced values that
      break the rule fail the run (`RESULTS.bad_hyperparameter`).
    - `method`: deprecated name of `solver` (also ``"auto"``, ``"dense"``, ``"cg"``).

    **Returns:** a `TrainResult`. The loss at a logged step comes from the free state the rule
    already solved (its transfer matrix), so logging costs no extra solve, except one after
    the last step. A network with nonlinear `Elements` has no transfer matrix: its logged
    losses come from Newton solves of the training (and test) examples at the logged steps.

    **Errors:** a run that fails (a solve that cannot meet its tolerance, a rule that returns
    conductances that are not finite and positive, a traced hyperparameter out of range,
    non-finite examples) stops at that step, and its `failure` says why (`jn.RESULTS`).
    Called outside `jit`, `train` then raises `jn.SolverError`. Under your own `jit`, nothing
    can raise: the failed instance's outputs are NaN and `jn.check(result)` raises on the
    host, naming each failed instance.
    """
    check_arguments(net, task, rule, start, key, steps, batch_size, log_every, intervals)
    solver = solver_for(net, solver, method)
    if not isinstance(start, TrainState):  # built here, so the rule's `init` checks concrete values
        start = initial_state(net, task, rule, jnp.asarray(start, jnp.result_type(start, float)), key, solver)
    # Compiled once per shapes and static values, so eager calls reuse one program (inside a
    # user's `jit` it is inlined).
    result = _train_program(net, task, rule, start, steps, batch_size, log_every, solver, track_cosine, intervals)
    if is_concrete(*jax.tree.leaves(result)):  # outside jit: raise here, on the host
        check(result)
    return result


def _train_loop(net, task, rule, state, steps, batch_size, log_every, solver, track_cosine, intervals):
    """`train` past its Python-time checks, from a `TrainState`."""
    dtype = state.conductances.dtype
    x_train, y_train = task.x_train.astype(dtype), task.y_train.astype(dtype)
    n_train = x_train.shape[0]
    k_min, k_max = rule.bounds
    start_step = state.step
    # Checked once, in-graph (they may be traced, so Python could not look at them): the
    # starting conductances, the examples and the rule's hyperparameters.
    k_start = state.conductances
    examples = [a for a in (task.x_train, task.y_train, task.x_test, task.y_test) if a is not None]
    bad_examples = ~jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in examples]))
    bad_start = ~(jnp.all(jnp.isfinite(k_start)) & jnp.all(k_start > 0))
    bad_schedule = jnp.asarray(False if intervals is None else ~_fits(steps, log_every, intervals))
    broken = jnp.stack([check() for _, check in rule.constraint_checks()] + [bad_schedule])
    # A state begun under another rule keeps its own words (and so its tree structure, which a
    # `lax.scan` or `cond` carrying it needs): a constraint this rule breaks goes unnamed there.
    named = state.failure.constraints == train_constraints(rule)
    state = _record(state, first_failure(
        RESULTS.where(bad_start, RESULTS.bad_conductance, RESULTS.successful),
        RESULTS.where(bad_examples, RESULTS.bad_examples, RESULTS.successful),
        RESULTS.where(jnp.any(broken), RESULTS.bad_hyperparameter, RESULTS.successful)), k_start,
        constraint=jnp.where(jnp.any(broken) & named, jnp.argmax(broken), -1))

    def physics(x, y, solver_state):
        return Physics(net, task.inputs, task.outputs, task.ground, x, y, solver, solver_state)

    # steps 0, log_every, ... below `steps`, and `steps`
    n_logs = (-(-int(steps) // int(log_every)) if intervals is None else intervals) + 1

    def body(i, carry):
        """Step `i` of this call: measure, log if due, update. The extra iteration `i == steps`
        only measures (the final log): one loop body, so the solver is compiled once.

        A run that has failed is frozen: its state no longer changes and its logs are NaN.
        Its solves still run (vmap runs every instance), on harmless unit conductances."""
        state, iterations, logs = carry
        last = i == steps
        done = failed(state.failure.result)
        k = state.conductances
        batch_key, rule_key = jax.random.split(jax.random.fold_in(state.key, state.step))
        if batch_size is None:
            x, y = x_train, y_train
        else:
            pick = jax.random.choice(batch_key, n_train, (batch_size,), replace=False)
            x, y = x_train[pick], y_train[pick]
        k_new, rule_state, meas = rule.step(rule_key, jnp.where(done, 1, k).astype(dtype),
                                            physics(x, y, state.solver_state), state.rule_state)
        if jnp.shape(k_new) != jnp.shape(k):
            raise ValueError(f"the rule's update returned conductances of shape {jnp.shape(k_new)}; "
                             f"expected {jnp.shape(k)} (one per edge).")
        measured = ~done & ~failed(meas.info.result)
        bad_output = ~(jnp.all(jnp.isfinite(k_new)) & jnp.all(k_new > 0)) & ~last
        result = first_failure(meas.info.result, RESULTS.where(bad_output, RESULTS.bad_rule_output, RESULTS.successful))
        new_state = TrainState(
            conductances=k_new,
            rule_state=rule_state,
            solver_state=state.solver_state if meas.solver_state is None else meas.solver_state,
            step=state.step + 1,
            key=state.key,
            failure=state.failure,
            initial_loss=state.initial_loss,
        )
        # A rule's bad output is recorded with its own range (the values at fault), a failed
        # solve with the conductances it solved at.
        at_fault = jnp.where(bad_output & ~failed(meas.info.result), k_new, k)
        stopped = _record(state, RESULTS.where(done, RESULTS.successful, result), at_fault, meas.info)
        # A failed run's step still counts, so a continued call logs the steps it was asked for.
        stopped = eqx.tree_at(lambda s: s.step, stopped, state.step + jnp.where(last, 0, 1).astype(state.step.dtype))
        state = _select(~last & ~done & ~failed(result), new_state, stopped)
        logged = (i % log_every == 0) | last
        cosine = jnp.array(jnp.nan, dtype)
        if track_cosine:
            def measure_cosine():
                grad, _ = jax.grad(physics(x_train, y_train, state.solver_state).loss, has_aux=True)(k)
                return _cosine(k_new - k, -grad).astype(dtype)

            cosine = jax.lax.cond(logged & ~last, measure_cosine, lambda: cosine)
        slot = jnp.where(last, n_logs - 1, i // log_every)
        # What the losses are computed from after the loop: the transfer matrix of a linear
        # network; the conductances of a nonlinear one (its outputs need their own solves).
        entry = (k if meas.transfer is None else meas.transfer, cosine, _fraction_at_bound(k, k_min, k_max), measured)
        logs = jax.tree.map(lambda buf, v: buf.at[slot].set(jnp.where(logged, v, buf[slot])), logs, entry)
        return state, iterations + meas.info.iterations, logs

    n_out, n_in = task.outputs.shape[0], task.inputs.shape[0]
    logged_shape = (n_out, n_in) if net.linear else (net.n_edges,)
    logs = (jnp.zeros((n_logs, *logged_shape), dtype), jnp.zeros((n_logs,), dtype), jnp.zeros((n_logs,), dtype),
            jnp.zeros((n_logs,), bool))
    carry = (state, jnp.int32(0), logs)
    # A `scan` for int steps, a `while_loop` for traced ones.
    state, iterations, (logged, cosines, at_bound, valid) = jax.lax.fori_loop(0, steps + 1, body, carry)
    logged_steps = jnp.minimum(jnp.arange(n_logs) * log_every, steps).at[-1].set(steps)
    # Logs of failed steps hold NaN; what they are evaluated on is made harmless first.
    logged = jnp.where(valid.reshape(-1, *[1] * len(logged_shape)), logged, 0 if net.linear else 1)

    def evaluate(x, y):
        if x is None:
            return None, None
        x, y = x.astype(dtype), y.astype(dtype)
        # lax.map, not vmap: each logged step is evaluated by the same loop body whatever the
        # number of logged steps, so a run split into calls logs bit-identical losses.
        def one(entry):
            outputs = x @ entry.T if net.linear else physics(x, y, None).free_outputs(entry)
            return output_loss(outputs, y), (task.accuracy(outputs, y) if task.classification else 0.0)

        loss, accuracy = jax.lax.map(one, logged)
        nan = jnp.array(jnp.nan, dtype)
        return jnp.where(valid, loss, nan), (jnp.where(valid, accuracy, nan) if task.classification else None)

    loss, accuracy = evaluate(x_train, y_train)
    test_loss, test_accuracy = evaluate(task.x_test, task.y_test)
    state = eqx.tree_at(lambda s: s.initial_loss, state, jnp.where(start_step == 0, loss[0], state.initial_loss))
    return TrainResult(
        state=state,
        steps=start_step + logged_steps.astype(jnp.int32),
        loss=loss,
        at_bound=jnp.where(valid, at_bound, jnp.nan),
        solver_iterations=iterations,
        test_loss=test_loss,
        accuracy=accuracy,
        test_accuracy=test_accuracy,
        cosine=jnp.where(valid, cosines, jnp.nan) if track_cosine else None,
    )


_train_program = eqx.filter_jit(_train_loop)


def _record(state: TrainState, result, k, info=None, constraint=-1) -> TrainState:
    """`state` with `result` recorded as its failure, unless it has one already or `result`
    is successful; `info` (the failing step's `SolveInfo`) gives the backward error reached,
    `constraint` the broken one of a bad hyperparameter (an index into `train_constraints`)."""
    nan = jnp.array(jnp.nan, k.dtype)
    solve_failed = failed(info.result) if info is not None else False
    new = Failure(
        result=result,
        step=state.step,
        residual=jnp.where(solve_failed, info.residual, nan).astype(k.dtype) if info is not None else nan,
        tolerance=jnp.where(solve_failed, info.tolerance, nan).astype(k.dtype) if info is not None else nan,
        k_low=jnp.min(k),
        k_high=jnp.max(k),
        constraint=jnp.asarray(constraint, jnp.int32),
        constraints=state.failure.constraints,
    )
    first = failed(result) & ~failed(state.failure.result)
    return eqx.tree_at(lambda s: s.failure, state, _select(first, new, state.failure))


def _select(pred, on_true, on_false):
    """`on_true` if `pred` else `on_false`, leaf by leaf (PRNG keys through their key data)."""
    def pick(a, b):
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            data = jnp.where(pred, jax.random.key_data(a), jax.random.key_data(b))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(a))
        return jnp.where(pred, a, b)

    return jax.tree.map(pick, on_true, on_false)


def _fraction_at_bound(k, k_min, k_max):
    return jnp.mean((k <= k_min) | (k >= k_max)).astype(k.dtype)
