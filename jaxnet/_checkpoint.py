"""Checkpoints: pytrees to disk and back exactly (typed PRNG keys and shardings included),
fingerprints of a run's configuration, and `run_resumable` for long runs in segments."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import types
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ._results import JaxnetError


class SweepError(JaxnetError, ValueError):
    """A sweep (or a checkpoint) that cannot start or resume: its directory holds another sweep,
    or other files, or was written by another jaxnet version."""


# ------------------------------------------------------------------ fingerprints


def jaxnet_version() -> str:
    """The installed jaxnet's version (what fingerprints and sweep directories record)."""
    import importlib.metadata

    return importlib.metadata.version("jaxnet")


class OtherVersionError(SweepError):
    """A checkpoint or sweep directory written by another jaxnet version (`version_mismatch`)."""


def version_mismatch(where: str, saved: str | None, what: str = "a checkpoint") -> OtherVersionError:
    """The error for `where` written by jaxnet `saved` (None: before versions were recorded)."""
    written = f"jaxnet {saved}" if saved else "a jaxnet from before version stamps"
    remedy = ("Use another directory, or --fresh (fresh=True) to delete it and start over." if "sweep" in what
              else "Delete it, or give another path, to start over.")
    return OtherVersionError(
        f"{where} holds {what} written by {written}; this is jaxnet {jaxnet_version()}, which does not resume "
        f"another version's checkpoints (their states and files differ). {remedy}")


def _describe(obj, depth: int = 0) -> str:
    """A stable text description of `obj`: equal for equal configurations, in any process.

    Arrays are described by shape, dtype and a hash of their bytes; equinox modules by their
    type and every field (static ones included); functions (e.g. an optax optimizer's
    `init`/`update`) by their qualified name and the values their closures capture, so
    `optax.sgd(0.1)` and `optax.sgd(0.2)` differ. Memory addresses never enter.
    """
    if depth > 24:
        return "..."
    d = functools.partial(_describe, depth=depth + 1)
    if isinstance(obj, (bool, int, float, complex, str, bytes, type(None))):
        return repr(obj)
    if isinstance(obj, (jax.Array, np.ndarray, np.generic)):
        if isinstance(obj, jax.Array) and jnp.issubdtype(obj.dtype, jax.dtypes.prng_key):
            return f"key[{jax.random.key_impl(obj)}]({d(jax.random.key_data(obj))})"
        a = np.asarray(obj)
        return f"array{a.shape}{a.dtype}:{hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]}"
    if isinstance(obj, types.ModuleType):
        return f"module {obj.__name__}"
    if isinstance(obj, type):
        return f"type {obj.__module__}.{obj.__qualname__}"
    if dataclasses.is_dataclass(obj):  # equinox modules, with their static fields
        fields = ", ".join(f"{f.name}={d(getattr(obj, f.name, None))}" for f in dataclasses.fields(obj))
        return f"{type(obj).__qualname__}({fields})"
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # NamedTuple (optax)
        return f"{type(obj).__qualname__}({', '.join(f'{n}={d(v)}' for n, v in zip(obj._fields, obj))})"
    if isinstance(obj, (list, tuple)):
        return f"{type(obj).__name__}[{', '.join(map(d, obj))}]"
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{d(k)}: {d(v)}" for k, v in sorted(obj.items(), key=lambda kv: repr(kv[0]))) + "}"
    if isinstance(obj, functools.partial):
        return f"partial({d(obj.func)}, {d(obj.args)}, {d(obj.keywords)})"
    if isinstance(obj, types.FunctionType):
        cells = [c.cell_contents for c in (obj.__closure__ or ()) if _cell_filled(c)]
        return f"function {obj.__module__}.{obj.__qualname__}({d(obj.__defaults__)}, {d(cells)})"
    if isinstance(obj, types.MethodType):
        return f"method {d(obj.__func__)} of {d(obj.__self__)}"
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"callable {getattr(obj, '__module__', '')}.{obj.__qualname__}"
    if hasattr(obj, "__dict__"):
        return f"{type(obj).__qualname__}({d(vars(obj))})"
    return f"{type(obj).__qualname__}"


