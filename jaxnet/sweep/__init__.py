"""The sweep engine: a config to a tidy results table, resumable, on one device or many hosts.

A layer above `train` that only expands, groups, batches, shards, saves and tabulates; the
core knows nothing of it (no core module imports this package).

- **Kinds.** Each network, task and rule kind is registered once, with its constructor and
  its keys (`register_rule`, `register_network`, `register_task`; `_registry`, the built-in
  kinds in `_kinds`); the config's keys (`schema()`), its checks and each run's construction
  (`_build`) all read the registry.
- **Expand.** `SweepConfig.points()` is the grid (`_config`). Each point runs on
  `networks x seeds` instances: network seed `i` gives the network and the task (terminals,
  data), the same at every grid point, so rules are compared on the same networks; training
  seed `j` gives the initial conductances and the run's PRNG key (`_build`).
- **Group.** Points with equal static keys (sizes, kinds, the solver, ...) form a group: one
  compiled program, in which the traced hyperparameters (`alpha`, `eta`, `p`, the learning
  rate, ...) are vmapped along with the instances, and `steps` and `log_every` are traced
  per chunk (so a p grid under `clock = "edge_updates"` is one group; `_plan`).
- **Batch and shard.** A group's runs are cut into chunks that fit in device memory; each
  chunk is one `jit(vmap(train))` whose run axis is sharded over every device of every
  process (`jax.distributed`: each process builds the same inputs and computes its share;
  `_runner`).
- **Save.** A chunk advances in segments (`train` continued from its `TrainState`), and after
  each segment its state and logs are written atomically; a finished chunk's rows go to their
  own file (`_run`, `_store`). Killed at any moment and run again, the sweep continues from
  the last segment and gives the table of an uninterrupted run, bit for bit.
- **Tabulate.** `DIR/results.parquet`: one row per (grid point, instance, logged step),
  read back by `load_sweep` (`_load`) and drawn by `plot_sweep` (`_figures`, with
  `jaxnet._plot`, which reads no files).

`jaxnet.sweep` the attribute is the function `jn.sweep`, which shadows this package: import
from it (`from jaxnet.sweep import load_sweep`), not `import jaxnet.sweep as ...`.
"""

from .._checkpoint import SweepError as SweepError
from ._config import ConfigError as ConfigError, SweepConfig as SweepConfig, columns as columns
from ._config import load_config as load_config
from ._keys import REQUIRED as REQUIRED, Key as Key, boolean as boolean, choice as choice
from ._keys import constrained as constrained, integer as integer, number as number
from ._registry import Kind as Kind, register_network as register_network, register_rule as register_rule
from ._registry import register_task as register_task, schema as schema
from ._load import RunInputs as RunInputs, failure_summary as failure_summary, is_complete as is_complete
from ._load import load_conductances as load_conductances, load_sweep as load_sweep, rebuild_run as rebuild_run
from ._figures import plot_run_network as plot_run_network, plot_sweep as plot_sweep
from ._run import sweep as sweep
