"""A sweep's directory: checked before a sweep starts, its chunks' files written atomically as
they finish, merged into `results.parquet` and `conductances.npz` at the end."""

from __future__ import annotations

import json
import os
import shutil

import jax
import numpy as np
from jax.experimental import multihost_utils

from .._checkpoint import SweepError, atomic_write, jaxnet_version, version_mismatch
from .._results import RESULTS, describe
from ._keys import RENAMED_KEYS
from ._config import SweepConfig, columns
from ._plan import Group, chunk_name, logged_steps, run_ids

#: What a sweep writes into its directory (and `fresh` deletes).
SWEEP_FILES = ("results.parquet", "conductances.npz", "config.toml", "config.json", "plan.json",
               "metadata.json", "progress.npz", "chunks")


def sync(name: str) -> None:
    """Wait for every process (a no-op in one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json(path: str, data: dict) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=1, default=str).encode()))


def save_npz(path: str, **arrays) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))


def save_parquet(table, path: str) -> None:
    atomic_write(path, lambda f: table.to_parquet(f, index=False))


def diff(saved, current, prefix="") -> list[str]:
    """Dotted names of the config entries that differ between two normalized configs."""
    if isinstance(saved, dict) and isinstance(current, dict):
        return [d for key in sorted(set(saved) | set(current))
                for d in diff(saved.get(key), current.get(key), f"{prefix}{key}.")]
    if isinstance(saved, list) and isinstance(current, list) and prefix == "rule.":
        if len(saved) != len(current):
            return [f"rule (number of [[rule]] tables: {len(saved)} -> {len(current)})"]
        return [d for i, (a, b) in enumerate(zip(saved, current)) for d in diff(a, b, f"rule[{i}].")]
    return [] if saved == current else [f"{prefix[:-1]} ({saved!r} -> {current!r})"]


def prepare_dir(out_dir: str, normalized: dict, fresh: bool, writer: bool) -> None:
    """Refuse a directory that holds another sweep, another version's, or only foreign files;
    `fresh` deletes a sweep's own files (files beside them, as the demo's pictures, stay)."""
    config_path = os.path.join(out_dir, "config.json")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise SweepError(f"{out_dir} is a file, not a directory; give a directory for the sweep.")
    held = os.path.exists(config_path)
    if not held and os.path.isdir(out_dir) and os.listdir(out_dir):  # looked at before anything is deleted
        raise SweepError(f"{out_dir} is not empty and holds no sweep; give an empty or new directory.")
    sync("jaxnet-sweep-looked")  # every process has looked before the writer deletes
    if fresh and writer and held:
        for name in SWEEP_FILES:
            path = os.path.join(out_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    sync("jaxnet-sweep-fresh")
    if os.path.exists(config_path):
        saved = read_json(config_path)
        version = saved.pop("jaxnet_version", None)
        renamed = [f"{section}.{old} is now {section}.{new}" for (section, old), new in RENAMED_KEYS.items()
                   if old in saved.get(section, {})]
        if renamed:
            raise SweepError(f"{out_dir} holds a sweep written by jaxnet {version}, whose config uses keys renamed "
                             f"in jaxnet 0.3 ({'; '.join(renamed)}); it cannot be resumed. Use another directory, "
                             "or --fresh (fresh=True) to delete it and start over, with the keys renamed.")
        if version != jaxnet_version():
            raise version_mismatch(out_dir, version, "a sweep")
        differ = diff(saved, normalized)
        if differ:
            raise SweepError(
                f"{out_dir} holds a sweep with another config: {'; '.join(differ)}. "
                "Use another directory, or --fresh (fresh=True) to delete it and start over."
            )
    sync("jaxnet-sweep-checked")
    if writer:
        os.makedirs(out_dir, exist_ok=True)
        if not os.path.exists(config_path):
            write_json(config_path, {**normalized, "jaxnet_version": jaxnet_version()})


def write_config_copy(out_dir: str, source, overrides) -> None:
    """The config as given (file or text) with the overrides noted; config.json is normative."""
    if isinstance(source, str):
        text = open(source, encoding="utf-8").read() if os.path.exists(source) else source
    else:
        text = "# given as a dict or SweepConfig: see config.json for every key\n"
    if overrides:
        text = f"# overridden (config.json has the values used): {json.dumps(overrides, default=str)}\n" + text
    with open(os.path.join(out_dir, "config.toml"), "w", encoding="utf-8") as f:
        f.write(text)


def metadata(groups: list[Group], status: str, previous: list, failed_runs: list, retry=None) -> dict:
    """metadata.json: status, versions, devices, groups, failed runs and invocations."""
    meta = dict(
        status=status,
        jaxnet=jaxnet_version(),
        jax=jax.__version__,
        jaxlib=jax.lib.__version__ if hasattr(jax.lib, "__version__") else None,
        devices=[str(d) for d in jax.devices()],
        process_count=jax.process_count(),
        runs=sum(len(g.units) for g in groups),
        groups=[dict(index=g.index, static=g.static, runs=len(g.units), chunk_size=g.chunk_size,
                     chunks=g.n_chunks) for g in groups],
        failed_runs=failed_runs,
        invocations=previous,
    )
    if retry is not None:
        meta["retry"] = [int(r) for r in retry]
    return meta


def rows(points: list[dict], units: np.ndarray, runs: np.ndarray, logs: dict, n_instances: int,
         codes: np.ndarray, failed_steps: np.ndarray):
    """The tidy rows of a chunk's runs: one per (run, logged step), a failed run's up to its failure.

    `codes` are the runs' `RESULTS` codes (0: completed), `failed_steps` their failed steps.
    """
    import pandas as pd

    n_logged = logs["loss"].shape[1]
    point_ids = np.repeat(units[:, 0], n_logged)
    table = _typed_columns(pd.DataFrame(points).reindex(columns=list(columns()))).iloc[point_ids].reset_index(drop=True)
    table.insert(0, "run", np.repeat(runs, n_logged))
    table.insert(1, "point", point_ids)
    table.insert(2, "network_seed", np.repeat(units[:, 1], n_logged))
    table.insert(3, "init_seed", np.repeat(units[:, 2], n_logged))
    table.insert(4, "instance", np.repeat(runs % n_instances, n_logged))
    step = logs["step"].reshape(-1)
    table["step"] = step
    table["edge_updates"] = table["p"].to_numpy() * step
    table["loss"] = logs["loss"].reshape(-1)
    table["normalized_loss"] = (logs["loss"] / logs["loss"][:, :1]).reshape(-1)
    for name in ("test_loss", "accuracy", "test_accuracy", "cosine"):
        table[name] = logs[name].reshape(-1) if name in logs else np.nan
    table["at_bound"] = logs["at_bound"].reshape(-1)
    names = np.array([""] + list(RESULTS._name_to_item)[1:], dtype=object)
    table["status"] = np.repeat(np.where(codes == 0, "ok", "failed").astype(object), n_logged)
    table["failure"] = np.repeat(names[codes], n_logged)
    table["failed_step"] = np.repeat(np.where(codes == 0, -1, failed_steps).astype(np.int64), n_logged)
    keep = (table["status"] == "ok").to_numpy() | (step <= table["failed_step"].to_numpy())
    return table[keep].reset_index(drop=True)


def _typed_columns(frame):
    """`frame` (one row per grid point) with each grid axis that mixes words and numbers (`bias =
    ["none", 1.0]`, `batch_size = ["full", 1]`) as words: one type per column, whatever chunk a
    row is in (a column of both cannot be saved). Missing values stay missing."""
    for name in frame.columns:
        present = [v for v in frame[name] if v is not None and not (isinstance(v, float) and np.isnan(v))]
        if any(isinstance(v, str) for v in present) and not all(isinstance(v, str) for v in present):
            frame[name] = [v if v is None or isinstance(v, str) or (isinstance(v, float) and np.isnan(v)) else str(v)
                           for v in frame[name]]
    return frame


def save_chunk(chunk_dir: str, name: str, config: SweepConfig, points: list[dict], units: np.ndarray,
               host_state, logs: dict, lengths: list[int], log_every: int) -> None:
    """A finished chunk's files: `name.npz` (run ids, final conductances, failures) and
    `name.parquet` (its rows). A failed run's final conductances are NaN."""
    n_instances = config.sweep["networks"] * config.sweep["seeds"]
    runs = run_ids(units, n_instances, config.sweep["seeds"])
    failure = jax.tree.map(lambda a: np.asarray(a)[: len(units)], host_state.failure)
    codes = np.asarray(failure.result._value).astype(np.int64)
    k_final = np.asarray(host_state.conductances)[: len(units)]
    k_final = np.where((codes != 0)[:, None], np.nan, k_final)
    # A failed run's state is frozen at its failed step: the steps come from the plan
    # (which the completed runs' own logged steps must match).
    planned = np.broadcast_to(logged_steps(lengths, log_every), logs["loss"].shape)
    if not np.array_equal(logs["step"][codes == 0], planned[codes == 0]):
        raise RuntimeError(f"jaxnet: chunk {name} logged other steps than planned; please report this.")
    logs["step"] = planned
    messages = np.array([describe(jax.tree.map(lambda a, i=i: a[i], failure)) if codes[i] else ""
                         for i in range(len(codes))], dtype=str)
    save_npz(os.path.join(chunk_dir, name + ".npz"), run=runs, k=k_final, failure=codes,
             failed_step=np.asarray(failure.step), residual=np.asarray(failure.residual),
             tolerance=np.asarray(failure.tolerance), k_low=np.asarray(failure.k_low),
             k_high=np.asarray(failure.k_high), message=messages)
    table = rows(points, units, runs, logs, n_instances, codes, np.asarray(failure.step))
    save_parquet(table, os.path.join(chunk_dir, name + ".parquet"))


