"""Result codes of jaxnet's compiled work, and the errors they become on the host.

Nothing inside a compiled jaxnet program raises: a raise inside `jit` needs a host callback,
and a callback that raises on one device while another waits in a collective aborts the whole
process (XLA's rendezvous timeout). Instead every solve returns a `RESULTS` code as data, per
instance, as lineax does; `train` carries the first failure of a run in its `TrainState`
(a `Failure`), the failed run's outputs become NaN, and the host raises:

- `jn.solve` and `jn.train` called outside `jit` raise a `SolverError` themselves;
- under your own `jax.jit`, call `jn.check(result)` (or `result.check()`) on the host: it
  raises a `SolverError` naming every failed instance, the step, the backward error reached
  against the one required, and the conductance range.

Errors: every error jaxnet raises on purpose derives from `JaxnetError`. Bad input found at
Python time (a wrong shape, a negative conductance, a floating node, a bad config key) raises
`ValueError`, as Python code does: `ConfigError` and `SweepError` are both `JaxnetError`s and
`ValueError`s; the plain ones are `ValueError`s alone.
"""

from __future__ import annotations

import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._checks import CONSTRAINTS


class JaxnetError(Exception):
    """The base class of every error jaxnet raises on purpose (see the module docs)."""


class SolverError(JaxnetError):
    """A solve, or a training run, failed its checks: the message says which, where and why."""


class RESULTS(eqxi.Enumeration):
    """What became of a solve or a run: `RESULTS.successful`, or why it failed.

    Returned as data (an `equinox` enumeration item, an int32 array underneath) by every
    solve and carried by `train` in `TrainState.failure`; `RESULTS[item]` is the message.
    """

    successful = ""
    nonfinite = ("non-finite voltages: a conductance or a source value is not finite, or a node is "
                 "floating (no path of positive conductance to a fixed node)")
    singular = ("the system is singular (a pivot of the elimination vanished): a node is floating, with no "
                "path of positive conductance to a fixed node (a conductance too small for the precision "
                "to hold counts as zero; a node whose conductances sum past the precision's largest number, about 3e38 "
                "in float32, overflows and fails the same way)")
    dense_residual = "the dense solve's backward error is above the tolerance"
    cg_residual = "CG did not reach the tolerance within its iteration cap (jn.CG(max_steps=...))"
    newton = "Newton did not converge: a free node's current imbalance is above its tolerance"
    nudge_too_strong = ("the nudged state of centered equilibrium propagation has no solution: its -beta "
                        "nudge (a negative conductance at the outputs) made the system indefinite; use a smaller beta")
    adjoint = ("the gradient's adjoint solve failed (the gradient is NaN): it did not meet its tolerance (CG's "
               "iteration cap too low, or the network too badly conditioned for this precision)")
    bad_conductance = ("a conductance is not finite, or is negative (solve needs k >= 0; train needs "
                       "initial conductances k0 > 0)")
    bad_rule_output = ("the rule returned conductances that are not finite and positive (a rule must "
                       "keep k in (0, inf): clip it)")
    bad_hyperparameter = ("a rule hyperparameter is out of its range (alpha, eta, beta > 0; p in [0, 1]; "
                          "0 < k_min < k_max; threshold and noise >= 0; in float32 a k_min below 1.2e-38 flushes to 0), "
                          "or train's traced steps and log_every do not make its intervals")
    # (`describe` names the broken constraint itself, from `Failure.constraint`, where it is known.)
    bad_examples = "the task's examples hold a non-finite value (NaN or inf)"


def first_failure(*codes) -> RESULTS:
    """The first of `codes` (RESULTS items, in order of precedence) that is not successful."""
    out = RESULTS.successful
    for code in reversed(codes):
        out = RESULTS.where(code == RESULTS.successful, out, code)
    return out


def failed(code) -> Array:
    """True where `code` (a RESULTS item) is not `successful`."""
    return code != RESULTS.successful


class Failure(eqx.Module):
    """The first failure of a run (or `result == RESULTS.successful` and NaN elsewhere).

    - `result`: a `RESULTS` item.
    - `step`: the step of the run at which it failed (-1 if it did not).
    - `residual`: the worst backward error the failing solve reached (NaN if not a solve).
    - `tolerance`: the backward error the solver required.
    - `k_low`, `k_high`: the smallest and largest conductance at the failure.
    - `constraint`: for `RESULTS.bad_hyperparameter`, which of `constraints` was broken (its
      index; -1 otherwise).
    - `constraints` (static): what each hyperparameter constraint of the run says, in order
      ("eta must be > 0", ...; `train_constraints` of the rule the run began with, which a
      continued run keeps, so its state keeps one tree structure), so the host names the
      broken one.
    """

    result: RESULTS
    step: Int[Array, ""]
    residual: Float[Array, ""]
    tolerance: Float[Array, ""]
    k_low: Float[Array, ""]
    k_high: Float[Array, ""]
    constraint: Int[Array, ""]
    constraints: tuple[str, ...] = eqx.field(static=True, default=())

    @staticmethod
    def none(dtype, constraints: tuple[str, ...] = ()) -> "Failure":
        nan = jnp.array(jnp.nan, dtype)
        return Failure(RESULTS.successful, jnp.int32(-1), nan, nan, nan, nan, jnp.int32(-1), constraints)


