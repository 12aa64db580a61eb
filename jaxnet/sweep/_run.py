"""`sweep`: run a config's grid into its directory, resumably, chunk by chunk and segment by
segment (the steps of one invocation are the methods of `_Invocation`)."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

import jax
import numpy as np

from .._checkpoint import _progress_bar, jaxnet_version, load_tree, read_meta, save_tree, version_mismatch
from ._build import check_x64
from ._config import SweepConfig, load_config
from ._load import failure_summary, is_complete, load_sweep
from ._plan import Group, chunk_name, chunks_to_run, plan, set_chunk_sizes
from ._runner import Runner
from ._store import (finish, metadata, prepare_dir, read_json, save_chunk, sync, write_config_copy, write_json)


def sweep(
    config: str | dict | SweepConfig,
    out_dir: str,
    *,
    fresh: bool = False,
    quiet: bool = False,
    overrides: dict[str, Any] | None = None,
    retry_failed: bool = False,
):
    """Run a sweep: every grid point of `config` on every instance, into `out_dir`.

    **Arguments:**

    - `config`: a TOML path, TOML text, a dict or a `SweepConfig` (see `load_config`).
    - `out_dir`: the sweep's directory. Created if missing. If it holds this very sweep,
      unfinished, the sweep resumes where it stopped; finished, nothing runs (and it says so,
      with the number of failed runs). If it holds another sweep, a `SweepError` names the
      keys that differ; if a sweep written by another jaxnet version, a `SweepError` names
      both versions.
    - `fresh`: delete what `out_dir` holds first.
    - `quiet`: no progress bar, no messages (the failure summary included).
    - `overrides`: `{"section.key": value}` applied to the config (see `load_config`).
    - `retry_failed`: run the failed runs of a finished sweep again (only the chunks that hold
      them; each with exactly its inputs of the first time, so the same machine and software
      fail the same way) and replace their rows; every other row stays as it was, bit for bit.
      Without it a finished sweep is not touched.

    **Failed runs.** A run that fails (a solve that misses its tolerance, a rule that returns
    conductances that are not finite and positive; see `jn.RESULTS`) stops at its failed step;
    every other run completes, and the sweep does not raise. Its rows end at the failed step
    (the row of that step, if logged, holds NaN: the step's measurement failed), its final
    conductances are NaN, and the table says so in three columns (below). Unless `quiet`, a
    summary names each failed run (grid point, network seed, init seed, the reason with its
    numbers) and how to rebuild it (`jn.rebuild_run(out_dir, run)`); `metadata.json` lists them
    (`failed_runs`), and so does the returned table's `attrs["failed_runs"]`.

    **Writes** (process 0 only, when several processes run it):

    - `results.parquet`: one row per (grid point, instance, logged step): every grid key of
      the config as a column, ids (`run`, `point`, `network_seed`, `init_seed`, `instance`),
      `step`, `edge_updates` (= `p * step`, updates per edge), `loss`, `normalized_loss`
      (C/C0), `test_loss`, `accuracy`, `test_accuracy` (classification), `cosine` (with
      `track_cosine`), `at_bound` (fraction of edges at `k_min` or `k_max`), and per run:
      `status` (`"ok"`, or `"failed"`), `failure` (the `jn.RESULTS` name of its failure, e.g.
      `"cg_residual"`; `""` if none) and `failed_step` (the step at which it failed; -1 if
      none). A failed run has rows only up to its `failed_step`.
    - `conductances.npz`: final conductances (NaN for a failed run); `load_conductances(out_dir)`
      maps run ids to them.
    - `config.toml` (as given) and `config.json` (normalized, with the `jaxnet_version` that
      wrote it), `plan.json` (chunking) and `metadata.json` (versions, devices; per invocation
      the wall time, the compile time and the number of programs compiled (`programs`), the
      setup time spent building networks, tasks and keys, and the network-steps run;
      `failed_runs`: one record per failed run with `run`, `point`, `grid` (the grid values
      that vary in this sweep), `network_seed`, `init_seed`, `failure`, `failed_step`,
      `residual`, `tolerance`, `k_low`, `k_high` and `message`).

    Under `jax.distributed` (several processes), call it in every process with the same
    arguments: each computes its share of every chunk and process 0 writes the files.

    **Returns:** the results as a pandas `DataFrame` (as `load_sweep` reads it).

    ```python
    table = jn.sweep("examples/quick.toml", "out/quick")
    failed = table[table.status == "failed"]
    ```
    """
    source = config
    if not isinstance(config, SweepConfig):
        config = load_config(config, overrides)
    elif overrides:
        config = load_config(config.as_dict(), overrides)
    writer = jax.process_index() == 0
    say = (lambda *a: print(*a, flush=True)) if (writer and not quiet) else (lambda *a: None)
    points, groups = plan(config)
    check_x64(points)
    normalized = json.loads(json.dumps(config.as_dict(), default=str))
    hint = source if isinstance(source, str) and "\n" not in source and os.path.isfile(source) else None
    prepare_dir(out_dir, normalized, fresh, writer)
    metadata_path = os.path.join(out_dir, "metadata.json")
    saved_meta = read_json(metadata_path) if os.path.exists(metadata_path) else {}
    retry = saved_meta.get("retry")  # the runs of an interrupted retry
    if is_complete(out_dir):
        failed = saved_meta.get("failed_runs", [])
        if not (retry_failed and failed):
            return _already_complete(out_dir, failed, say, hint)
        retry = sorted(f["run"] for f in failed)
        say(f"sweep in {out_dir}: retrying its {len(retry)} failed run(s) with the same inputs.")
    invocation = _Invocation(config, out_dir, points, groups, normalized, writer, say, retry)
    invocation.plan(source, overrides, saved_meta)
    invocation.run(show_bar=writer and not quiet)
    return invocation.finish(hint)


def _already_complete(out_dir: str, failed: list, say: Callable, hint: str | None):
    """A finished sweep's table, said so (with its failed runs, which are not retried)."""
    note = f", {len(failed)} failed run{'s' * (len(failed) != 1)}" if failed else ""
    how = " (retry them with --retry-failed, retry_failed=True)" if failed else ""
    say(f"sweep in {out_dir} is already complete{note}: nothing to do{how} "
        f"({os.path.join(out_dir, 'results.parquet')}).")
    table = load_sweep(out_dir)
    if failed:
        say(failure_summary(out_dir, hint))
    return table


class _Invocation:
    """One call of `sweep` that has chunks to run: its plan, its progress, its timings."""

    def __init__(self, config: SweepConfig, out_dir: str, points: list[dict], groups: list[Group],
                 normalized: dict, writer: bool, say: Callable, retry: list[int] | None):
        self.config, self.out_dir, self.points, self.groups = config, out_dir, points, groups
        self.normalized, self.writer, self.say, self.retry = normalized, writer, say, retry
        self.n_instances = config.sweep["networks"] * config.sweep["seeds"]
        self.chunk_dir = os.path.join(out_dir, "chunks")
        self.progress_path = os.path.join(out_dir, "progress.npz")
        self.runners: list[Runner] = []
        self.todo: set[tuple[int, int]] = set()
        self.progress: dict | None = None  # a saved chunk's progress, until the first chunk run
        self.bar = None
        self.chunks_done = 0
        self.ran_steps = 0
        self.wall_start = 0.0

    def plan(self, source, overrides, saved_meta: dict) -> None:
        """Chunk sizes (a resumed sweep keeps its saved plan) and the chunks to run; writes
        plan.json, config.toml and metadata.json (status running)."""
        networks: dict = {}  # shared by the groups' runners
        plan_path = os.path.join(self.out_dir, "plan.json")
        saved_plan = read_json(plan_path) if os.path.exists(plan_path) else None
        self.runners = [Runner(self.config, self.points, group, networks) for group in self.groups]
        set_chunk_sizes(self.config, self.groups, saved_plan, lambda g: self.runners[g.index].network_and_task(0))
        self.todo = chunks_to_run(self.groups, self.retry, self.n_instances, self.config.sweep["seeds"])
        sync("jaxnet-sweep-plan")
        if self.writer:
            if saved_plan is None:
                write_json(plan_path, {"chunk_sizes": [g.chunk_size for g in self.groups],
                                       "groups": [g.static for g in self.groups]})
            if not os.path.exists(os.path.join(self.out_dir, "config.toml")):
                write_config_copy(self.out_dir, source, overrides)
            write_json(os.path.join(self.out_dir, "metadata.json"),
                       metadata(self.groups, "running", saved_meta.get("invocations", []),
                                failed_runs=saved_meta.get("failed_runs", []), retry=self.retry))
        os.makedirs(self.chunk_dir, exist_ok=True)

    def chunk_done(self, group: Group, chunk: int) -> bool:
        return os.path.exists(os.path.join(self.chunk_dir, chunk_name(group.index, chunk) + ".parquet"))

    def announce(self, show_bar: bool) -> None:
        """Say what runs (and what is done already); start the progress bar."""
        todo = [(g, c) for g in self.groups for c in range(g.n_chunks) if (g.index, c) in self.todo]
        total = sum(g.chunk_length(c) * g.schedule(c)[0] for g, c in todo)
        done_steps = sum(g.chunk_length(c) * g.schedule(c)[0] for g, c in todo if self.chunk_done(g, c))
        self.chunks_done = sum(self.chunk_done(g, c) for g, c in todo)
        n_points, n_runs = len(self.points), len(self.points) * self.n_instances
        self.say(f"sweep: {n_points} grid points x {self.n_instances} instances = {n_runs} runs in "
                 f"{len(self.groups)} compiled group(s), {len(todo)} chunk(s), on {jax.device_count()} device(s)"
                 f"{f' in {jax.process_count()} processes' if jax.process_count() > 1 else ''}"
                 + (f"; retrying {len(self.retry)} failed run(s)" if self.retry is not None else "")
                 + (f"; resuming ({self.chunks_done}/{len(todo)} chunks done)" if self.chunks_done else ""))
        self.bar = _progress_bar(show_bar, total=total, initial=done_steps, unit="net-step", unit_scale=True,
                                 smoothing=0.1)

    def run(self, show_bar: bool) -> None:
        """Run every chunk to run that is not done, resuming a chunk from its saved progress."""
        self.announce(show_bar)
        self.wall_start = time.perf_counter()
        self.progress = read_meta(self.progress_path) if os.path.exists(self.progress_path) else None
        if self.progress is not None and self.progress.get("jaxnet_version") != jaxnet_version():
            raise version_mismatch(self.progress_path, self.progress.get("jaxnet_version"), "a sweep's progress")
        sync("jaxnet-sweep-start")
        for group, runner in zip(self.groups, self.runners):
            for c in range(group.n_chunks):
                if (group.index, c) in self.todo and not self.chunk_done(group, c):
                    self.run_chunk(group, runner, c)

    def run_chunk(self, group: Group, runner: Runner, chunk: int) -> None:
        """One chunk, segment by segment (each saved to progress.npz but the last), into its files."""
        name = chunk_name(group.index, chunk)
        log_every = group.schedule(chunk)[1]
        lengths = group.segments(chunk, self.config.sweep["checkpoint_every"])
        units, inputs, seeds = runner.inputs(chunk)
        inputs = runner.to_devices(inputs)  # once per chunk, for every segment
        state, logs, first = self.resume(name, runner.start(inputs, seeds), len(units), lengths)
        for s in range(first, len(lengths)):
            state, seg_logs = runner.segment(inputs, state, lengths[s], log_every)
            host_state, seg_logs = runner.to_host((state, seg_logs))
            for key, value in seg_logs.items():
                value = np.asarray(value)[: len(units)]
                logs.setdefault(key, []).append(value if s == 0 else value[:, 1:])
            joined = {k: np.concatenate(v, axis=1) for k, v in logs.items()}
            if self.writer and s < len(lengths) - 1:
                save_tree(self.progress_path, host_state,
                          dict(chunk=name, segments_done=s + 1, fingerprint=self.normalized,
                               jaxnet_version=jaxnet_version()), joined)
            self.ran_steps += len(units) * lengths[s]
            if self.bar is not None:
                self.bar.update(len(units) * lengths[s])
                self.bar.set_postfix_str(f"chunk {self.chunks_done + 1}/{len(self.todo)}")
        joined = {k: np.concatenate(v, axis=1) for k, v in logs.items()}
        if self.writer:
            save_chunk(self.chunk_dir, name, self.config, self.points, units, host_state, joined, lengths, log_every)
            if os.path.exists(self.progress_path):
                os.remove(self.progress_path)
        self.chunks_done += 1
        sync(f"jaxnet-sweep-{name}")

    def resume(self, name: str, state, n_units: int, lengths: list[int]):
        """`(state, logs, first segment)`: from progress.npz if it is this chunk's, else from the start.

        Only the first chunk run may resume: the progress is forgotten after it.
        """
        logs: dict[str, list] = {}
        first = 0
        if self.progress is not None and self.progress.get("chunk") == name:
            state, meta, arrays = load_tree(self.progress_path, state)
            first = meta["segments_done"]
            logs = {k: [v] for k, v in arrays.items()}
            if self.bar is not None:
                self.bar.update(n_units * sum(lengths[:first]))
        self.progress = None
        return state, logs, first

    def finish(self, hint: str | None):
        """Merge the chunks into the sweep's files (process 0), then read and return its table."""
        if self.bar is not None:
            self.bar.close()
        wall = time.perf_counter() - self.wall_start
        compile_s = sum(r.compile_s for r in self.runners)
        if self.writer:
            invocation = dict(wall_s=wall, compile_s=compile_s, programs=sum(len(r.compiled) for r in self.runners),
                              programs_compiled=sum(r.programs_compiled for r in self.runners),
                              setup_s=sum(r.setup_s for r in self.runners), network_steps=self.ran_steps)
            if self.retry is not None:
                invocation["retried_runs"] = len(self.retry)
            finish(self.out_dir, self.config, self.points, self.groups, invocation, self.retry)
        sync("jaxnet-sweep-done")
        table = load_sweep(self.out_dir)
        failed = table.attrs["failed_runs"]
        self.say(f"done: {len(table)} rows in {os.path.join(self.out_dir, 'results.parquet')}; wall {wall:.1f} s "
                 f"(compile {compile_s:.1f} s)"
                 + (f"; {len(failed)} of {len(self.points) * self.n_instances} runs failed" if failed else ""))
        if failed:
            self.say(failure_summary(self.out_dir, hint))
        return table