def _cell_filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def fingerprint(**parts: Any) -> dict[str, str]:
    """A digest of each named part of a run's configuration, and the jaxnet version.

    Any pytree, equinox module (rule, task, network; static fields included), optax optimizer
    or plain value can be a part. Two runs with equal parts have equal digests, in any process;
    comparing digests part by part says *which* part of a configuration changed. The entry
    `jaxnet_version` (the version itself, not a digest) is added: a checkpoint written by
    another jaxnet version is refused (`run_resumable`), since its states may differ.

    ```python
    fp = jn.fingerprint(rule=rule, task=task, net=net, steps=1000)
    ```
    """
    digests = {name: hashlib.sha256(_describe(value).encode()).hexdigest()[:20] for name, value in parts.items()}
    return {**digests, "jaxnet_version": jaxnet_version()}


def fingerprint_mismatch(saved: dict[str, str], current: dict[str, str]) -> list[str]:
    """Names of the parts whose digests differ (or that only one side has)."""
    return sorted(name for name in set(saved) | set(current) if saved.get(name) != current.get(name))


# ------------------------------------------------------------------ pytrees to disk and back


def _signature(tree) -> list:
    """Tree structure, shapes and dtypes: what a checkpoint must match to be restored."""
    return [str(jax.tree.structure(tree))] + [[list(np.shape(x)), str(jnp.result_type(x))] for x in jax.tree.leaves(tree)]


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def save_tree(path: str, tree: Any, meta: dict | None = None, arrays: dict[str, np.ndarray] | None = None) -> None:
    """Write `tree` (a pytree of arrays, typed PRNG keys allowed) to `path` atomically.

    The file (`.npz`) is written with `atomic_write`. `meta` (JSON-able) and extra named
    `arrays` are stored with it. Arrays sharded over several processes must be gathered
    first (e.g. `jax.experimental.multihost_utils.process_allgather`).
    """
    leaves = jax.tree.leaves(tree)
    stored = {f"leaf_{i}": np.asarray(jax.random.key_data(x) if _is_key(x) else x) for i, x in enumerate(leaves)}
    header = dict(meta=meta or {}, signature=_signature(tree),
                  key_impls={str(i): str(jax.random.key_impl(x)) for i, x in enumerate(leaves) if _is_key(x)})
    for name, value in (arrays or {}).items():
        stored[f"extra/{name}"] = np.asarray(value)
    atomic_write(path, lambda f: np.savez(f, header=json.dumps(header), **stored))


def atomic_write(path: str, write: Callable[[Any], None]) -> None:
    """Write `path` through `write(binary_file)` into a temporary file beside it, then rename.

    A reader (or a run resumed after a kill) sees the old file or the new one, never half.
    """
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_meta(path: str) -> dict:
    """The `meta` dict stored by `save_tree` at `path`."""
    with np.load(path) as saved:
        return json.loads(str(saved["header"]))["meta"]


def load_tree(path: str, like: Any) -> tuple[Any, dict, dict[str, np.ndarray]]:
    """Read a pytree written by `save_tree`, shaped, typed and placed like `like`.

    Typed PRNG keys come back as keys of the same implementation. Leaves of `like` that are
    `jax.Array`s come back with the same sharding (over the devices of every process, built
    with `jax.make_array_from_callback`), so a restored state runs where the original did.

    **Returns:** `(tree, meta, arrays)`. **Raises:** `ValueError` if the stored tree's
    structure, shapes or dtypes differ from `like`'s.
    """
    with np.load(path) as saved:
        header = json.loads(str(saved["header"]))
        if header["signature"] != _signature(like):
            raise ValueError(
                f"{path} holds a different run's state (tree structure, shapes or dtypes differ); "
                "delete it or choose another path."
            )
        like_leaves, treedef = jax.tree.flatten(like)
        leaves = []
        for i, ref in enumerate(like_leaves):
            value = saved[f"leaf_{i}"]
            if isinstance(ref, jax.Array):
                value = jax.make_array_from_callback(value.shape, ref.sharding, lambda index, v=value: v[index])
            if str(i) in header["key_impls"]:
                value = jax.random.wrap_key_data(value, impl=header["key_impls"][str(i)])
            leaves.append(value)
        arrays = {name[len("extra/"):]: saved[name] for name in saved.files if name.startswith("extra/")}
    return jax.tree.unflatten(treedef, leaves), header["meta"], arrays


