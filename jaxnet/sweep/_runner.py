"""Running one group's chunks: inputs built on the host, one `jit(vmap(...))` per program
with the run axis sharded over every device of every process (`jax.distributed`: each
process builds the same inputs and computes its share)."""

from __future__ import annotations

import collections
import json
import math
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .._train import TrainState, initial_state, train
from ._build import make_network, make_rule, make_task, network_keys, network_task_columns, run_start, train_options
from ._config import SweepConfig
from ._plan import Group
from ._registry import kind_of

#: Compiled programs of this process, by everything that decides them (`Runner._program_key`),
#: the most recently used last: a sweep of the same structure as an earlier one in the process
#: (a notebook's second sweep, another output directory, a resumed run) compiles nothing.
_PROGRAMS: collections.OrderedDict = collections.OrderedDict()
_PROGRAMS_KEPT = 32


class Runner:
    """Builds a group's inputs and runs its chunks on a mesh over every device of every process."""

    def __init__(self, config: SweepConfig, points: list[dict], group: Group, networks: dict):
        self.config, self.points, self.group = config, points, group
        self.static = group.static
        self.networks = networks  # shared by the groups of a sweep (see `all_networks_and_tasks`)
        self.mesh = Mesh(np.array(jax.devices()), ("runs",))
        self.sharding = NamedSharding(self.mesh, PartitionSpec("runs"))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.dtype = jnp.dtype(self.static["dtype"])
        self.compiled: dict[Any, Any] = {}  # the programs this group ran, by name
        self.compile_s = 0.0
        self.programs_compiled = 0  # how many of them this process had not compiled before
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
        cache_key = json.dumps({c: self.static[c] for c in network_task_columns()}, sort_keys=True)
        if cache_key not in self.networks:
            seed, n = self.config.sweep["seed"], self.config.sweep["networks"]
            pairs = jax.vmap(lambda i: network_keys(seed, i))(jnp.arange(n))  # (n, 2) keys
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
        """Host arrays of one chunk, padded to `padded_size` with copies of its first run:
        `(units, (networks, tasks, hyperparameters), seeds)`, `seeds` each run's network and
        training seed."""
        start = time.perf_counter()
        units = self.group.chunk_units(chunk)
        n_real = len(units)
        units = np.concatenate([units, np.repeat(units[:1], self.padded_size() - n_real, axis=0)])
        nets, tasks = jax.tree.map(lambda a: np.asarray(a)[units[:, 1]], self.all_networks_and_tasks())
        hyper = {c: np.array([self.points[p][c] for p in units[:, 0]], self.dtype) for c in self.group.traced}
        seeds = units[:, 1:].astype(np.int32)
        self.setup_s += time.perf_counter() - start
        return units[:n_real], (nets, tasks, hyper), seeds

    def to_devices(self, tree, sharding=None):
        """Host arrays -> global arrays with the run axis sharded over all devices (or `sharding`)."""
        sharding = sharding or self.sharding
        return jax.tree.map(
            lambda a: jax.make_array_from_callback(a.shape, sharding, lambda index, a=a: a[index]), tree)

    def to_host(self, tree):
        if jax.process_count() == 1:
            return jax.device_get(tree)
        return multihost_utils.process_allgather(tree, tiled=True)

    def _program_key(self, name, args, shared) -> tuple:
        """What decides the program `name` of this group on these arguments: the group's static
        keys, whether it desyncs, the sweep's seed (the start program draws from it), the
        registered constructors of its kinds, the arguments' structure, shapes, dtypes and
        shardings (so the devices), and every JAX setting (64-bit JAX, the PRNG's implementation
        and `jax_threefry_partitionable` change what a program computes; a change of any setting
        compiles anew)."""
        leaves, structure = jax.tree.flatten((args, shared))
        kinds = tuple((kind.build, kind.check) for kind in
                      (kind_of(section, self.static[section]) for section in ("network", "task", "rule")))
        return (name, json.dumps(self.static, sort_keys=True), self.desync,
                self.config.sweep["seed"] if name == "start" else None, kinds, structure,
                tuple((leaf.shape, leaf.dtype, leaf.sharding) for leaf in leaves),
                tuple(sorted(jax.config.values.items())))

    def _compile(self, name, fn, *args, shared=()):
        """`fn(*args, *shared)` compiled once per `name` (and once per process for programs that
        `_program_key` says are the same): `args` sharded by run, `shared` replicated."""
        if name not in self.compiled:
            key = self._program_key(name, args, shared)
            if key not in _PROGRAMS:
                start = time.perf_counter()
                shardings = (self.sharding,) * len(args) + (self.replicated,) * len(shared)
                jitted = jax.jit(fn, in_shardings=shardings, out_shardings=self.sharding)
                _PROGRAMS[key] = jitted.lower(*args, *shared).compile()
                self.compile_s += time.perf_counter() - start
                self.programs_compiled += 1
                while len(_PROGRAMS) > _PROGRAMS_KEPT:
                    _PROGRAMS.popitem(last=False)
            _PROGRAMS.move_to_end(key)
            self.compiled[name] = _PROGRAMS[key]
        return self.compiled[name](*args, *shared)

    def start(self, inputs, seeds):
        """Initial `TrainState`s (keys as raw key data) of a chunk; `inputs` on the devices,
        `seeds` on the host."""
        static, seed = self.static, self.config.sweep["seed"]

        def one(net, task, hyper, run_seeds):
            rule = make_rule(static, hyper, self.desync)
            k0, train_key = run_start(static, rule, hyper, seed, run_seeds[0], run_seeds[1], net.n_edges, self.dtype)
            return plain(initial_state(net, task, rule, k0, train_key))

        return self._compile("start", jax.vmap(one), *inputs, self.to_devices(seeds))

    def segment(self, inputs, state, steps: int, log_every: int):
        """Advance a chunk's states by `steps`, logged every `log_every` (`inputs` on the devices):
        `(state, logs)`. One program per number of logged intervals: the step counts are traced,
        so the chunks of every p of a p grid under clock = "edge_updates" share it."""
        static = self.static
        intervals = -(-steps // log_every)

        def one(net, task, hyper, plain_state, schedule):
            rule = make_rule(static, hyper, self.desync)
            result = train(net, task, rule, typed(plain_state), steps=schedule[0], log_every=schedule[1],
                           intervals=intervals, **train_options(static))
            logs = {"step": result.steps, "loss": result.loss, "at_bound": result.at_bound,
                    "test_loss": result.test_loss, "accuracy": result.accuracy,
                    "test_accuracy": result.test_accuracy, "cosine": result.cosine}
            return plain(result.state), {k: v for k, v in logs.items() if v is not None}

        schedule = self.to_devices(np.array([steps, log_every], np.int32), self.replicated)
        return self._compile(("segment", intervals), jax.vmap(one, in_axes=(0, 0, 0, 0, None)), *inputs, state,
                             shared=(schedule,))


def plain(state: TrainState) -> TrainState:
    """The state with its typed key as raw key data (so it can be gathered and saved)."""
    return eqx.tree_at(lambda s: s.key, state, jax.random.key_data(state.key))


def typed(state: TrainState) -> TrainState:
    """The state with its raw key data as a typed key again (`plain` undone)."""
    return eqx.tree_at(lambda s: s.key, state, jax.random.wrap_key_data(state.key))
