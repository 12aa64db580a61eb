"""Config keys: what a key of a sweep config is (`Key`), the checks a key's values pass, and the
keys every config has whatever its kinds (the `[sweep]` section, each section's `kind`, the
initial conductances and the desync probability `p`). The kinds' own keys are registered with
them (`_registry`)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from .._checks import CONSTRAINTS, Interval
from ..rules import Desync

#: The default of a key that must be given (or that each kind defaults on its own).
REQUIRED = object()


@dataclasses.dataclass(frozen=True)
class Key:
    """One config key.

    **Arguments:**

    - `default`: its value when the config does not give it, or `REQUIRED`.
    - `check`: `check(value)` returns None for an allowed value, else what is allowed (e.g.
      `"an integer >= 2"`); `integer`, `number`, `choice`, `boolean` and `constrained` make them.
    - `doc`: what it means.
    - `static`: whether it changes the compiled program (a group of its own); else it is traced
      (vmapped inside one program).
    - `grid`: whether a list of values is a grid axis (else a list is refused).
    """

    default: Any
    check: Callable[[Any], str | None]
    doc: str = ""
    static: bool = True
    grid: bool = True


def integer(low: int | None = None) -> Callable[[Any], str | None]:
    """A check: an integer (`>= low`)."""
    says = "an integer" + ("" if low is None else f" >= {low}")
    return lambda v: None if isinstance(v, int) and not isinstance(v, bool) and (low is None or v >= low) else says


def number(interval: Interval = Interval(-math.inf, math.inf)) -> Callable[[Any], str | None]:
    """A check: a finite number in `interval` (a `jaxnet._checks.Interval`)."""
    def check(v):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and interval.contains(v)
        return None if ok else f"a finite number in {interval}"
    return check


def constrained(kind: str) -> Callable[[Any], str | None]:
    """A check: a finite number meeting the declared constraint `kind` (`Rule.constraints`)."""
    return number(CONSTRAINTS[kind])


def choice(*options) -> Callable[[Any], str | None]:
    """A check: one of `options`."""
    return lambda v: None if v in options else "one of " + ", ".join(repr(o) for o in options)


def boolean(v) -> str | None:
    """A check: true or false."""
    return None if isinstance(v, bool) else "true or false"


def _batch(v) -> str | None:
    return None if v == "full" or (integer(1)(v) is None) else "'full' or an integer >= 1"


def _auto_or_int(v) -> str | None:
    return None if v == "auto" or (integer(1)(v) is None) else "'auto' or an integer >= 1"


def _auto_or_positive(v) -> str | None:
    return None if v == "auto" or (constrained("positive")(v) is None) else "'auto' or a finite number > 0"


#: The words of the `solver` key, each a solver class's `jn.` name in lowercase.
SOLVERS = ("auto", "dense", "cg", "cg_then_dense")


#: The keys of each section that do not depend on its kind, in order; a section's kinds' keys
#: go after the key `KIND_KEYS_AFTER` names. `kind` itself is added with the registered kinds.
SECTION_KEYS: dict[str, dict[str, Key]] = {
    "sweep": {
        "steps": Key(1000, integer(1), "learning steps per run (updates per edge with clock = 'edge_updates')"),
        "log_every": Key(100, integer(1), "log losses every this many steps (and after the last)"),
        "clock": Key("steps", choice("steps", "edge_updates"),
                     "what steps and log_every count: learning steps, or updates per edge (p x step, "
                     "so a point with update probability p runs steps / p steps)", grid=False),
        "batch_size": Key("full", _batch, "examples per step: 'full' or a mini-batch size"),
        "networks": Key(8, integer(1), "network instances (network seeds) per grid point", grid=False),
        "seeds": Key(1, integer(1), "training seeds (initial conductances, PRNG) per network", grid=False),
        "seed": Key(0, integer(0), "master seed: every network, task and key derives from it", grid=False),
        "dtype": Key("float32", choice("float32", "float64"), "floating-point precision"),
        "solver": Key("auto", choice(*SOLVERS), "the linear solver: jn.Auto, jn.Dense, jn.CG or jn.CGThenDense "
                      "(with elements, inside jn.Newton); until jaxnet 0.3 this key was 'method'"),
        "rtol": Key("auto", _auto_or_positive, "solver tolerance on the componentwise backward error, "
                    "|b - A x| <= rtol (|A||x| + |b|) ('auto': 8 eps ~ 9.5e-7 in float32, 1e-10 in float64; "
                    "Newton's current imbalance: 1e-4 in float32)"),
        "atol": Key(0.0, constrained("non_negative"), "solver tolerance on the absolute residual"),
        "max_steps": Key("auto", _auto_or_int, "CG iteration cap ('auto': 4 x nodes)"),
        "track_cosine": Key(False, boolean, "log the cosine of each logged update with -grad"),
        "chunk_size": Key("auto", _auto_or_int, "runs per compiled call ('auto': fits memory)", grid=False),
        "checkpoint_every": Key(1000, integer(1), "save progress about every this many steps (a p grid under "
                                "clock = 'edge_updates': its smallest p; larger p save more often)", grid=False),
    },
    "network": {
        "k0_low": Key(1.0, constrained("positive"), "initial conductances drawn uniform in [k0_low, k0_high]",
                      static=False),
        "k0_high": Key(1.0, constrained("positive"), "upper end of the initial conductances", static=False),
    },
    "task": {},
    "rule": {
        "p": Key(1.0, constrained(Desync.constraints["p"]), "desync: probability that an edge updates in a step",
                 static=False),
    },
}

#: Config keys renamed since an earlier jaxnet: `(section, old name) -> new name`.
RENAMED_KEYS = {("sweep", "method"): "solver"}

#: The results table's columns that are not config keys (`_store.rows`): no key may take their names.
RUN_COLUMNS = ("run", "point", "network_seed", "init_seed", "instance", "step", "edge_updates", "loss",
               "normalized_loss", "test_loss", "accuracy", "test_accuracy", "cosine", "at_bound", "status",
               "failure", "failed_step")

#: Where in its section a kind's keys go: after this key (`kind` is first).
KIND_KEYS_AFTER = {"network": "kind", "task": "kind", "rule": "p"}

#: The default kind of a section (REQUIRED: the config must name one).
DEFAULT_KIND = {"network": "disordered", "task": "regression", "rule": REQUIRED}
