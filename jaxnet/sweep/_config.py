"""Sweep configuration: a TOML file, validated once at the boundary into typed objects.

A config has four sections: `[sweep]` (steps, logging, instances, numerics), `[network]`,
`[task]` and one or more `[[rule]]` tables. Any value of a *grid key* may be a list: the sweep
runs the cartesian product of all lists (each `[[rule]]` table expands on its own, and the rule
tables add up). Keys marked *static* change the compiled program (a separate group); the
others are traced and vmapped inside one program. `schema()` is the single description of
every key: its default, whether it is a grid key and static, what values it allows; the keys
of the network, task and rule kinds come from their registrations (`_registry`, `_kinds`).
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import tomllib
from typing import Any

from .._results import JaxnetError
from . import _kinds  # noqa: F401  (registers the built-in kinds)
from ._keys import RENAMED_KEYS, REQUIRED
from ._registry import kind_of, kinds_using, registered_kinds, schema


def columns() -> tuple[str, ...]:
    """The config columns of the results table: every grid key (the kind of a section is named
    after the section: `network`, `task`, `rule`), in the order of `schema()`."""
    return tuple((section if key == "kind" else key)
                 for section, keys in schema().items() for key, spec in keys.items() if spec.grid)


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
        cartesian product of the list values in the order the keys appear in `schema()`.
        """
        out = []
        spec = schema()
        for rule in self.rules:
            sections = {"sweep": self.sweep, "network": self.network, "task": self.task, "rule": rule}
            axes = []
            for section, keys in spec.items():
                for key, k in keys.items():
                    if k.grid:
                        column = section if key == "kind" else key
                        values = sections[section][key]
                        axes.append([(column, v) for v in (values if isinstance(values, list) else [values])])
            for combo in itertools.product(*axes):
                point = dict(combo)
                if self.sweep["clock"] == "edge_updates":
                    point["steps"], point["log_every"] = (
                        _steps_for_updates(point[k], point["p"], f"sweep.{k}") for k in ("steps", "log_every"))
                for section, keys in spec.items():
                    kind = point.get(section)
                    for key, k in keys.items():
                        if key == "kind" or not k.grid or kinds_using(section, key) is None:
                            continue
                        own = kind_of(section, kind).keys.get(key)
                        if own is None:
                            point[key] = None
                        elif point[key] is None:
                            point[key] = own.default
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
    spec = schema()[section]
    kind_values = raw.get("kind", spec["kind"].default) if "kind" in spec else None
    kinds = kind_values if isinstance(kind_values, list) else [kind_values]
    for kind in kinds if "kind" in spec else ():  # before the keys: a kind's keys are unknown without it
        if kind is REQUIRED:
            raise ConfigError(f"{where} needs a 'kind': {spec['kind'].check(None)}.")
        problem = spec["kind"].check(kind)
        if problem:
            close = difflib.get_close_matches(kind, registered_kinds(section), n=1) if isinstance(kind, str) else []
            raise ConfigError(f"{section}.kind in {where} is {kind!r}; allowed: {problem} (the kinds registered in "
                              f"this process).{f' Did you mean {close[0]!r}?' if close else ''} Your own kinds: "
                              "register them with jaxnet.sweep's register_network, register_task or register_rule "
                              "before loading the config.")
    for key in raw:
        if (section, key) in RENAMED_KEYS:
            raise ConfigError(f"the key '{key}' in {where} is now '{RENAMED_KEYS[section, key]}' (renamed in "
                              f"jaxnet 0.3, with the same values): rename it in your config.")
        if key not in spec:
            close = difflib.get_close_matches(key, list(spec), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else f" Valid keys: {', '.join(spec)}."
            raise ConfigError(f"unknown key '{key}' in {where}.{hint}")
    out: dict[str, Any] = {}
    for key, k in spec.items():
        name = f"{section}.{key}"
        value = raw.get(key, k.default)
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list):
            if not k.grid:
                raise ConfigError(f"{name} in {where} cannot be a list: it is not a grid axis.")
            if not value:
                raise ConfigError(f"{name} in {where} is an empty list: give at least one value.")
        if key == "kind":  # checked above
            out[key] = value
            continue
        using = kinds_using(section, key)
        checks = [k] if using is None else [kind_of(section, kd).keys[key] for kd in kinds if kd in using]
        if key in raw and not checks:
            raise ConfigError(
                f"{name} in {where} is not used by kind {', '.join(map(repr, kinds))} "
                f"(it applies to {', '.join(map(repr, using))})."
            )
        if not checks:
            out[key] = None
            continue
        if value is REQUIRED:
            missing = [kd for kd in kinds if kd in using and kind_of(section, kd).keys[key].default is REQUIRED]
            if missing:
                raise ConfigError(f"{name} is required in {where} for kind {', '.join(map(repr, missing))}.")
            out[key] = None  # the kind's default, filled in per grid point
            continue
        for v in values:
            problem = next((p for p in (c.check(v) for c in checks) if p), None)
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
    a missing required key, a rule its class refuses (e.g. `k_min >= k_max`), a mini-batch
    larger than the training set.

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
    known = tuple(schema())
    for section in raw:
        if section not in known:
            close = difflib.get_close_matches(section, known, n=1)
            hint = f" Did you mean [{close[0]}]?" if close else f" Sections: {', '.join(known)}."
            raise ConfigError(f"unknown section [{section}].{hint}")
    rules = raw.get("rule")
    if rules is None:
        raise ConfigError("the config needs at least one [[rule]] table with a 'kind'.")
    rules = [dict(r) for r in (rules if isinstance(rules, list) else [rules])]
    sections = {s: dict(raw.get(s, {})) for s in ("sweep", "network", "task")}
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        if section not in known or not key:
            if key:
                close = [f"{c}.{key}" for c in difflib.get_close_matches(section, known, n=1)]
            else:  # no section: the sections that have this key
                close = [f"{c}.{section}" for c in known if section in schema()[c]][:1]
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"override '{dotted}' must be 'section.key' with section one of "
                              f"{', '.join(known)}.{hint}")
        tables = rules if section == "rule" else [sections[section]]
        kinds = kinds_using("rule", key) if section == "rule" and key in schema()["rule"] else None
        if kinds is not None:
            tables = [t for t in rules if t.get("kind") in kinds] or tables
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
    """Checks across keys, per grid point: initial conductances in order, the kinds' own checks
    (each point's rule is built with its values, so the rule class refuses what it refuses, as
    `k_min >= k_max`), mini-batches that fit the training set, and a CG iteration cap that
    some point's solver can use."""
    rules_seen = set()
    points = config.points()
    capped = [point for point in points if point["max_steps"] != "auto"]
    if capped and all(point["solver"] == "dense" for point in capped):
        raise ConfigError(f"sweep.max_steps ({capped[0]['max_steps']}) caps CG's iterations, and sweep.solver = "
                          "'dense' has none (a direct solve): remove max_steps, or use solver 'auto', 'cg' or "
                          "'cg_then_dense'.")
    for point in points:
        if point["k0_low"] > point["k0_high"]:
            raise ConfigError(f"network.k0_low ({point['k0_low']}) must be <= network.k0_high ({point['k0_high']}).")
        for section in ("network", "task"):
            check = kind_of(section, point[section]).check
            problem = check(point) if check else None
            if problem:
                raise ConfigError(problem)
        rule = kind_of("rule", point["rule"])
        values = tuple((key, point[key]) for key in rule.keys)
        if (rule.name, values) not in rules_seen:
            rules_seen.add((rule.name, values))
            try:
                rule.build(point)
            except ValueError as error:
                raise ConfigError(f"[[rule]] kind {rule.name!r}: {error}") from None
        n_train = point.get("n_train") or 1  # a task without n_train has one example (allostery)
        if point["batch_size"] != "full" and point["batch_size"] > n_train:
            raise ConfigError(
                f"sweep.batch_size ({point['batch_size']}) is larger than the training set "
                f"({n_train} examples of task {point['task']!r}); allowed: 'full' or 1 to {n_train}."
            )
