"""The sweep engine: a config to a tidy results table, resumable, on one device or many hosts.

A layer above `train` that only expands, groups, batches, shards, saves and tabulates; the
core knows nothing of it.

- **Expand.** `SweepConfig.points()` is the grid. Each point runs on `networks x seeds`
  instances: network seed `i` gives the network and the task (terminals, data), the same at
  every grid point, so rules are compared on the same networks; training seed `j` gives the
  initial conductances and the run's PRNG key.
- **Group.** Points with equal static keys (sizes, kinds, `steps`, ...) form a group: one
  compiled program, in which the traced hyperparameters (`alpha`, `eta`, `p`, the learning
  rate, ...) are vmapped along with the instances.
- **Batch and shard.** A group's runs are cut into chunks that fit in device memory; each
  chunk is one `jit(vmap(train))` whose run axis is sharded over every device of every
  process (`jax.distributed`: each process builds the same inputs and computes its share).
- **Save.** A chunk advances in segments (`train` continued from its `TrainState`), and after
  each segment its state and logs are written atomically; a finished chunk's rows go to their
  own file. Killed at any moment and run again, the sweep continues from the last segment
  and gives the table of an uninterrupted run, bit for bit.
- **Tabulate.** `DIR/results.parquet`: one row per (grid point, instance, logged step).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import rules as rules_module
from ._checkpoint import (SweepError, _progress_bar, atomic_write, jaxnet_version, load_tree, read_meta, save_tree,
                          version_mismatch)
from ._config import COLUMNS, SCHEMA, ConfigError, SweepConfig, load_config
from ._generators import disordered_network, random_graph, square_lattice, triangular_lattice
from ._network import Network
from ._results import RESULTS, describe
from ._tasks import allostery_task, iris_task, regression_task
from ._solver import Solver
from ._train import TrainState, initial_state, train

STATIC = tuple(
    (section if key == "kind" else key)
    for section, keys in SCHEMA.items() for key, spec in keys.items() if spec.grid and spec.static
)
TRACED = tuple(
    key for section, keys in SCHEMA.items() for key, spec in keys.items() if spec.grid and not spec.static
)


# ------------------------------------------------------------------ building one run


def make_network(point: dict, key) -> Network:
    """The network of a grid point for a network key (positions dropped: not needed to train)."""
    kind = point["network"]
    if kind == "disordered":
        net = disordered_network(key, point["n_nodes"], point["coordination"])
    elif kind == "square":
        net = square_lattice(point["rows"], point["cols"])
    elif kind == "triangular":
        net = triangular_lattice(point["rows"], point["cols"])
    else:
        net = random_graph(key, point["n_nodes"], point["n_edges"])
    return Network(net.senders, net.receivers, net.n_nodes)


def make_task(point: dict, key, net: Network):
    """The task of a grid point on `net` for a task key."""
    kind = point["task"]
    if kind == "regression":
        return regression_task(key, net, n_train=point["n_train"], n_test=point["n_test"],
                               random_matrix=point["random_matrix"])
    if kind == "allostery":
        return allostery_task(key, net, n_outputs=point["n_outputs"])
    return iris_task(key, net, n_train=point["n_train"])


def make_rule(point: dict, hyper: dict, desync: bool = True):
    """The rule of a grid point, its traced hyperparameters taken from `hyper` (arrays).

    Wrapped in `desync` with the traced `p` when `desync` (with `p = 1` that is exactly the
    synchronous rule, so a `p` grid stays in one compiled program); a group whose points all
    have `p = 1` skips the wrapper and its per-step mask draws. Gradient descent's learning rate goes through
    `optax.inject_hyperparams`, so it is traced too.
    """
    kind = point["rule"]
    if kind == "coupled_learning":
        rule = rules_module.coupled_learning(hyper["alpha"], hyper["eta"], hyper["k_min"], hyper["k_max"])
    elif kind == "equilibrium_propagation":
        rule = rules_module.equilibrium_propagation(hyper["alpha"], hyper["beta"], point["centered"], hyper["k_min"],
                                                    hyper["k_max"])
    elif kind == "discrete":
        rule = rules_module.discrete(
            hyper["eta"], point["n_states"], hyper["k_min"], hyper["k_max"], spacing=point["spacing"],
            threshold=hyper["threshold"], offset_std=hyper["offset_std"], noise_std=hyper["noise_std"])
    else:
        optimizer = optax.inject_hyperparams({"sgd": optax.sgd, "adam": optax.adam}[point["optimizer"]])
        rule = rules_module.gradient_descent(optimizer(learning_rate=hyper["learning_rate"]), hyper["k_min"], hyper["k_max"])
    return rules_module.desync(rule, hyper["p"]) if desync else rule


def _network_key(seed: int, network_seed: int):
    return jax.random.split(jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 0), network_seed))


def _run_key(seed: int, network_seed: int, init_seed: int):
    root = jax.random.fold_in(jax.random.key(seed), 1)
    return jax.random.fold_in(jax.random.fold_in(root, network_seed), init_seed)


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
        config = _config_of_dir(config)
    config = config if isinstance(config, SweepConfig) else load_config(config)
    points = config.points()
    n_instances = config.sweep["networks"] * config.sweep["seeds"]
    if not 0 <= run < len(points) * n_instances:
        raise ValueError(f"run must lie in [0, {len(points) * n_instances}); got {run}.")
    point = points[run // n_instances]
    _check_x64([point])
    network_seed, init_seed = divmod(run % n_instances, config.sweep["seeds"])
    k_net, k_task = _network_key(config.sweep["seed"], network_seed)
    net = make_network(point, k_net)
    task = make_task(point, k_task, net)
    dtype = jnp.dtype(point["dtype"])
    hyper = {c: jnp.asarray(point[c], dtype) for c in TRACED if point[c] is not None}
    rule = make_rule(point, hyper, desync=point["p"] != 1)
    k0_key, train_key = jax.random.split(_run_key(config.sweep["seed"], network_seed, init_seed))
    k0 = _initial_conductances(point, rule, hyper, k0_key, net.n_edges, dtype)
    kwargs = dict(steps=point["steps"], log_every=point["log_every"], method=solver_of(point),
                  batch_size=None if point["batch_size"] == "full" else point["batch_size"],
                  track_cosine=point["track_cosine"])
    return RunInputs(net, task, rule, k0, train_key, kwargs)


def solver_of(point: dict) -> Solver:
    """The `jn.Solver` a config point asks for (keys method, rtol, atol, max_steps)."""
    auto = lambda v: None if v == "auto" else v  # noqa: E731
    return Solver(point["method"], rtol=auto(point["rtol"]), atol=float(point["atol"]),
                  max_steps=auto(point["max_steps"]))


def _check_x64(points: list[dict]) -> None:
    """float64 points need 64-bit JAX: without it JAX would silently compute in float32."""
    if any(p["dtype"] == "float64" for p in points) and not jax.config.jax_enable_x64:
        raise ConfigError(
            "sweep.dtype = 'float64' needs 64-bit JAX, which is off (JAX would silently use float32): run "
            "under `with jax.enable_x64(True):`, or set JAX_ENABLE_X64=1 (the jaxnet command does it for you).")


def _initial_conductances(point, rule, hyper, key, n_edges, dtype):
    """Uniform in [k0_low, k0_high]; for the discrete rule, the nearest level."""
    unit = jax.random.uniform(key, (n_edges,), dtype)
    k0 = hyper["k0_low"] + (hyper["k0_high"] - hyper["k0_low"]) * unit
    if point["rule"] == "discrete":
        levels = rule.rule if isinstance(rule, rules_module.Desync) else rule
        k0 = levels.levels.astype(dtype)[levels.state_index(k0)]
    return k0


# ------------------------------------------------------------------ the plan


@dataclasses.dataclass
class Group:
    """Points with the same static keys: one compiled program."""

    index: int
    static: dict
    point_ids: list[int]
    traced: tuple[str, ...]  # the traced keys this group's rule and network use
    units: np.ndarray  # (U, 3): point id, network seed, training seed
    chunk_size: int = 0

    @property
    def n_chunks(self) -> int:
        return math.ceil(len(self.units) / self.chunk_size)


def _plan(config: SweepConfig) -> tuple[list[dict], list[Group]]:
    points = config.points()
    groups: dict[tuple, Group] = {}
    n_net, n_seed = config.sweep["networks"], config.sweep["seeds"]
    instance_grid = np.array([(i, j) for i in range(n_net) for j in range(n_seed)], dtype=np.int64)
    for pid, point in enumerate(points):
        static = {c: point[c] for c in STATIC}
        signature = json.dumps(static, sort_keys=True)
        if signature not in groups:
            traced = tuple(c for c in TRACED if point[c] is not None)
            groups[signature] = Group(len(groups), static, [], traced, np.zeros((0, 3), np.int64))
        group = groups[signature]
        group.point_ids.append(pid)
        rows = np.concatenate([np.full((len(instance_grid), 1), pid), instance_grid], axis=1)
        group.units = np.concatenate([group.units, rows])
    return points, list(groups.values())


def _bytes_per_run(static: dict, n_nodes: int, n_edges: int, n_columns: int, n_examples: int) -> int:
    """A generous estimate of one run's device memory inside a compiled segment."""
    item = 8 if static["dtype"] == "float64" else 4
    dense = solver_of(static).resolve(n_nodes, warm=True) != "cg"  # "cg+dense" may factorize
    matrices = 6 * n_nodes * n_nodes if dense else 0
    vectors = 16 * n_nodes * n_columns + 8 * n_edges * (n_columns + n_examples)
    return item * (matrices + vectors) + 4096


