"""The plan of a sweep: grid points in groups (one compiled program each), groups in chunks
(one `jit(vmap(train))` each, sized to fit in device memory, all of one step count), chunks in
segments (one checkpoint each)."""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np

from .._checkpoint import SweepError
from .._network import Network
from ._build import solver_of, static_columns, traced_columns
from ._config import SweepConfig

#: The static keys a group's points may differ in: a chunk's steps and log_every are traced
#: arguments of its programs (`train(intervals=...)`), so a p grid under clock = "edge_updates"
#: (where each p has its own) is one group.
SCHEDULE = ("steps", "log_every")


@dataclasses.dataclass
class Group:
    """Points with the same static keys, steps and log_every aside: one compiled program (per
    number of logged intervals of a segment)."""

    index: int
    static: dict
    point_ids: list[int]
    traced: tuple[str, ...]  # the traced keys this group's rule and network use
    units: np.ndarray  # (U, 3): point id, network seed, training seed; those of one schedule together
    schedules: dict[int, tuple[int, int]]  # point id -> (steps, log_every) of its runs
    blocks: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # (start, stop) in units of each schedule
    chunk_size: int = 0

    @property
    def chunks(self) -> list[tuple[int, int]]:
        """`(start, stop)` in `units` of each chunk: `chunk_size` runs of one schedule (a block's
        last chunk may be short)."""
        return [(a, min(a + self.chunk_size, stop)) for start, stop in self.blocks
                for a in range(start, stop, self.chunk_size)]

    @property
    def n_chunks(self) -> int:
        return len(self.chunks)

    def chunk_units(self, chunk: int) -> np.ndarray:
        """The units (point id, network seed, training seed) of one chunk."""
        return self.units[slice(*self.chunks[chunk])]

    def chunk_length(self, chunk: int) -> int:
        """The number of runs of one chunk (the last of a block may be short)."""
        start, stop = self.chunks[chunk]
        return stop - start

    def schedule(self, chunk: int) -> tuple[int, int]:
        """`(steps, log_every)` of every run of one chunk."""
        return self.schedules[int(self.units[self.chunks[chunk][0], 0])]

    def segments(self, chunk: int, every: int) -> list[int]:
        """The segment lengths of one chunk: the same number of logged intervals for every chunk
        of the group (so they share their programs), about `every` steps for the group's
        longest interval (its shorter ones checkpoint more often)."""
        steps, log_every = self.schedule(chunk)
        longest = max(log for _, log in self.schedules.values())
        return segment_lengths(steps, log_every, max(1, round(every / longest)))


def plan(config: SweepConfig) -> tuple[list[dict], list[Group]]:
    """The grid points of `config` and their groups (chunk sizes not yet set)."""
    points = config.points()
    groups: dict[str, Group] = {}
    n_net, n_seed = config.sweep["networks"], config.sweep["seeds"]
    static_keys, traced_keys = static_columns(), traced_columns()
    instance_grid = np.array([(i, j) for i in range(n_net) for j in range(n_seed)], dtype=np.int64)
    for pid, point in enumerate(points):
        static = {c: point[c] for c in static_keys if c not in SCHEDULE}
        signature = json.dumps(static, sort_keys=True)
        if signature not in groups:
            traced = tuple(c for c in traced_keys if point[c] is not None)
            groups[signature] = Group(len(groups), static, [], traced, np.zeros((0, 3), np.int64), {})
        group = groups[signature]
        group.point_ids.append(pid)
        group.schedules[pid] = (point["steps"], point["log_every"])
        rows = np.concatenate([np.full((len(instance_grid), 1), pid), instance_grid], axis=1)
        group.units = np.concatenate([group.units, rows])
    for group in groups.values():  # the units of one schedule together, in the order they came
        order = list(dict.fromkeys(group.schedules.values()))
        rank = np.repeat([order.index(group.schedules[p]) for p in group.point_ids], len(instance_grid))
        group.units = group.units[np.argsort(rank, kind="stable")]
        bounds = np.searchsorted(np.sort(rank), np.arange(len(order) + 1)).tolist()
        group.blocks = list(zip(bounds[:-1], bounds[1:]))
    return points, list(groups.values())


