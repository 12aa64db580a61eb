"""Sweep configuration: a TOML file, validated once at the boundary into typed objects.

A config has four sections: `[sweep]` (steps, logging, instances, numerics), `[network]`,
`[task]` and one or more `[[rule]]` tables. Any value of a *grid key* may be a list: the sweep
runs the cartesian product of all lists (each `[[rule]]` table expands on its own, and the rule
tables add up). Keys marked *static* change the compiled program (a separate group); the
others are traced and vmapped inside one program. `SCHEMA` below is the single description
of every key: its default, whether it is a grid key and static, what values it allows.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import tomllib
from typing import Any, Callable

from .._results import JaxnetError

REQUIRED = object()


@dataclasses.dataclass(frozen=True)
class Key:
    """One config key: default (or REQUIRED), grid axis or not, static or traced, validator."""

    default: Any
    check: Callable[[Any], str | None]
    doc: str
    static: bool = True
    grid: bool = True
    kinds: tuple[str, ...] | None = None  # for kind-specific keys: the kinds that use it


def _int(low: int = 1) -> Callable[[Any], str | None]:
    return lambda v: None if isinstance(v, int) and not isinstance(v, bool) and v >= low else f"an integer >= {low}"


def _number(low: float = 0.0, low_open: bool = True, high: float = math.inf, high_open: bool = True):
    def check(v):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        ok = ok and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
        if ok:
            return None
        left, right = ("(" if low_open else "["), (")" if high_open else "]")
        return f"a finite number in {left}{low:g}, {high:g}{right}"
    return check


def _choice(*options) -> Callable[[Any], str | None]:
    return lambda v: None if v in options else "one of " + ", ".join(repr(o) for o in options)


def _bool(v) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _batch(v) -> str | None:
    return None if v == "full" or (_int(1)(v) is None) else "'full' or an integer >= 1"


def _auto_or_int(v) -> str | None:
    return None if v == "auto" or (_int(1)(v) is None) else "'auto' or an integer >= 1"


def _auto_or_positive(v) -> str | None:
    return None if v == "auto" or (_number(0.0)(v) is None) else "'auto' or a finite number > 0"


def _bias(v) -> str | None:
    return None if v == "none" or (_number(-math.inf)(v) is None) else "'none' or a finite number of volts"


POSITIVE = _number(0.0)
NON_NEGATIVE = _number(0.0, low_open=False)

NETWORK_KINDS = ("disordered", "square", "triangular", "random", "lab")
TASK_KINDS = ("regression", "allostery", "iris")
RULE_KINDS = ("coupled_learning", "discrete", "gradient_descent", "equilibrium_propagation")

SCHEMA: dict[str, dict[str, Key]] = {
    "sweep": {
        "steps": Key(1000, _int(1), "learning steps per run (updates per edge with clock = 'edge_updates')"),
        "log_every": Key(100, _int(1), "log losses every this many steps (and after the last)"),
        "clock": Key("steps", _choice("steps", "edge_updates"),
                     "what steps and log_every count: learning steps, or updates per edge (p x step, "
                     "so a point with update probability p runs steps / p steps)", grid=False),
        "batch_size": Key("full", _batch, "examples per step: 'full' or a mini-batch size"),
        "networks": Key(8, _int(1), "network instances (network seeds) per grid point", grid=False),
        "seeds": Key(1, _int(1), "training seeds (initial conductances, PRNG) per network", grid=False),
        "seed": Key(0, _int(0), "master seed: every network, task and key derives from it", grid=False),
        "dtype": Key("float32", _choice("float32", "float64"), "floating-point precision"),
        "method": Key("auto", _choice("auto", "dense", "cg"), "solver path (jn.Solver.method)"),
        "rtol": Key("auto", _auto_or_positive, "solver tolerance on the componentwise backward error, "
                    "|b - A x| <= rtol (|A||x| + |b|) ('auto': 8 eps ~ 9.5e-7 in float32, 1e-10 in float64; "
                    "Newton's current imbalance: 1e-4 in float32)"),
        "atol": Key(0.0, _number(0.0, low_open=False), "solver tolerance on the absolute residual"),
        "max_steps": Key("auto", _auto_or_int, "CG iteration cap ('auto': 4 x nodes)"),
        "track_cosine": Key(False, _bool, "log the cosine of each logged update with -grad"),
        "chunk_size": Key("auto", _auto_or_int, "runs per compiled call ('auto': fits memory)", grid=False),
        "checkpoint_every": Key(1000, _int(1), "save progress about every this many steps (a p grid under "
                                  "clock = 'edge_updates': its smallest p; larger p save more often)", grid=False),
    },
    "network": {
        "kind": Key("disordered", _choice(*NETWORK_KINDS), "network family"),
        "n_nodes": Key(64, _int(4), "nodes", kinds=("disordered", "random")),
        "coordination": Key(4.0, _number(2.0, low_open=False), "mean edges per node", kinds=("disordered",)),
        "rows": Key(8, _int(2), "lattice rows", kinds=("square", "triangular")),
        "cols": Key(8, _int(2), "lattice columns", kinds=("square", "triangular")),
        "n_edges": Key(128, _int(1), "edges of a random graph", kinds=("random",)),
        "k0_low": Key(1.0, POSITIVE, "initial conductances drawn uniform in [k0_low, k0_high]", static=False),
        "k0_high": Key(1.0, POSITIVE, "upper end of the initial conductances", static=False),
    },
    "task": {
        "kind": Key("regression", _choice(*TASK_KINDS), "the task"),
        "n_train": Key(REQUIRED, _int(1), "training examples (regression: 20, iris: 100)",
                       kinds=("regression", "iris")),
        "n_test": Key(20, _int(0), "test examples", kinds=("regression",)),
        "random_matrix": Key(False, _bool, "draw y = C x's matrix per network", kinds=("regression",)),
        "n_outputs": Key(2, _int(1), "output nodes", kinds=("allostery",)),
        "encoding": Key("one_hot", _choice("one_hot", "levels"),
                        "Iris targets: one output per class (one_hot) or one output at ordered class levels",
                        kinds=("iris",)),
        "readout": Key("argmax", _choice("argmax", "nearest"),
                       "how outputs are read as a class: highest output, or nearest class target (levels: "
                       "'nearest')", kinds=("iris",)),
        "bias": Key("none", _bias, "voltage of a bias (reference) input node, or 'none'", kinds=("iris",)),
    },
    "rule": {
        "kind": Key(REQUIRED, _choice(*RULE_KINDS), "learning rule"),
        "p": Key(1.0, _number(0.0, low_open=False, high=1.0, high_open=False),
                 "desync: probability that an edge updates in a step", static=False),
        "alpha": Key(REQUIRED, POSITIVE, "learning rate of coupled learning or equilibrium propagation",
                     static=False, kinds=("coupled_learning", "equilibrium_propagation")),
        "beta": Key(REQUIRED, POSITIVE, "equilibrium propagation's nudge (current per volt of error)", static=False,
                    kinds=("equilibrium_propagation",)),
        "centered": Key(False, _bool, "equilibrium propagation nudges by +beta and -beta",
                        kinds=("equilibrium_propagation",)),
        "eta": Key(REQUIRED, POSITIVE, "nudge amplitude", static=False, kinds=("coupled_learning", "discrete")),
        "k_min": Key(REQUIRED, POSITIVE, "lowest conductance (coupled/gradient: 1e-6)", static=False),
        "k_max": Key(REQUIRED, POSITIVE, "highest conductance (coupled/gradient: 1e6)", static=False),
        "n_states": Key(128, _int(2), "conductance levels", kinds=("discrete",)),
        "spacing": Key("linear", _choice("linear", "geometric", "resistance"),
                       "level spacing: even in k, in log k, or in resistance 1/k (potentiometer taps)",
                       kinds=("discrete",)),
        "threshold": Key(0.0, NON_NEGATIVE, "dead zone of the comparator", static=False, kinds=("discrete",)),
        "offset_std": Key(0.0, NON_NEGATIVE, "per-edge comparator offset", static=False, kinds=("discrete",)),
        "noise_std": Key(0.0, NON_NEGATIVE, "per-update comparator noise", static=False, kinds=("discrete",)),
        "optimizer": Key("sgd", _choice("sgd", "adam"), "optax optimizer", kinds=("gradient_descent",)),
        "learning_rate": Key(REQUIRED, POSITIVE, "optimizer learning rate", static=False,
                             kinds=("gradient_descent",)),
    },
}

# Defaults that depend on the kind (a REQUIRED key with a default for some kinds).
KIND_DEFAULTS = {
    ("task", "regression"): {"n_train": 20},
    ("task", "iris"): {"n_train": 100},
    ("rule", "coupled_learning"): {"k_min": 1e-6, "k_max": 1e6},
    ("rule", "gradient_descent"): {"k_min": 1e-6, "k_max": 1e6},
    ("rule", "equilibrium_propagation"): {"k_min": 1e-6, "k_max": 1e6},
    ("rule", "discrete"): {"k_min": 0.1, "k_max": 2.0},
}

SECTIONS = tuple(SCHEMA)
#: Keys that are columns of the results table (every grid key; the kind of a section is named
#: after the section: `network`, `task`, `rule`).
COLUMNS = tuple(
    (section if key == "kind" else key) for section in SECTIONS for key, spec in SCHEMA[section].items() if spec.grid
)


class ConfigError(JaxnetError, ValueError):
    """A config that cannot run; the message names the section, the key and what is allowed."""


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """A validated sweep configuration.

    - `sweep`, `network`, `task`: dicts of every key of those sections (defaults filled in);
      a grid key's value is a list of one or more values.
    - `rules`: one such dict per `[[rule]]` table.

    Build it with `load_config` (from a TOML file, TOML text or a dict).
    """

    sweep: dict[str, Any]
    network: dict[str, Any]
    task: dict[str, Any]
    rules: tuple[dict[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        """The normalized config as plain data (TOML/JSON-able)."""
        return {"sweep": self.sweep, "network": self.network, "task": self.task, "rule": list(self.rules)}

    def points(self) -> list[dict[str, Any]]:
        """The grid: one dict per point, `{column: value}`, every grid key of every section.

        Keys a point's kinds do not use are None; kind-dependent defaults are filled in. Order: rule tables in file order, then the
        cartesian product of the list values in the order the keys appear in `SCHEMA`.
        """
        out = []
        for rule in self.rules:
            sections = {"sweep": self.sweep, "network": self.network, "task": self.task, "rule": rule}
            axes = []
            for section, spec_keys in SCHEMA.items():
                for key, spec in spec_keys.items():
                    if spec.grid:
                        column = section if key == "kind" else key
                        values = sections[section][key]
                        axes.append([(column, v) for v in (values if isinstance(values, list) else [values])])
            for combo in itertools.product(*axes):
                point = dict(combo)
                if self.sweep["clock"] == "edge_updates":
                    point["steps"], point["log_every"] = (
                        _steps_for_updates(point[k], point["p"], f"sweep.{k}") for k in ("steps", "log_every"))
                for section, spec_keys in SCHEMA.items():
                    kind = point.get(section)
                    for key, spec in spec_keys.items():
                        if key == "kind" or not spec.grid:
                            continue
                        if spec.kinds is not None and kind not in spec.kinds:
                            point[key] = None
                        elif point[key] is None:
                            point[key] = KIND_DEFAULTS[(section, kind)][key]
                if point not in out:
                    out.append(point)
        return out


def _steps_for_updates(updates: int, p: float, name: str) -> int:
    """Learning steps that give `updates` updates per edge at update probability `p`."""
    steps = round(updates / p) if p > 0 else 0
    if p == 0 or abs(steps * p - updates) > 1e-9 * updates:
        raise ConfigError(
            f"{name} = {updates} updates per edge (clock = 'edge_updates') is not a whole number of "
            f"steps at rule.p = {p}: choose values where {name} / p is an integer (p > 0).")
    return steps


def _where(section: str, index: int | None) -> str:
    return f"[{section}]" if index is None else f"[[rule]] table {index}"


def _normalize_section(section: str, raw: Any, index: int | None = None) -> dict[str, Any]:
    where = _where(section, index)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table of keys; got {type(raw).__name__}.")
    spec = SCHEMA[section]
    for key in raw:
        if key not in spec:
            close = difflib.get_close_matches(key, list(spec), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else f" Valid keys: {', '.join(spec)}."
            raise ConfigError(f"unknown key '{key}' in {where}.{hint}")
    kind_values = raw.get("kind", spec["kind"].default) if "kind" in spec else None
    kinds = kind_values if isinstance(kind_values, list) else [kind_values]
    out: dict[str, Any] = {}
    for key, k in spec.items():
        name = f"{section}.{key}"
        if key in raw:
            value = raw[key]
        else:
            value = k.default
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list):
            if not k.grid:
                raise ConfigError(f"{name} in {where} cannot be a list: it is not a grid axis.")
            if not value:
                raise ConfigError(f"{name} in {where} is an empty list: give at least one value.")
        if key == "kind":
            for v in values:
                if v is REQUIRED:
                    raise ConfigError(f"{where} needs a 'kind': one of {', '.join(RULE_KINDS)}.")
                problem = k.check(v)
                if problem:
                    raise ConfigError(f"{name} in {where} is {v!r}; allowed: {problem}.")
            out[key] = value
            continue
        used_by = [kd for kd in kinds if k.kinds is None or kd in k.kinds]
        if key in raw and not used_by:
            raise ConfigError(
                f"{name} in {where} is not used by kind {', '.join(map(repr, kinds))} "
                f"(it applies to {', '.join(map(repr, k.kinds or ()))})."
            )
        if not used_by:
            out[key] = None
            continue
        if value is REQUIRED:
            missing = [kd for kd in used_by if key not in KIND_DEFAULTS.get((section, kd), {})]
            if missing:
                raise ConfigError(f"{name} is required in {where} for kind {', '.join(map(repr, missing))}.")
            out[key] = None  # the kind's default, filled in per grid point
            continue
        for v in values:
            problem = k.check(v)
            if problem:
                raise ConfigError(f"{name} in {where} is {v!r}; allowed: {problem}.")
        out[key] = value
    return out


def load_config(source: str | dict, overrides: dict[str, Any] | None = None) -> SweepConfig:
    """Read and validate a sweep config.

    **Arguments:**

    - `source`: a path to a TOML file, TOML text (anything containing a newline or a `[`), or
      an already-parsed dict.
    - `overrides`: `{"section.key": value}` applied before validation, e.g.
      `{"sweep.steps": 100}`; `rule.key` sets the key in every `[[rule]]` table whose kind
      uses it.

    **Returns:** a `SweepConfig`.

    **Raises:** `ConfigError` (a `ValueError`) naming the section, the key and what is allowed:
    an unknown section or key (with the closest valid name), a value out of range, an unknown
    kind, an empty list, a list for a key that is not a grid axis, a key the kind does not use,
    a missing required key, a mini-batch larger than the training set.

    ```python
    config = jn.load_config("examples/quick.toml", {"sweep.steps": 200})
    ```
    """
    if isinstance(source, dict):
        raw = {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v) for k, v in source.items()}
    else:
        text = source if ("\n" in source or "[" in source) else open(source, encoding="utf-8").read()
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"the config is not valid TOML: {error}") from None
    for section in raw:
        if section not in SCHEMA:
            close = difflib.get_close_matches(section, SECTIONS, n=1)
            hint = f" Did you mean [{close[0]}]?" if close else f" Sections: {', '.join(SECTIONS)}."
            raise ConfigError(f"unknown section [{section}].{hint}")
    rules = raw.get("rule")
    if rules is None:
        raise ConfigError("the config needs at least one [[rule]] table with a 'kind'.")
    rules = [dict(r) for r in (rules if isinstance(rules, list) else [rules])]
    sections = {s: dict(raw.get(s, {})) for s in ("sweep", "network", "task")}
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        if section not in SCHEMA or not key:
            close = difflib.get_close_matches(section, SECTIONS, n=1) if key else []
            hint = f" Did you mean '{close[0]}.{key}'?" if close else ""
            raise ConfigError(f"override '{dotted}' must be 'section.key' with section one of "
                              f"{', '.join(SECTIONS)}.{hint}")
        tables = rules if section == "rule" else [sections[section]]
        if section == "rule" and key in SCHEMA["rule"] and SCHEMA["rule"][key].kinds is not None:
            using = [t for t in rules if t.get("kind") in SCHEMA["rule"][key].kinds]
            tables = using or tables
        for table in tables:
            table[key] = value
    config = SweepConfig(
        sweep=_normalize_section("sweep", sections["sweep"]),
        network=_normalize_section("network", sections["network"]),
        task=_normalize_section("task", sections["task"]),
        rules=tuple(_normalize_section("rule", r, i) for i, r in enumerate(rules)),
    )
    _check_consistency(config)
    return config


def _check_consistency(config: SweepConfig) -> None:
    """Checks across keys: bounds in order, mini-batches that fit the training set."""
    for point in config.points():
        if point["k0_low"] > point["k0_high"]:
            raise ConfigError(f"network.k0_low ({point['k0_low']}) must be <= network.k0_high ({point['k0_high']}).")
        if point["k_min"] >= point["k_max"]:
            raise ConfigError(f"rule.k_min ({point['k_min']}) must be < rule.k_max ({point['k_max']}).")
        n_train = {"regression": point["n_train"], "iris": point["n_train"], "allostery": 1}[point["task"]]
        if point["task"] == "iris" and not n_train < 150:
            raise ConfigError(f"task.n_train is {n_train}; iris has 150 rows: allowed 1 to 149.")
        if point["task"] == "iris" and point["encoding"] == "levels" and point["readout"] == "argmax":
            raise ConfigError("task.readout = 'argmax' needs one output per class; task.encoding = 'levels' has one "
                              "output: set task.readout = 'nearest'.")
        if point["network"] == "lab" and point["task"] == "iris" and point["encoding"] != "levels":
            raise ConfigError("network.kind = 'lab' wires Iris with one output (jn.LAB_TERMINALS): set "
                              "task.encoding = 'levels' and task.readout = 'nearest'.")
        if point["batch_size"] != "full" and point["batch_size"] > n_train:
            raise ConfigError(
                f"sweep.batch_size ({point['batch_size']}) is larger than the training set "
                f"({n_train} examples of task {point['task']!r}); allowed: 'full' or 1 to {n_train}."
            )