def _auto_chunk_size(static: dict, units: int, net: Network, task) -> int:
    devices = jax.devices()
    n_columns = task.inputs.shape[0] + task.outputs.shape[0]
    per_run = _bytes_per_run(static, net.n_nodes, net.n_edges, n_columns, task.x_train.shape[0])
    if devices[0].platform == "cpu":
        budget = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
        cap = 256 * len(devices)  # measured sweet spot on CPU: 256 instances per device
    else:
        stats = devices[0].memory_stats() or {}
        budget = stats.get("bytes_limit", 16 << 30) // 2 * len(devices)
        cap = 65_536 * len(devices)
    return max(1, min(units, cap, budget // per_run))


# ------------------------------------------------------------------ running a chunk


class _Runner:
    """Builds a group's inputs and runs its chunks on a mesh over every device of every process."""

    def __init__(self, config: SweepConfig, points: list[dict], group: Group, networks: dict):
        self.config, self.points, self.group = config, points, group
        self.static = group.static
        self.networks = networks
        self.mesh = Mesh(np.array(jax.devices()), ("runs",))
        self.sharding = NamedSharding(self.mesh, PartitionSpec("runs"))
        self.dtype = jnp.dtype(self.static["dtype"])
        self.compiled: dict[Any, Any] = {}
        self.compile_s = 0.0
        self.setup_s = 0.0  # building networks, tasks and keys on the host
        self.desync = any(points[p]["p"] != 1 for p in group.point_ids)

    def network_and_task(self, network_seed: int):
        """The network and task of a network seed for this group's static keys (cached)."""
        return jax.tree.map(lambda a: a[network_seed], self.all_networks_and_tasks())

    def all_networks_and_tasks(self):
        """Networks and tasks of every network seed, stacked (built once per group).

        The networks are built in NumPy, one per seed (a lattice once); the tasks in one
        vmapped call over the seeds' task keys, so their construction does not depend on
        how the runs are chunked.
        """
        cache_key = json.dumps({c: self.static[c] for c in _NETWORK_TASK_KEYS}, sort_keys=True)
        if cache_key not in self.networks:
            seed, n = self.config.sweep["seed"], self.config.sweep["networks"]
            pairs = jax.vmap(lambda i: _network_key(seed, i))(jnp.arange(n))  # (n, 2) keys
            net_keys, task_keys = pairs[:, 0], pairs[:, 1]
            if self.static["network"] in ("square", "triangular"):
                nets = [make_network(self.static, None)] * n
            else:
                nets = [make_network(self.static, k) for k in net_keys]
            nets = jax.tree.map(lambda *xs: np.stack(xs), *nets)
            template = jax.tree.map(lambda a: a[0], nets)
            tasks = jax.jit(jax.vmap(lambda key: make_task(self.static, key, template)))(task_keys)
            self.networks[cache_key] = (nets, jax.device_get(tasks))
        return self.networks[cache_key]

    def padded_size(self) -> int:
        n_dev = len(jax.devices())
        return math.ceil(self.group.chunk_size / n_dev) * n_dev

    def inputs(self, chunk: int):
        """Host arrays of one chunk, padded to `padded_size` with copies of its first run."""
        start = time.perf_counter()
        units = self.group.units[chunk * self.group.chunk_size:(chunk + 1) * self.group.chunk_size]
        n_real = len(units)
        units = np.concatenate([units, np.repeat(units[:1], self.padded_size() - n_real, axis=0)])
        nets, tasks = jax.tree.map(lambda a: np.asarray(a)[units[:, 1]], self.all_networks_and_tasks())
        hyper = {c: np.array([self.points[p][c] for p in units[:, 0]], self.dtype) for c in self.group.traced}
        seed = self.config.sweep["seed"]
        keys = np.asarray(jax.vmap(lambda i, j: jax.random.key_data(_run_key(seed, i, j)))(units[:, 1], units[:, 2]))
        self.setup_s += time.perf_counter() - start
        return units[:n_real], (nets, tasks, hyper), keys

    def to_devices(self, tree):
        """Host arrays -> global arrays with the run axis sharded over all devices."""
        return jax.tree.map(
            lambda a: jax.make_array_from_callback(a.shape, self.sharding, lambda index, a=a: a[index]), tree)

    def to_host(self, tree):
        if jax.process_count() == 1:
            return jax.device_get(tree)
        return multihost_utils.process_allgather(tree, tiled=True)

    def _compile(self, name, fn, *args):
        if name not in self.compiled:
            start = time.perf_counter()
            jitted = jax.jit(fn, in_shardings=self.sharding, out_shardings=self.sharding)
            self.compiled[name] = jitted.lower(*args).compile()
            self.compile_s += time.perf_counter() - start
        return self.compiled[name](*args)

    def start(self, inputs, keys):
        """Initial `TrainState`s (keys as raw key data) of a chunk; `inputs` on the devices."""
        static = self.static

        def one(net, task, hyper, key_data):
            k0_key, train_key = jax.random.split(jax.random.wrap_key_data(key_data))
            rule = make_rule(static, hyper, self.desync)
            k0 = _initial_conductances(static, rule, hyper, k0_key, net.n_edges, self.dtype)
            return _plain(initial_state(net, task, rule, k0, train_key))

        return self._compile("start", jax.vmap(one), *inputs, self.to_devices(keys))

    def segment(self, inputs, state, steps: int):
        """Advance a chunk's states by `steps` (`inputs` on the devices): `(state, logs)`."""
        static = self.static
        batch = None if static["batch_size"] == "full" else static["batch_size"]

        def one(net, task, hyper, plain_state):
            rule = make_rule(static, hyper, self.desync)
            result = train(net, task, rule, _typed(plain_state), steps=steps, batch_size=batch,
                           log_every=static["log_every"], method=solver_of(static), track_cosine=static["track_cosine"])
            logs = {"step": result.steps, "loss": result.loss, "at_bound": result.at_bound,
                    "test_loss": result.test_loss, "accuracy": result.accuracy,
                    "test_accuracy": result.test_accuracy, "cosine": result.cosine}
            return _plain(result.state), {k: v for k, v in logs.items() if v is not None}

        return self._compile(("segment", steps), jax.vmap(one), *inputs, state)


_NETWORK_TASK_KEYS = ("network", "n_nodes", "coordination", "rows", "cols", "n_edges",
                      "task", "n_train", "n_test", "random_matrix", "n_outputs")


def _plain(state: TrainState) -> TrainState:
    """The state with its typed key as raw key data (so it can be gathered and saved)."""
    return eqx.tree_at(lambda s: s.key, state, jax.random.key_data(state.key))


def _typed(state: TrainState) -> TrainState:
    return eqx.tree_at(lambda s: s.key, state, jax.random.wrap_key_data(state.key))


def _segment_lengths(steps: int, log_every: int, every: int) -> list[int]:
    """Segments of a whole number of `log_every` (the last may be shorter), about `every` long."""
    per = max(1, round(every / log_every)) * log_every
    lengths = [per] * (steps // per)
    if steps % per:
        lengths.append(steps % per)
    return lengths


# ------------------------------------------------------------------ files


def _write_json(path: str, data: dict) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=1, default=str).encode()))


