"""Reading a finished sweep: its table, its final conductances, its failed runs, and any of
its runs rebuilt to be repeated by hand."""

from __future__ import annotations

import os
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._network import Network
from ._build import check_x64, make_network, make_rule, make_task, network_keys, run_start, traced_columns, train_options
from ._config import SweepConfig, load_config
from ._store import read_json


def is_complete(out_dir: str) -> bool:
    """Whether `out_dir` holds a sweep that ran to the end (its metadata says so)."""
    metadata = os.path.join(out_dir, "metadata.json")
    return os.path.exists(metadata) and read_json(metadata).get("status") == "complete"


def load_sweep(out_dir: str):
    """The results table of a finished sweep in `out_dir`, as a pandas `DataFrame`.

    One row per (grid point, instance, logged step); see `sweep` for the columns. A failed
    run (`status == "failed"`) has rows up to its `failed_step`; `table.attrs["failed_runs"]`
    lists the failed runs (as `metadata.json` does: run, grid point, seeds, reason, numbers).

    **Raises:** `FileNotFoundError` if `out_dir` holds no finished sweep (run it, or run it
    again to finish it).
    """
    import pandas as pd

    path = os.path.join(out_dir, "results.parquet")
    if not (os.path.exists(path) and is_complete(out_dir)):
        raise FileNotFoundError(f"{out_dir} holds no finished sweep: run `jaxnet sweep CONFIG --out {out_dir}` "
                                "(again, to finish an interrupted one).")
    table = pd.read_parquet(path)
    table.attrs["failed_runs"] = read_json(os.path.join(out_dir, "metadata.json")).get("failed_runs", [])
    return table


def load_conductances(out_dir: str) -> dict[int, np.ndarray]:
    """Final conductances of a finished sweep: `{run id: (E,) array}` (run ids as in the table;
    NaN for a failed run)."""
    load_sweep(out_dir)  # same check
    out = {}
    with np.load(os.path.join(out_dir, "conductances.npz")) as saved:
        for name in saved.files:
            if name.endswith("/run"):
                for run, k in zip(saved[name], saved[name[:-4] + "/k"]):
                    out[int(run)] = k
    return out


def config_of_dir(out_dir: str) -> SweepConfig:
    """The `SweepConfig` of the sweep in `out_dir` (from its config.json)."""
    saved = read_json(os.path.join(out_dir, "config.json"))
    saved.pop("jaxnet_version", None)

    def given(table: dict) -> dict:  # keys a kind does not use, and kind defaults, are None there
        return {k: v for k, v in table.items() if v is not None}

    raw = {section: given(saved[section]) for section in ("sweep", "network", "task")}
    raw["rule"] = [given(r) for r in saved["rule"]]
    return load_config(raw)


class RunInputs(eqx.Module):
    """Everything one run of a sweep starts from (see `rebuild_run`)."""

    net: Network
    task: Any
    rule: Any
    k0: Any
    key: Any
    train_kwargs: dict = eqx.field(static=True)


def rebuild_run(config: str | dict | SweepConfig, run: int) -> RunInputs:
    """The network, task, rule, initial conductances and key of run `run` of a sweep.

    `jn.train(r.net, r.task, r.rule, r.k0, key=r.key, **r.train_kwargs)` repeats that run by
    hand (the engine runs it vmapped among others, so float results agree to rounding).

    **Arguments:** `config` as for `sweep`, or a sweep's directory (its `config.json`, overrides
    included); `run` a run id of the results table (e.g. a failed run's, from its summary).
    """
    if isinstance(config, str) and os.path.isdir(config):
        config = config_of_dir(config)
    config = config if isinstance(config, SweepConfig) else load_config(config)
    points = config.points()
    n_instances = config.sweep["networks"] * config.sweep["seeds"]
    if not 0 <= run < len(points) * n_instances:
        raise ValueError(f"run must lie in [0, {len(points) * n_instances}); got {run}.")
    point = points[run // n_instances]
    check_x64([point])
    network_seed, init_seed = divmod(run % n_instances, config.sweep["seeds"])
    k_net, k_task = network_keys(config.sweep["seed"], network_seed)
    net = make_network(point, k_net)
    task = make_task(point, k_task, net)
    dtype = jnp.dtype(point["dtype"])
    hyper = {c: jnp.asarray(point[c], dtype) for c in traced_columns() if point[c] is not None}
    rule = make_rule(point, hyper, desync=point["p"] != 1)
    k0, train_key = run_start(point, rule, hyper, config.sweep["seed"], network_seed, init_seed, net.n_edges, dtype)
    options = dict(steps=point["steps"], log_every=point["log_every"], **train_options(point))
    return RunInputs(net, task, rule, k0, train_key, options)


def failure_summary(out_dir: str, config_hint: str | None = None) -> str:
    """A few lines naming each failed run of the finished sweep in `out_dir` ("" if none).

    `config_hint`: how to name the config in the retry command (default `CONFIG`).
    """
    meta = read_json(os.path.join(out_dir, "metadata.json"))
    failed = meta.get("failed_runs", [])
    if not failed:
        return ""
    n_runs = meta.get("runs")
    of = f" of {n_runs}" if n_runs else ""
    lines = [f"jaxnet: {len(failed)}{of} runs failed. Each stopped at its failed step; every other run completed. "
             f"In {os.path.join(out_dir, 'results.parquet')} their status is 'failed' (columns failure, failed_step) "
             "and their rows end at that step; metadata.json lists them (failed_runs)."]
    shown = failed[:20]
    for f in shown:
        grid = ", ".join(f"{k}={v!r}" for k, v in f["grid"].items())
        lines.append(f"  run {f['run']} (grid point {f['point']}{': ' + grid if grid else ''}; network seed "
                     f"{f['network_seed']}, init seed {f['init_seed']}): {f['message']}")
    if len(failed) > len(shown):
        lines.append(f"  ... and {len(failed) - len(shown)} more (metadata.json)")
    run = failed[0]["run"]
    lines.append(f"Rebuild a failed run to inspect it: r = jn.rebuild_run({out_dir!r}, {run}) (or jn.rebuild_run(config, "
                 f"{run})); jn.train(r.net, r.task, r.rule, r.k0, key=r.key, **r.train_kwargs) repeats it (alone, not "
                 f"batched with the others, its rounding may differ: a failure at the edge of a tolerance may not recur).")
    lines.append(f"Running the sweep again does not retry them: `jaxnet sweep {config_hint or 'CONFIG'} --out {out_dir} "
                 "--retry-failed` (with the same --set overrides, if any; jn.sweep(..., retry_failed=True)) reruns only them, "
                 "with the same inputs.")
    return "\n".join(lines)
