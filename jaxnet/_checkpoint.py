"""Resumable long runs: segments of work, with the state saved after each one."""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import jax
import numpy as np


def _signature(tree) -> list:
    """Tree structure, shapes and dtypes: what a checkpoint must match to be resumed."""
    return [str(jax.tree.structure(tree))] + [[list(np.shape(x)), str(np.asarray(x).dtype)] for x in jax.tree.leaves(tree)]


def run_resumable(
    segment: Callable[[Any, int], tuple[Any, dict]],
    state: Any,
    n_segments: int,
    path: str,
    *,
    progress: bool = True,
) -> tuple[Any, dict[str, np.ndarray]]:
    """Run `state, record = segment(state, i)` for `i < n_segments`, saving progress after each.

    After every segment the state and all records so far are written to `path` (a `.npz`
    file, replaced atomically), so an interrupted run loses at most the segment in flight.
    Called again with the same `path`, it resumes after the last completed segment. Make
    `segment` deterministic in `(state, i)` (e.g. derive keys with `jax.random.fold_in(key, i)`)
    and a resumed run gives exactly the uninterrupted result.

    **Arguments:**

    - `segment`: `(state, i) -> (state, record)`; typically a jitted chunk of training steps.
      `record` is a dict of arrays (e.g. losses) kept for every segment.
    - `state`: initial state, a pytree of arrays (e.g. the conductances of a whole sweep).
    - `n_segments`: number of segments.
    - `path`: checkpoint file.
    - `progress`: show a progress bar (if `tqdm` is installed).

    **Returns:** `(state, records)`: the final state, and the records as a dict of arrays
    stacked over segments (leading axis `n_segments`).

    **Raises:** `ValueError` if `path` holds a checkpoint of a different run (another state
    structure, shape or dtype, or another `n_segments`).
    """
    state_signature = _signature(state)
    records: list[dict] = []
    start = 0
    if os.path.exists(path):
        with np.load(path) as saved:
            meta = json.loads(str(saved["meta"]))
            if meta["state"] != state_signature or meta["n_segments"] != n_segments:
                raise ValueError(
                    f"{path} holds a checkpoint of a different run (state structure, shapes or "
                    "number of segments differ); delete it or choose another path."
                )
            start = meta["done"]
            leaves = [saved[f"state_{i}"] for i in range(len(jax.tree.leaves(state)))]
            state = jax.tree.unflatten(jax.tree.structure(state), leaves)
            stacked = {name: saved[f"record/{name}"] for name in meta["record_names"]}
            records = [{name: value[j] for name, value in stacked.items()} for j in range(start)]
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=n_segments, initial=start, unit="segment")
        except ImportError:
            pass
    for i in range(start, n_segments):
        state, record = segment(state, i)
        if not isinstance(record, dict):
            raise ValueError(f"segment must return (state, record) with record a dict of arrays; got {type(record).__name__}.")
        records.append({name: np.asarray(value) for name, value in record.items()})
        _save(path, state, state_signature, records, n_segments)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return state, {name: np.stack([r[name] for r in records]) for name in records[0]} if records else {}


def _save(path, state, state_signature, records, n_segments):
    leaves = {f"state_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(state))}
    leaves.update({f"record/{name}": np.stack([r[name] for r in records]) for name in records[0]})
    meta = dict(state=state_signature, n_segments=n_segments, done=len(records), record_names=list(records[0]))
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, meta=json.dumps(meta), **leaves)
    os.replace(tmp, path)