#: The words of a broken `k_min > 0` (as `Rule.constraint_checks` says them), which float32 adds to.
_K_MIN_POSITIVE = f"k_min {CONSTRAINTS['positive'].says()}"


def _advice(result: str, k_low: float, k_high: float, dtype) -> str:
    """What to try for a failure of kind `result` (a RESULTS name), given the conductance range."""
    if np.isnan(k_low) or np.isnan(k_high):  # not known (a SolveInfo carries no conductances)
        decades = 0.0
    else:
        decades = np.log10(k_high / k_low) if k_low > 0 and np.isfinite(k_high / k_low) else np.inf
    single = np.dtype(dtype) == np.float32
    if result not in ("dense_residual", "cg_residual", "singular", "newton", "adjoint"):
        return ""
    tips = []
    if result == "singular":
        tips.append("give every node a path of positive conductance to a fixed node")
        if k_low < 10 * np.finfo(dtype).tiny:
            tips.append("compute in float64: a conductance is near this precision's smallest normal number")
        return "; ".join(tips)
    if single and (result != "cg_residual" or decades > 3):
        tips.append("compute in float64 (jax.config.update('jax_enable_x64', True) and float64 conductances; "
                    "sweep.dtype = 'float64')")
    if result == "dense_residual":
        tips.append("try solver=jn.CG()")
    if result == "cg_residual":
        tips.append("raise jn.CG(max_steps=...)")
    if result == "newton":
        tips.append("raise jn.Newton(max_steps=...)")
    if result == "adjoint":
        tips.append("with solver=jn.CG(...), raise its max_steps or use jn.Auto() (its gradients take the dense solve "
                    "below 200 nodes)")
    if decades > (5 if single else 12):
        tips.append("narrow the conductance range (the rule's k_min, k_max)")
    tips.append(f"loosen the solver's rtol (e.g. {'jn.Newton' if result == 'newton' else 'jn.Auto'}(rtol=...))")
    return "; ".join(tips)


def describe(failure: Failure, index=None) -> str:
    """One line saying what `failure` (one instance's, concrete) was, with its numbers."""
    code = int(np.asarray(failure.result._value))
    name = list(RESULTS._name_to_item)[code]
    where = f"instance {index}: " if index is not None else ""
    step = int(failure.step)
    message = RESULTS._index_to_message[code]
    broken = int(failure.constraint)
    if name == "bad_hyperparameter" and 0 <= broken < len(failure.constraints):
        message = f"a hyperparameter is out of its range: {failure.constraints[broken]}"
        if failure.constraints[broken] == _K_MIN_POSITIVE and np.asarray(failure.residual).dtype == np.float32:
            message += " (in float32 a k_min below 1.2e-38 flushes to 0)"
    line = f"{where}{f'step {step}: ' if step >= 0 else ''}{message}"
    residual, tolerance = float(failure.residual), float(failure.tolerance)
    if name in ("dense_residual", "cg_residual", "newton"):
        line += f"; backward error reached {residual:.3g}, required <= {tolerance:.3g}"
    k_low, k_high = float(failure.k_low), float(failure.k_high)
    if np.isfinite(k_low) and np.isfinite(k_high):
        line += f"; conductances span [{k_low:.3g}, {k_high:.3g}]"
    advice = _advice(name, k_low, k_high, np.asarray(failure.residual).dtype)
    return line + (f". Advice: {advice}." if advice else ".")


def check(obj) -> None:
    """Raise a `SolverError` naming every failed instance of a `TrainResult` or `TrainState`
    (or a `SolveInfo` from `jn.solve(..., return_info=True)`).

    Use it on the host after a `jax.jit(jax.vmap(jn.train ...))` (nothing can raise inside your
    `jit`): it does nothing when every instance succeeded. `train` called outside `jit` calls
    it for you.

    ```python
    result = jax.jit(jax.vmap(run))(k0s, keys)
    jn.check(result)   # SolverError: 1 of 4 instances failed ... instance 2: step 0: ...
    ```
    """
    if hasattr(obj, "iterations") and hasattr(obj, "result"):  # a SolveInfo, from jn.solve(..., return_info=True)
        nan = jnp.full(jnp.shape(obj.result._value), jnp.nan, jnp.result_type(obj.residual))
        none = jnp.full(jnp.shape(nan), -1, jnp.int32)
        obj = Failure(obj.result, none, obj.residual, obj.tolerance, nan, nan, none)
    if isinstance(obj, Failure):
        failure = obj
    elif hasattr(obj, "state") or hasattr(obj, "failure"):
        failure = obj.state.failure if hasattr(obj, "state") else obj.failure
    else:
        raise TypeError(f"jn.check takes a TrainResult, a TrainState, a Failure or a SolveInfo; got {type(obj).__name__}.")
    failure = jax.device_get(failure)
    codes = np.asarray(failure.result._value)
    bad = np.argwhere(codes != 0)
    if not len(bad):
        return
    lines = []
    for index in bad[:10]:
        one = jax.tree.map(lambda a: np.asarray(a)[tuple(index)], failure)
        lines.append(describe(one, tuple(int(i) for i in index) if codes.ndim > 1 else
                              (int(index[0]) if codes.ndim == 1 else None)))
    more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
    total = codes.size
    head = f"jaxnet: {len(bad)} of {total} instances failed; their outputs are NaN:" if codes.ndim else "jaxnet:"
    raise SolverError(head + "\n  " + "\n  ".join(lines) + more)