# ------------------------------------------------------------------ long runs in segments


def run_resumable(
    segment: Callable[[Any, int], tuple[Any, dict]],
    state: Any,
    n_segments: int,
    path: str,
    *,
    config: dict[str, Any] | None = None,
    progress: bool = True,
) -> tuple[Any, dict[str, np.ndarray]]:
    """Run `state, record = segment(state, i)` for `i < n_segments`, saving progress after each.

    After every segment the state and all records so far are written to `path` (a `.npz`
    file, replaced atomically), so an interrupted run loses at most the segment in flight.
    Called again with the same `path`, it resumes after the last completed segment. Make
    `segment` deterministic in `(state, i)` — e.g. carry a `jn.TrainState` in `state` and
    continue it with `jn.train(..., state, steps=...)` — and a resumed run gives exactly the
    uninterrupted result. Typed PRNG keys in `state` are saved and restored; restored arrays
    keep the shardings of `state`'s.

    **Arguments:**

    - `segment`: `(state, i) -> (state, record)`; typically a jitted chunk of training steps.
      `record` is a dict of arrays (e.g. losses) kept for every segment.
    - `state`: initial state, a pytree of arrays (e.g. the `TrainState`s of a whole sweep).
    - `n_segments`: number of segments.
    - `path`: checkpoint file.
    - `config`: what defines the run (rule, task, network, steps, your own settings...), as
      named parts; each part's `fingerprint` is stored, and a checkpoint whose parts differ is
      refused, naming them.
    - `progress`: show a progress bar (if `tqdm` is installed).

    **Returns:** `(state, records)`: the final state, and the records as a dict of arrays
    stacked over segments (leading axis `n_segments`).

    **Raises:** `SweepError` (a `ValueError`) if `path` was written by another jaxnet version,
    naming both; `ValueError` if it holds a checkpoint of a different run: other `config` parts
    (named in the message), another state structure, shape or dtype, or another `n_segments`.
    """
    current = fingerprint(**(config or {}), n_segments=n_segments)
    records: list[dict] = []
    start = 0
    if os.path.exists(path):
        saved = read_meta(path).get("fingerprint", {})
        if saved.get("jaxnet_version") != current["jaxnet_version"]:
            raise version_mismatch(path, saved.get("jaxnet_version"))
        differ = fingerprint_mismatch(saved, current)
        if differ:
            raise ValueError(
                f"{path} holds a checkpoint of a different run ({', '.join(differ)} differ); "
                "delete it or choose another path."
            )
        state, meta, arrays = load_tree(path, state)
        start = meta["done"]
        records = [{name: arrays[name][j] for name in meta["record_names"]} for j in range(start)]
    bar = _progress_bar(progress, total=n_segments, initial=start, unit="segment")
    for i in range(start, n_segments):
        state, record = segment(state, i)
        if not isinstance(record, dict):
            raise ValueError(f"segment must return (state, record) with record a dict of arrays; got {type(record).__name__}.")
        records.append({name: np.asarray(value) for name, value in record.items()})
        stacked = {name: np.stack([r[name] for r in records]) for name in records[0]}
        save_tree(path, state, dict(fingerprint=current, done=len(records), record_names=list(records[0])), stacked)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return state, {name: np.stack([r[name] for r in records]) for name in records[0]} if records else {}


def _progress_bar(enabled: bool, **kwargs):
    """A tqdm progress bar, or None when disabled or tqdm is missing."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(**kwargs)
