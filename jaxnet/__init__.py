"""jaxnet: differentiable, GPU-ready simulation of self-learning resistor networks."""

import importlib.metadata

from ._cache import enable_compile_cache as enable_compile_cache
from ._checkpoint import fingerprint as fingerprint, run_resumable as run_resumable
from ._generators import (
    disordered_network as disordered_network,
    from_networkx as from_networkx,
    LAB_EDGES as LAB_EDGES,
    LAB_TERMINALS as LAB_TERMINALS,
    lab_network as lab_network,
    random_graph as random_graph,
    random_terminals as random_terminals,
    square_lattice as square_lattice,
    to_networkx as to_networkx,
    triangular_lattice as triangular_lattice,
)
from ._measures import spread_over_keys as spread_over_keys, stuck_measures as stuck_measures
from ._elements import KINDS as KINDS, THERMAL_VOLTAGE as THERMAL_VOLTAGE, Elements as Elements
from ._network import Network as Network
from ._plot import plot_network as plot_network
from ._results import (
    RESULTS as RESULTS,
    Failure as Failure,
    JaxnetError as JaxnetError,
    SolverError as SolverError,
    check as check,
)
from ._spice_cards import DIODE_ACCEPTED as DIODE_ACCEPTED, DIODE_HONOURED as DIODE_HONOURED
from ._spice_read import SpiceCircuit as SpiceCircuit, from_spice as from_spice
from ._spice_write import to_spice as to_spice
from ._sharding import shard_instances as shard_instances
from ._nonlinear import Newton as Newton
from ._solve import Solver as Solver, solve as solve
from ._solver import (
    AbstractSolver as AbstractSolver,
    Auto as Auto,
    CG as CG,
    CGThenDense as CGThenDense,
    Dense as Dense,
    LinearSolver as LinearSolver,
    SolveInfo as SolveInfo,
)
from . import rules as rules
from ._observables import (
    edge_currents as edge_currents,
    edge_drops as edge_drops,
    effective_conductance as effective_conductance,
    node_currents as node_currents,
    power as power,
    source_currents as source_currents,
)
from ._states import (
    ElementPhysics as ElementPhysics,
    LinearPhysics as LinearPhysics,
    Measurement as Measurement,
    Physics as Physics,
)

from ._tasks import (
    IRIS_LEVELS as IRIS_LEVELS,
    REGRESSION_MATRIX as REGRESSION_MATRIX,
    Task as Task,
    allostery_task as allostery_task,
    iris_task as iris_task,
    load_iris as load_iris,
    regression_task as regression_task,
    xor_task as xor_task,
)
from .sweep import (
    ConfigError as ConfigError,
    RunInputs as RunInputs,
    SweepConfig as SweepConfig,
    SweepError as SweepError,
    load_conductances as load_conductances,
    load_config as load_config,
    load_sweep as load_sweep,
    plot_sweep as plot_sweep,
    rebuild_run as rebuild_run,
    sweep as sweep,
)
from ._train import (
    TrainResult as TrainResult,
    TrainState as TrainState,
    initial_state as initial_state,
    train as train,
)
from ._trajectory import conductance_trajectory as conductance_trajectory
from .paper import reproduce as reproduce

__version__ = importlib.metadata.version("jaxnet")