def set_chunk_sizes(config: SweepConfig, groups: list[Group], saved_plan: dict | None, first_network_and_task) -> None:
    """Each group's chunk size: the saved plan's (a resumed sweep keeps its chunks), the config's,
    or (`chunk_size = "auto"`) what fits in memory for `first_network_and_task(group)`; never
    more than the runs of its largest schedule (a chunk holds one)."""
    requested = config.sweep["chunk_size"]
    if saved_plan is not None and saved_plan["groups"] != json.loads(json.dumps([g.static for g in groups], default=str)):
        raise SweepError("the sweep's plan.json holds other groups than this jaxnet makes of its config (written by "
                         "an older jaxnet?); use another directory, or --fresh (fresh=True) to start over.")
    for group in groups:
        largest = max(stop - start for start, stop in group.blocks)
        if saved_plan is not None:
            group.chunk_size = saved_plan["chunk_sizes"][group.index]
        elif requested == "auto":
            net, task = first_network_and_task(group)
            group.chunk_size = auto_chunk_size(group.static, largest, net, task)
        else:
            group.chunk_size = min(requested, largest)


def bytes_per_run(static: dict, n_nodes: int, n_edges: int, n_columns: int, n_examples: int) -> int:
    """A generous estimate of one run's device memory inside a compiled segment."""
    item = 8 if static["dtype"] == "float64" else 4
    dense = solver_of(static).may_factorize(n_nodes)
    matrices = 6 * n_nodes * n_nodes if dense else 0
    vectors = 16 * n_nodes * n_columns + 8 * n_edges * (n_columns + n_examples)
    return item * (matrices + vectors) + 4096


def auto_chunk_size(static: dict, units: int, net: Network, task) -> int:
    """The most runs of a group that fit in device memory at once (and no more than it has)."""
    devices = jax.devices()
    n_columns = task.inputs.shape[0] + task.outputs.shape[0]
    per_run = bytes_per_run(static, net.n_nodes, net.n_edges, n_columns, task.x_train.shape[0])
    if devices[0].platform == "cpu":
        budget = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
        cap = 256 * len(devices)  # measured sweet spot on CPU: 256 instances per device
    else:
        stats = devices[0].memory_stats() or {}
        budget = stats.get("bytes_limit", 16 << 30) // 2 * len(devices)
        cap = 65_536 * len(devices)
    return max(1, min(units, cap, budget // per_run))


def run_ids(units: np.ndarray, n_instances: int, seeds: int) -> np.ndarray:
    """The run ids (as in the results table) of units (point id, network seed, training seed)."""
    return units[:, 0] * n_instances + units[:, 1] * seeds + units[:, 2]


def chunks_to_run(groups: list[Group], retry: list[int] | None, n_instances: int, seeds: int) -> set[tuple[int, int]]:
    """`(group index, chunk)` of every chunk this invocation runs: all, or in a retry those
    that hold a retried run."""
    return {(g.index, c) for g in groups for c in range(g.n_chunks)
            if retry is None or np.isin(run_ids(g.chunk_units(c), n_instances, seeds), retry).any()}


def segment_lengths(steps: int, log_every: int, intervals: int) -> list[int]:
    """Segments of `intervals` logged intervals of `log_every` steps (the last may be shorter)."""
    per = intervals * log_every
    lengths = [per] * (steps // per)
    if steps % per:
        lengths.append(steps % per)
    return lengths


def logged_steps(lengths: list[int], log_every: int) -> np.ndarray:
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


def chunk_name(group: int, chunk: int) -> str:
    """The file stem of a chunk's files (and of its progress)."""
    return f"g{group:03d}-c{chunk:05d}"