def _chunk_name(group: int, chunk: int) -> str:
    return f"g{group:03d}-c{chunk:05d}"


def _rows(points: list[dict], units: np.ndarray, runs: np.ndarray, logs: dict, n_instances: int,
          codes: np.ndarray, failed_steps: np.ndarray):
    """The tidy rows of a chunk's runs: one per (run, logged step), a failed run's up to its failure.

    `codes` are the runs' `RESULTS` codes (0: completed), `failed_steps` their failed steps.
    """
    import pandas as pd

    n_logged = logs["loss"].shape[1]
    point_ids = np.repeat(units[:, 0], n_logged)
    table = pd.DataFrame(points).reindex(columns=list(COLUMNS)).iloc[point_ids].reset_index(drop=True)
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


def _logged_steps(lengths: list[int], log_every: int) -> np.ndarray:
    """The steps a chunk logs, run in segments of `lengths` (as `train` logs each segment).

    The table's steps come from here, not from the runs' states: a failed run's state is
    frozen at its failed step, so the steps it reports for later segments would repeat.
    """
    out, offset = [], 0
    for s, length in enumerate(lengths):
        steps = np.minimum(np.arange(-(-length // log_every) + 1) * log_every, length)
        steps[-1] = length
        out.append(offset + (steps if s == 0 else steps[1:]))
        offset += length
    return np.concatenate(out)


# ------------------------------------------------------------------ the sweep


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
      the wall time, the compile time and the setup time spent building networks, tasks and
      keys, and the network-steps run; `failed_runs`: one record per failed run with `run`,
      `point`, `grid` (the grid values that vary in this sweep), `network_seed`, `init_seed`,
      `failure`, `failed_step`, `residual`, `tolerance`, `k_low`, `k_high` and `message`).

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
    points, groups = _plan(config)
    _check_x64(points)
    normalized = json.loads(json.dumps(config.as_dict(), default=str))

    hint = source if isinstance(source, str) and "\n" not in source and os.path.isfile(source) else None
    _prepare_dir(out_dir, normalized, fresh, writer)
    metadata_path = os.path.join(out_dir, "metadata.json")
    saved_meta = _read_json(metadata_path) if os.path.exists(metadata_path) else {}
    retry = saved_meta.get("retry")  # the runs of an interrupted retry
    if is_complete(out_dir):
        failed = saved_meta.get("failed_runs", [])
        if not (retry_failed and failed):
            note = f", {len(failed)} failed run{'s' * (len(failed) != 1)}" if failed else ""
            how = " (retry them with --retry-failed, retry_failed=True)" if failed else ""
            say(f"sweep in {out_dir} is already complete{note}: nothing to do{how} "
                f"({os.path.join(out_dir, 'results.parquet')}).")
            table = load_sweep(out_dir)
            if failed:
                say(failure_summary(out_dir, hint))
            return table
        retry = sorted(f["run"] for f in failed)
        say(f"sweep in {out_dir}: retrying its {len(retry)} failed run(s) with the same inputs.")

    networks: dict = {}
    plan_path = os.path.join(out_dir, "plan.json")
    saved_plan = _read_json(plan_path) if os.path.exists(plan_path) else None
    runners = []
    for group in groups:
        runner = _Runner(config, points, group, networks)
        requested = config.sweep["chunk_size"]
        if saved_plan is not None:
            group.chunk_size = saved_plan["chunk_sizes"][group.index]
        elif requested == "auto":
            net, task = runner.network_and_task(0)
            group.chunk_size = _auto_chunk_size(group.static, len(group.units), net, task)
        else:
            group.chunk_size = min(requested, len(group.units))
        runners.append(runner)
    plan = {"chunk_sizes": [g.chunk_size for g in groups], "groups": [g.static for g in groups]}
    n_instances = config.sweep["networks"] * config.sweep["seeds"]
    todo = {(g.index, c) for g in groups for c in range(g.n_chunks)
            if retry is None or np.isin(_chunk_runs(g, c, n_instances, config.sweep["seeds"]), retry).any()}
    _sync("jaxnet-sweep-plan")
    if writer:
        if saved_plan is None:
            _write_json(plan_path, plan)
        if not os.path.exists(os.path.join(out_dir, "config.toml")):
            _write_config_copy(out_dir, source, config, overrides)
        _write_json(metadata_path, _metadata(groups, "running", saved_meta.get("invocations", []),
                                             failed_runs=saved_meta.get("failed_runs", []), retry=retry))
    chunk_dir = os.path.join(out_dir, "chunks")
    os.makedirs(chunk_dir, exist_ok=True)
    progress_path = os.path.join(out_dir, "progress.npz")

    def chunk_done(g, c):
        return os.path.exists(os.path.join(chunk_dir, _chunk_name(g.index, c) + ".parquet"))

    def chunk_runs(g, c):
        return min(g.chunk_size, len(g.units) - c * g.chunk_size)

    total = sum(chunk_runs(g, c) * g.static["steps"] for g in groups for c in range(g.n_chunks) if (g.index, c) in todo)
    done_steps = sum(chunk_runs(g, c) * g.static["steps"] for g in groups for c in range(g.n_chunks)
                     if (g.index, c) in todo and chunk_done(g, c))
    n_chunks = len(todo)
    chunks_done = sum(chunk_done(g, c) for g in groups for c in range(g.n_chunks) if (g.index, c) in todo)
    say(f"sweep: {len(points)} grid points x {n_instances} instances = {len(points) * n_instances} runs in "
        f"{len(groups)} compiled group(s), {n_chunks} chunk(s), on {jax.device_count()} device(s)"
        f"{f' in {jax.process_count()} processes' if jax.process_count() > 1 else ''}"
        + (f"; retrying {len(retry)} failed run(s)" if retry is not None else "")
        + (f"; resuming ({chunks_done}/{n_chunks} chunks done)" if chunks_done else ""))
    bar = _progress_bar(writer and not quiet, total=total, initial=done_steps, unit="net-step", unit_scale=True,
                        smoothing=0.1)
    wall_start = time.perf_counter()
    ran_steps = 0
    progress = read_meta(progress_path) if os.path.exists(progress_path) else None
    if progress is not None and progress.get("jaxnet_version") != jaxnet_version():
        raise version_mismatch(progress_path, progress.get("jaxnet_version"), "a sweep's progress")
    _sync("jaxnet-sweep-start")
    for group, runner in zip(groups, runners):
        log_every = group.static["log_every"]
        lengths = _segment_lengths(group.static["steps"], log_every, config.sweep["checkpoint_every"])
        for c in range(group.n_chunks):
            name = _chunk_name(group.index, c)
            if (group.index, c) not in todo or chunk_done(group, c):
                continue
            units, inputs, keys = runner.inputs(c)
            inputs = runner.to_devices(inputs)  # once per chunk, for every segment
            state = runner.start(inputs, keys)
            logs: dict[str, list] = {}
            first = 0
            if progress is not None and progress.get("chunk") == name:
                state, meta, arrays = load_tree(progress_path, state)
                first = meta["segments_done"]
                logs = {k: [v] for k, v in arrays.items()}
                if bar is not None:
                    bar.update(len(units) * sum(lengths[:first]))
            progress = None
            for s in range(first, len(lengths)):
                state, seg_logs = runner.segment(inputs, state, lengths[s])
                host_state, seg_logs = runner.to_host((state, seg_logs))
                for key, value in seg_logs.items():
                    value = np.asarray(value)[: len(units)]
                    logs.setdefault(key, []).append(value if s == 0 else value[:, 1:])
                joined = {k: np.concatenate(v, axis=1) for k, v in logs.items()}
                if writer and s < len(lengths) - 1:
                    save_tree(progress_path, host_state,
                              dict(chunk=name, segments_done=s + 1, fingerprint=normalized,
                                   jaxnet_version=jaxnet_version()), joined)
                ran_steps += len(units) * lengths[s]
                if bar is not None:
                    bar.update(len(units) * lengths[s])
                    bar.set_postfix_str(f"chunk {chunks_done + 1}/{n_chunks}")
            joined = {k: np.concatenate(v, axis=1) for k, v in logs.items()}
            if writer:
                runs = units[:, 0] * n_instances + units[:, 1] * config.sweep["seeds"] + units[:, 2]
                failure = jax.tree.map(lambda a: np.asarray(a)[: len(units)], host_state.failure)
                codes = np.asarray(failure.result._value).astype(np.int64)
                k_final = np.asarray(host_state.conductances)[: len(units)]
                k_final = np.where((codes != 0)[:, None], np.nan, k_final)
                # A failed run's state is frozen at its failed step: the steps come from the plan
                # (which the completed runs' own logged steps must match).
                planned = np.broadcast_to(_logged_steps(lengths, log_every), joined["loss"].shape)
                if not np.array_equal(joined["step"][codes == 0], planned[codes == 0]):
                    raise RuntimeError(f"jaxnet: chunk {name} logged other steps than planned; please report this.")
                joined["step"] = planned
                _save_npz(os.path.join(chunk_dir, name + ".npz"), run=runs, k=k_final, failure=codes,
                          failed_step=np.asarray(failure.step), residual=np.asarray(failure.residual),
                          tolerance=np.asarray(failure.tolerance), k_low=np.asarray(failure.k_low),
                          k_high=np.asarray(failure.k_high))
                table = _rows(points, units, runs, joined, n_instances, codes, np.asarray(failure.step))
                _save_parquet(table, os.path.join(chunk_dir, name + ".parquet"))
                if os.path.exists(progress_path):
                    os.remove(progress_path)
            chunks_done += 1
            _sync(f"jaxnet-sweep-{name}")
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - wall_start
    if writer:
        invocation = dict(wall_s=wall, compile_s=sum(r.compile_s for r in runners),
                          setup_s=sum(r.setup_s for r in runners), network_steps=ran_steps)
        if retry is not None:
            invocation["retried_runs"] = len(retry)
        _finish(out_dir, config, points, groups, invocation, retry)
    _sync("jaxnet-sweep-done")
    table = load_sweep(out_dir)
    failed = table.attrs["failed_runs"]
    say(f"done: {len(table)} rows in {os.path.join(out_dir, 'results.parquet')}; wall {wall:.1f} s "
        f"(compile {sum(r.compile_s for r in runners):.1f} s)"
        + (f"; {len(failed)} of {len(points) * n_instances} runs failed" if failed else ""))
    if failed:
        say(failure_summary(out_dir, hint))
    return table


def _chunk_runs(group: Group, chunk: int, n_instances: int, seeds: int) -> np.ndarray:
    """The run ids of one chunk of a group."""
    units = group.units[chunk * group.chunk_size:(chunk + 1) * group.chunk_size]
    return units[:, 0] * n_instances + units[:, 1] * seeds + units[:, 2]


def failure_summary(out_dir: str, config_hint: str | None = None) -> str:
    """A few lines naming each failed run of the finished sweep in `out_dir` ("" if none).

    `config_hint`: how to name the config in the retry command (default `CONFIG`).
    """
    failed = _read_json(os.path.join(out_dir, "metadata.json")).get("failed_runs", [])
    if not failed:
        return ""
    n_runs = _read_json(os.path.join(out_dir, "metadata.json")).get("runs")
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
                 f"{run})); jn.train(r.net, r.task, r.rule, r.k0, key=r.key, **r.train_kwargs) repeats it.")
    lines.append(f"Running the sweep again does not retry them: `jaxnet sweep {config_hint or 'CONFIG'} --out {out_dir} "
                 "--retry-failed` (with the same --set overrides, if any; jn.sweep(..., retry_failed=True)) reruns only them, "
                 "with the same inputs.")
    return "\n".join(lines)


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def _read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _save_npz(path: str, **arrays) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _save_parquet(table, path: str) -> None:
    atomic_write(path, lambda f: table.to_parquet(f, index=False))


def _diff(saved, current, prefix="") -> list[str]:
    """Dotted names of the config entries that differ between two normalized configs."""
    if isinstance(saved, dict) and isinstance(current, dict):
        return [d for key in sorted(set(saved) | set(current))
                for d in _diff(saved.get(key), current.get(key), f"{prefix}{key}.")]
    if isinstance(saved, list) and isinstance(current, list) and prefix == "rule.":
        if len(saved) != len(current):
            return [f"rule (number of [[rule]] tables: {len(saved)} -> {len(current)})"]
        return [d for i, (a, b) in enumerate(zip(saved, current)) for d in _diff(a, b, f"rule[{i}].")]
    return [] if saved == current else [f"{prefix[:-1]} ({saved!r} -> {current!r})"]


def _prepare_dir(out_dir: str, normalized: dict, fresh: bool, writer: bool) -> None:
    """Refuse a directory that holds another sweep, another version's, or foreign files; `fresh`
    empties it."""
    config_path = os.path.join(out_dir, "config.json")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise SweepError(f"{out_dir} is a file, not a directory; give a directory for the sweep.")
    if fresh and writer and os.path.isdir(out_dir):
        for name in ("results.parquet", "conductances.npz", "config.toml", "config.json", "plan.json",
                     "metadata.json", "progress.npz", "chunks"):
            path = os.path.join(out_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    _sync("jaxnet-sweep-fresh")
    if os.path.exists(config_path):
        saved = _read_json(config_path)
        version = saved.pop("jaxnet_version", None)
        if version != jaxnet_version():
            raise version_mismatch(out_dir, version, "a sweep")
        differ = _diff(saved, normalized)
        if differ:
            raise SweepError(
                f"{out_dir} holds a sweep with another config: {'; '.join(differ)}. "
                "Use another directory, or --fresh (fresh=True) to delete it and start over."
            )
    elif os.path.isdir(out_dir) and os.listdir(out_dir):
        raise SweepError(f"{out_dir} is not empty and holds no sweep; give an empty or new directory.")
    _sync("jaxnet-sweep-checked")
    if writer:
        os.makedirs(out_dir, exist_ok=True)
        if not os.path.exists(config_path):
            _write_json(config_path, {**normalized, "jaxnet_version": jaxnet_version()})


def _config_of_dir(out_dir: str) -> SweepConfig:
    """The `SweepConfig` of the sweep in `out_dir` (from its config.json)."""
    saved = _read_json(os.path.join(out_dir, "config.json"))
    saved.pop("jaxnet_version", None)

    def given(table: dict) -> dict:  # keys a kind does not use, and kind defaults, are None there
        return {k: v for k, v in table.items() if v is not None}

    raw = {section: given(saved[section]) for section in ("sweep", "network", "task")}
    raw["rule"] = [given(r) for r in saved["rule"]]
    return load_config(raw)


def _write_config_copy(out_dir: str, source, config: SweepConfig, overrides) -> None:
    """The config as given (file or text) with the overrides noted; config.json is normative."""
    if isinstance(source, str):
        text = open(source, encoding="utf-8").read() if os.path.exists(source) else source
    else:
        text = "# given as a dict or SweepConfig: see config.json for every key\n"
    if overrides:
        text = f"# overridden (config.json has the values used): {json.dumps(overrides, default=str)}\n" + text
    with open(os.path.join(out_dir, "config.toml"), "w", encoding="utf-8") as f:
        f.write(text)


def _metadata(groups: list[Group], status: str, previous: list, failed_runs: list, retry=None) -> dict:
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


def _failure_records(config: SweepConfig, points: list[dict], saved) -> list[dict]:
    """One record per failed run of a chunk's `.npz` (see `sweep` for the keys)."""
    import types

    varying = [c for c in COLUMNS if len({json.dumps(p[c], default=str) for p in points}) > 1]
    n_instances = config.sweep["networks"] * config.sweep["seeds"]
    records = []
    for i in np.flatnonzero(saved["failure"] != 0):
        run = int(saved["run"][i])
        point = run // n_instances
        network_seed, init_seed = divmod(run % n_instances, config.sweep["seeds"])
        one = {k: saved[k][i] for k in ("failed_step", "residual", "tolerance", "k_low", "k_high")}
        failure = types.SimpleNamespace(result=types.SimpleNamespace(_value=saved["failure"][i]), step=one["failed_step"],
                                        **{k: one[k] for k in ("residual", "tolerance", "k_low", "k_high")})
        number = lambda v: float(v) if np.isfinite(v) else None  # noqa: E731  (JSON has no NaN)
        records.append(dict(
            run=run, point=point, grid={c: points[point][c] for c in varying}, network_seed=network_seed,
            init_seed=init_seed, failure=list(RESULTS._name_to_item)[int(saved["failure"][i])],
            failed_step=int(one["failed_step"]), residual=number(one["residual"]), tolerance=number(one["tolerance"]),
            k_low=number(one["k_low"]), k_high=number(one["k_high"]), message=describe(failure)))
    return records


def _finish(out_dir: str, config: SweepConfig, points: list[dict], groups: list[Group], invocation: dict,
            retry: list[int] | None) -> None:
    """Merge the chunk files into results.parquet and conductances.npz; mark complete.

    In a retry, only the retried runs' rows and conductances are taken from the chunk files
    (the chunks that hold them); every other row and array is kept as it was.
    """
    import pandas as pd

    chunk_dir = os.path.join(out_dir, "chunks")
    metadata_path = os.path.join(out_dir, "metadata.json")
    saved_meta = _read_json(metadata_path) if os.path.exists(metadata_path) else {}
    parts, arrays, records = [], {}, []
    for g in groups:
        runs, ks = [], []
        for c in range(g.n_chunks):
            name = os.path.join(chunk_dir, _chunk_name(g.index, c))
            if not os.path.exists(name + ".npz"):  # a retry: a chunk without failed runs
                continue
            with np.load(name + ".npz") as saved:
                saved = dict(saved)
            pick = np.ones(len(saved["run"]), bool) if retry is None else np.isin(saved["run"], retry)
            part = pd.read_parquet(name + ".parquet")
            parts.append(part if retry is None else part[part.run.isin(saved["run"][pick])])
            runs.append(saved["run"][pick])
            ks.append(saved["k"][pick])
            records += _failure_records(config, points, {k: v[pick] for k, v in saved.items()})
        if runs:
            arrays[f"g{g.index:03d}/run"] = np.concatenate(runs)
            arrays[f"g{g.index:03d}/k"] = np.concatenate(ks)
    if retry is not None:
        old = pd.read_parquet(os.path.join(out_dir, "results.parquet"))
        parts.insert(0, old[~old.run.isin(retry)])
        with np.load(os.path.join(out_dir, "conductances.npz")) as saved:
            for name in saved.files:
                if name.endswith("/run"):
                    stem = name[:-4]
                    new = dict(zip(arrays.get(stem + "/run", []), arrays.get(stem + "/k", [])))
                    k = np.array([new.get(r, k) for r, k in zip(saved[name], saved[stem + "/k"])])
                    arrays[name], arrays[stem + "/k"] = saved[name], k
        records += [f for f in saved_meta.get("failed_runs", []) if f["run"] not in retry]
    table = pd.concat(parts, ignore_index=True).sort_values(["run", "step"], kind="stable").reset_index(drop=True)
    _save_parquet(table, os.path.join(out_dir, "results.parquet"))
    _save_npz(os.path.join(out_dir, "conductances.npz"), **arrays)
    records.sort(key=lambda f: f["run"])
    _write_json(metadata_path, _metadata(groups, "complete", saved_meta.get("invocations", []) + [invocation], records))
    shutil.rmtree(chunk_dir, ignore_errors=True)


def is_complete(out_dir: str) -> bool:
    """Whether `out_dir` holds a sweep that ran to the end (its metadata says so)."""
    metadata = os.path.join(out_dir, "metadata.json")
    return os.path.exists(metadata) and _read_json(metadata).get("status") == "complete"


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
    table.attrs["failed_runs"] = _read_json(os.path.join(out_dir, "metadata.json")).get("failed_runs", [])
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