def failure_records(config: SweepConfig, points: list[dict], saved) -> list[dict]:
    """One record per failed run of a chunk's `.npz` (see `sweep` for the keys)."""
    varying = [c for c in columns() if len({json.dumps(p[c], default=str) for p in points}) > 1]
    n_instances = config.sweep["networks"] * config.sweep["seeds"]
    records = []
    for i in np.flatnonzero(saved["failure"] != 0):
        run = int(saved["run"][i])
        point = run // n_instances
        network_seed, init_seed = divmod(run % n_instances, config.sweep["seeds"])
        one = {k: saved[k][i] for k in ("failed_step", "residual", "tolerance", "k_low", "k_high")}
        number = lambda v: float(v) if np.isfinite(v) else None  # noqa: E731  (JSON has no NaN)
        records.append(dict(
            run=run, point=point, grid={c: points[point][c] for c in varying}, network_seed=network_seed,
            init_seed=init_seed, failure=list(RESULTS._name_to_item)[int(saved["failure"][i])],
            failed_step=int(one["failed_step"]), residual=number(one["residual"]), tolerance=number(one["tolerance"]),
            k_low=number(one["k_low"]), k_high=number(one["k_high"]), message=str(saved["message"][i])))
    return records


def finish(out_dir: str, config: SweepConfig, points: list[dict], groups: list[Group], invocation: dict,
           retry: list[int] | None) -> None:
    """Merge the chunk files into results.parquet and conductances.npz; mark complete.

    In a retry, only the retried runs' rows and conductances are taken from the chunk files
    (the chunks that hold them); every other row and array is kept as it was.
    """
    import pandas as pd

    chunk_dir = os.path.join(out_dir, "chunks")
    metadata_path = os.path.join(out_dir, "metadata.json")
    saved_meta = read_json(metadata_path) if os.path.exists(metadata_path) else {}
    parts, arrays, records = [], {}, []
    for g in groups:
        runs, ks = [], []
        for c in range(g.n_chunks):
            name = os.path.join(chunk_dir, chunk_name(g.index, c))
            if not os.path.exists(name + ".npz"):  # a retry: a chunk without failed runs
                continue
            with np.load(name + ".npz") as saved:
                saved = dict(saved)
            pick = np.ones(len(saved["run"]), bool) if retry is None else np.isin(saved["run"], retry)
            part = pd.read_parquet(name + ".parquet")
            parts.append(part if retry is None else part[part.run.isin(saved["run"][pick])])
            runs.append(saved["run"][pick])
            ks.append(saved["k"][pick])
            records += failure_records(config, points, {k: v[pick] for k, v in saved.items()})
        if runs:
            arrays[f"g{g.index:03d}/run"] = np.concatenate(runs)
            arrays[f"g{g.index:03d}/k"] = np.concatenate(ks)
    if retry is not None:
        parts.insert(0, _kept_rows(out_dir, retry))
        _keep_conductances(out_dir, arrays)
        records += [f for f in saved_meta.get("failed_runs", []) if f["run"] not in retry]
    table = pd.concat(parts, ignore_index=True).sort_values(["run", "step"], kind="stable").reset_index(drop=True)
    save_parquet(table, os.path.join(out_dir, "results.parquet"))
    save_npz(os.path.join(out_dir, "conductances.npz"), **arrays)
    records.sort(key=lambda f: f["run"])
    write_json(metadata_path, metadata(groups, "complete", saved_meta.get("invocations", []) + [invocation], records))
    shutil.rmtree(chunk_dir, ignore_errors=True)


def _kept_rows(out_dir: str, retry: list[int]):
    """The rows of the runs a retry does not rerun, as they were."""
    import pandas as pd

    old = pd.read_parquet(os.path.join(out_dir, "results.parquet"))
    return old[~old.run.isin(retry)]


def _keep_conductances(out_dir: str, arrays: dict) -> None:
    """Into `arrays` (the retried runs' conductances): every saved array, the retried runs'
    conductances replaced by theirs."""
    with np.load(os.path.join(out_dir, "conductances.npz")) as saved:
        for name in saved.files:
            if name.endswith("/run"):
                stem = name[:-4]
                new = dict(zip(arrays.get(stem + "/run", []), arrays.get(stem + "/k", [])))
                k = np.array([new.get(r, k) for r, k in zip(saved[name], saved[stem + "/k"])])
                arrays[name], arrays[stem + "/k"] = saved[name], k
