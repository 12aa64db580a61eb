"""The kinds a sweep config may name: each network, task and rule kind registered once, with its
constructor and its keys. The config's schema (`schema`), its validation and the sweep's
construction of each run (`_build`) all read this registry; the built-in kinds are registered
through the same calls (`_kinds`).

A registration holds for the process (register before `jn.sweep`, `jn.load_config` or
`jn.rebuild_run` reads a config that names the kind, in every process of a multi-host sweep).
Its keys are columns of every results table from then on (empty where a run's kind does not
use them), and a sweep directory of a registered kind resumes only where the kind is registered
again, with the same keys."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Callable, Literal

from ..rules import Rule
from ._keys import DEFAULT_KIND, KIND_KEYS_AFTER, REQUIRED, RUN_COLUMNS, SECTION_KEYS, Key, boolean, choice
from ._keys import constrained, integer
from ._keys import number


@dataclasses.dataclass(frozen=True)
class Kind:
    """A registered kind: its section (`"network"`, `"task"` or `"rule"`), name, config keys (in
    order) and constructor (see `register_network`, `register_task`, `register_rule`)."""

    section: str
    name: str
    keys: dict[str, Key]
    build: Callable
    check: Callable[[dict], str | None] | None = None


#: `{section: {name: Kind}}`, in registration order (the order of a section's keys and of its
#: results columns follows it: a kind's new keys go after those of the kinds before it).
KINDS: dict[str, dict[str, Kind]] = {"network": {}, "task": {}, "rule": {}}


def _register(section: str, name: str, keys: dict[str, Key], build: Callable, check: Callable | None = None) -> Kind:
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"a {section} kind's name must be an identifier (letters, digits, _); got {name!r}.")
    if name in KINDS[section]:
        raise ValueError(f"{section} kind {name!r} is already registered.")
    for key, spec in keys.items():
        if key in SECTION_KEYS[section] or key == "kind":
            raise ValueError(f"{section} kind {name!r}: key {key!r} is a key of every [{section}] table; "
                             "give the kind's own keys only.")
        # A grid point is one dict of every section's keys, and the results table has a column per
        # key beside its own columns: one name, one meaning.
        for other in SECTION_KEYS.keys() - {section}:
            if key in SECTION_KEYS[other] or any(key in kind.keys for kind in KINDS.get(other, {}).values()):
                raise ValueError(f"{section} kind {name!r}: key {key!r} is taken by the [{other}] section; a key's "
                                 "name must be unique across sections: rename it.")
        if key in RUN_COLUMNS or key in SECTION_KEYS:
            raise ValueError(f"{section} kind {name!r}: key {key!r} is the name of a results column: rename it.")
        if not spec.grid:
            raise ValueError(f"{section} kind {name!r}: key {key!r} has grid=False; a kind's keys are per grid point "
                             "(its constructor reads each point's value): leave grid at its default, True.")
        if section != "rule" and not spec.static:
            raise ValueError(f"{section} kind {name!r}: key {key!r} is traced; a {section}'s keys are static "
                             f"(each {section} is built before the compiled program runs).")
        for other in KINDS[section].values():
            same = other.keys.get(key)
            if same is not None and (same.static, same.grid) != (spec.static, spec.grid):
                raise ValueError(
                    f"{section} kind {name!r}: key {key!r} is {_says(spec)} but {_says(same)} for kind "
                    f"{other.name!r}; one config key is one results column, static or traced for every kind.")
    kind = Kind(section, name, dict(keys), build, check)
    KINDS[section][name] = kind
    return kind


def _says(key: Key) -> str:
    return ("static" if key.static else "traced") + ("" if key.grid else ", not a grid axis")


def register_network(name: str, build: Callable, keys: dict[str, Key], check: Callable | None = None) -> Kind:
    """Make `[network] kind = name` available to sweep configs.

    **Arguments:**

    - `name`: the kind's name in configs (an identifier).
    - `build`: `build(point, key) -> jn.Network`: the network of a grid point (`point` maps
      each static grid key to its value; the kind's own keys are among them) for a network key
      (`jax.random` key; one per network seed).
    - `keys`: `{key: Key}`, the kind's own config keys, all static (they shape the network).
    - `check`: `check(point) -> str | None`, a check across keys of a grid point (and of other
      sections): None if the point is fine, else what is wrong (a `ConfigError` says it).

    **Returns:** the registered `Kind`.

    **Raises:** `ValueError` if the name is taken or not an identifier, or a key is traced,
    clashes with a key of every table of the section, or with another kind's key of that name
    (static for one, traced for the other).
    """
    return _register("network", name, keys, build, check)


def register_task(name: str, build: Callable, keys: dict[str, Key], check: Callable | None = None) -> Kind:
    """Make `[task] kind = name` available to sweep configs.

    **Arguments:** as `register_network`, with `build(point, key, net) -> jn.Task`: the task of a
    grid point on the network `net` for a task key. A key `n_train`, if the kind has one, is its
    number of training examples (a mini-batch must not exceed it; a kind without one has one
    example).

    **Returns:** the registered `Kind`.
    """
    return _register("task", name, keys, build, check)


def register_rule(
    name: str,
    rule: type[Rule],
    *,
    defaults: dict[str, Any] | None = None,
    docs: dict[str, str] | None = None,
    keys: dict[str, Key] | None = None,
    build: Callable | None = None,
) -> Kind:
    """Make `[[rule]] kind = name` available to sweep configs, its keys derived from the class.

    Each field of `rule` is a config key of the same name: a static field
    (`equinox.field(static=True)`) is a static key, checked by its annotation (`bool`, `int`,
    a `Literal` of choices); any other field is a traced key (vmapped within one compiled
    program), checked by the constraint the class declares for it (`rule.field_constraints()`:
    `Rule.constraints`, and `k_min`, `k_max` > 0), else any finite number. A key's default is
    the field's. Each grid point's rule is then built with its values once when the config is
    read, so the class's own checks (`k_min < k_max`, ...) refuse a bad config before it runs.
    Every rule takes the section's `p` (the `desync` wrapper) too.

    **Arguments:**

    - `name`: the kind's name in configs (an identifier).
    - `rule`: the `jn.rules.Rule` subclass.
    - `defaults`: `{field: value}`, config defaults that differ from (or are missing on) the class.
    - `docs`: `{field: text}`, what the keys derived from fields mean.
    - `keys`: `{key: Key}`, keys declared by hand, in place of fields of those names or in addition
      (with `build`, for keys that are not fields).
    - `build`: `build(point) -> Rule`, the rule of a grid point (`point` maps the grid keys to
      their values, the traced ones as arrays inside the compiled program). Default:
      `rule(**{field: point[field]})`.

    **Returns:** the registered `Kind`.

    **Raises:** `ValueError` as `register_network`, or for a static field whose check cannot be
    read from its annotation (declare it in `keys`).

    ```python
    from jaxnet.sweep import register_rule
    register_rule("momentum_coupled_learning", MomentumCoupledLearning)  # then kind = "momentum_coupled_learning"
    ```
    """
    if not (isinstance(rule, type) and issubclass(rule, Rule)):
        raise ValueError(f"register_rule takes a jn.rules.Rule subclass; got {rule!r}.")
    defaults, docs, keys = defaults or {}, docs or {}, keys or {}
    fields = dataclasses.fields(rule)
    derived = {}
    constraints = rule.field_constraints()
    for field in fields:
        default = defaults.get(field.name, REQUIRED if field.default is dataclasses.MISSING else field.default)
        doc = docs.get(field.name, "")
        if field.name in keys:
            derived[field.name] = keys[field.name]
        elif field.metadata.get("static", False):
            derived[field.name] = Key(default, _annotation_check(rule, field.name), doc)
        else:
            check = constrained(constraints[field.name]) if field.name in constraints else number()
            derived[field.name] = Key(default, check, doc, static=False)
    if build is None:
        build = lambda point: rule(**{f.name: point[f.name] for f in fields})  # noqa: E731
    return _register("rule", name, {**derived, **keys}, build)


def _annotation_check(rule: type, field: str) -> Callable:
    """The check of a static field's values, read from its annotation."""
    hint = typing.get_type_hints(rule).get(field)
    if hint is bool:
        return boolean
    if hint is int:
        return integer()
    if typing.get_origin(hint) is Literal:
        return choice(*typing.get_args(hint))
    raise ValueError(f"{rule.__name__}.{field} is a static field of type {hint}: declare its config key in "
                     "register_rule's keys ({field: Key(default, check, doc)}).")


def kind_of(section: str, name: str) -> Kind:
    """The registered kind `name` of `section`."""
    return KINDS[section][name]


def schema() -> dict[str, dict[str, Key]]:
    """Every key of a config, by section: its fixed keys and each registered kind's keys.

    A kind's key is listed once for all the kinds that use it (their names in `kinds_using`);
    its default here is theirs if they all agree, else `REQUIRED` (each kind's own default is
    filled in per grid point).
    """
    out = {"sweep": dict(SECTION_KEYS["sweep"])}
    for section, kinds in KINDS.items():
        fixed = [("kind", Key(DEFAULT_KIND[section], choice(*kinds), f"the {section} kind"))]
        fixed += list(SECTION_KEYS[section].items())
        at = [key for key, _ in fixed].index(KIND_KEYS_AFTER[section]) + 1
        out[section] = dict(fixed[:at] + list(_kind_keys(kinds.values()).items()) + fixed[at:])
    return out


def _kind_keys(kinds) -> dict[str, Key]:
    """The kinds' keys, each once, in order of first appearance; default shared or REQUIRED."""
    merged: dict[str, Key] = {}
    for kind in kinds:
        for key, spec in kind.keys.items():
            if key not in merged:
                merged[key] = spec
            elif merged[key].default is not REQUIRED and merged[key].default != spec.default:
                merged[key] = dataclasses.replace(merged[key], default=REQUIRED)
    return merged


def registered_kinds(section: str) -> tuple[str, ...]:
    """The names of `section`'s registered kinds, in registration order."""
    return tuple(KINDS[section])


def kinds_using(section: str, key: str) -> tuple[str, ...] | None:
    """The kinds of `section` that have `key` (None for a key of every kind: a fixed key)."""
    if key == "kind" or key in SECTION_KEYS[section]:
        return None
    return tuple(name for name, kind in KINDS[section].items() if key in kind.keys)
