"""jaxnet: differentiable, GPU-ready simulation of self-learning resistor networks."""

import importlib.metadata

from ._generators import (
    disordered_network as disordered_network,
    from_networkx as from_networkx,
    random_graph as random_graph,
    random_terminals as random_terminals,
    square_lattice as square_lattice,
    to_networkx as to_networkx,
    triangular_lattice as triangular_lattice,
)
from ._network import Network as Network
from ._solver import DENSE_MAX_NODES as DENSE_MAX_NODES, solve as solve
from ._states import (
    edge_currents as edge_currents,
    edge_drops as edge_drops,
    node_currents as node_currents,
    power as power,
    source_currents as source_currents,
)

__version__ = importlib.metadata.version("jaxnet")
