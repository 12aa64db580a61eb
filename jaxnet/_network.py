"""`Network`: the topology of a resistor network, as an immutable pytree."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from ._checks import connected_components
from ._elements import Elements


class Network(eqx.Module):
    """Topology of a resistor network: which nodes each edge joins.

    Edge ``e`` runs ``senders[e] -> receivers[e]``; its voltage drop is
    ``V[senders[e]] - V[receivers[e]]``. The graph may be a multigraph: parallel edges (the
    same pair of nodes) are separate edges, each with its own conductance. Conductances are not part of the network: they are
    what learning changes, so they are passed separately to every function.

    A `Network` is an `equinox.Module`, hence a pytree: it can be passed through `jit`, and
    networks with the same numbers of nodes and edges can be stacked and `vmap`-ed over.
    Build one with `Network.from_edges`, which checks the graph; the constructor itself does
    not check anything.

    **Fields:**

    - `senders`: int array `(E,)`, first node of each edge.
    - `receivers`: int array `(E,)`, second node of each edge.
    - `n_nodes`: number of nodes (static).
    - `positions`: optional float array `(N, 2)` of node coordinates, for plotting only.
    - `elements`: optional `Elements`, what each edge is (diodes, transistors); None: every
      edge a linear resistor. See `with_elements`.
    """

    senders: Int[Array, " edges"]
    receivers: Int[Array, " edges"]
    n_nodes: int = eqx.field(static=True)
    positions: Float[Array, "nodes 2"] | None = None
    elements: Elements | None = None

    @property
    def linear(self) -> bool:
        """True when the network has no `elements`: every edge a linear resistor, solved by
        superposition. (A network with elements is solved by Newton, even if all are resistors.)"""
        return self.elements is None

    def with_elements(self, elements: Elements | None) -> "Network":
        """This network with each edge's element kind: `elements` from `Elements.from_kinds`.

        A network with elements is solved by damped Newton (`jn.solve`, `train` and every rule
        work on it); its conductances `k` are each element's learned parameter (a diode's series
        conductance, a transistor's gate voltage). None makes every edge a linear resistor again.

        ```python
        net = jn.square_lattice(3, 3)
        net = net.with_elements(jn.Elements.from_kinds(["diode"] * net.n_edges))
        ```
        """
        if elements is not None:
            if not isinstance(elements, Elements):
                raise ValueError(f"elements must be a jn.Elements (Elements.from_kinds); got {type(elements).__name__}.")
            if elements.n_edges != self.n_edges:
                raise ValueError(f"elements has {elements.n_edges} edges; the network has {self.n_edges}.")
        return Network(self.senders, self.receivers, self.n_nodes, self.positions, elements)

    @property
    def n_edges(self) -> int:
        """Number of edges `E`."""
        return self.senders.shape[-1]

    @property
    def edges(self) -> Int[Array, "edges 2"]:
        """Edges as an `(E, 2)` array of `(sender, receiver)` pairs."""
        return jnp.stack([self.senders, self.receivers], axis=-1)

    @classmethod
    def from_edges(
        cls,
        edges: Int[ArrayLike, "edges 2"],
        n_nodes: int | None = None,
        positions: Float[ArrayLike, "nodes 2"] | None = None,
    ) -> "Network":
        """Build a network from a list of edges, refusing graphs with self-loops or not connected.

        Parallel edges (two or more edges joining the same pair of nodes, in either
        orientation) are allowed: each has its own conductance and learns on its own.

        **Arguments:**

        - `edges`: int array-like `(E, 2)`; row `e` is `(sender, receiver)` of edge `e`.
        - `n_nodes`: number of nodes; default `max(edges) + 1`.
        - `positions`: optional `(n_nodes, 2)` node coordinates (for plotting).

        **Returns:** a `Network`.

        **Raises:** `ValueError` naming the offending edge or node for: a wrong shape or dtype,
        a negative or out-of-range node id, a self-loop, or a disconnected graph (including a
        node that no edge touches).

        ```python
        net = jn.Network.from_edges([[0, 1], [1, 2], [2, 0]])
        ```
        """
        e = np.asarray(edges)
        if e.ndim != 2 or e.shape[1] != 2:
            raise ValueError(f"edges must have shape (E, 2); got shape {e.shape}.")
        if e.shape[0] == 0:
            raise ValueError("edges is empty: a network needs at least one edge.")
        if not np.issubdtype(e.dtype, np.integer):
            if not np.all(np.equal(np.mod(e, 1), 0)):
                raise ValueError(f"edges must hold integer node ids; got dtype {e.dtype}.")
            e = e.astype(np.int64)
        if np.any(e < 0):
            i = int(np.argwhere(e < 0)[0, 0])
            raise ValueError(f"edge {i} = {tuple(e[i].tolist())} has a negative node id.")
        n = int(e.max()) + 1 if n_nodes is None else int(n_nodes)
        if np.any(e >= n):
            i = int(np.argwhere(e >= n)[0, 0])
            raise ValueError(
                f"edge {i} = {tuple(e[i].tolist())} names a node out of range for n_nodes={n}."
            )
        loops = np.flatnonzero(e[:, 0] == e[:, 1])
        if loops.size:
            i = int(loops[0])
            raise ValueError(f"edge {i} = {tuple(e[i].tolist())} is a self-loop.")
        labels = connected_components(e, n)
        if labels.max() > 0:
            lonely = int(np.flatnonzero(labels != labels[0])[0])
            raise ValueError(
                f"the graph is disconnected: node {lonely} has no path to node 0 "
                f"({labels.max() + 1} components)."
            )
        pos = None
        if positions is not None:
            pos = jnp.asarray(positions, dtype=float)
            if pos.shape != (n, 2):
                raise ValueError(f"positions must have shape ({n}, 2); got {pos.shape}.")
        return cls(
            senders=jnp.asarray(e[:, 0], dtype=jnp.int32),
            receivers=jnp.asarray(e[:, 1], dtype=jnp.int32),
            n_nodes=n,
            positions=pos,
        )


def _along(axis: int, index):
    """An index taking `index` along `axis` (-1: the last axis; else counted from the first)."""
    if axis < -1:
        raise ValueError(f"axis must be -1 or counted from the first axis (>= 0); got {axis}.")
    return (Ellipsis, index) if axis == -1 else (slice(None),) * axis + (index,)


def edge_drops(
    net: Network, voltages: Float[ArrayLike, "*examples nodes"], *, axis: int = -1
) -> Float[Array, "*examples edges"]:
    """Voltage drop across each edge, `V[sender] - V[receiver]` (volts): `B V`, `B` the
    incidence matrix.

    **Arguments:** `net`; `voltages` `(..., N)`; `axis`: the node axis (-1, the last, or
    counted from the first, e.g. 0 for `(N, columns)`). **Returns:** `(..., E)`, edges on `axis`.
    """
    v = jnp.asarray(voltages)
    return v[_along(axis, net.senders)] - v[_along(axis, net.receivers)]


def edge_sums(
    net: Network, values: Float[Array, "*examples nodes"], *, axis: int = -1
) -> Float[Array, "*examples edges"]:
    """Per edge, `values` at its two ends summed, `x[sender] + x[receiver]` (`|B| x`); `axis`
    the node axis, as in `edge_drops`."""
    return values[_along(axis, net.senders)] + values[_along(axis, net.receivers)]


def _at_nodes(net: Network, edge_values: Float[Array, "*examples edges"], axis: int, dtype) -> Float[Array, "..."]:
    """Zeros shaped as `edge_values` with its edge axis `axis` replaced by the nodes, in `dtype`
    (None: `edge_values`')."""
    shape = list(edge_values.shape)
    shape[axis] = net.n_nodes
    return jnp.zeros(tuple(shape), edge_values.dtype if dtype is None else dtype)


def outflow(
    net: Network, edge_values: Float[Array, "*examples edges"], *, axis: int = -1, dtype=None
) -> Float[Array, "*examples nodes"]:
    """Per node, the sum of `edge_values` over the edges it sends minus those it receives
    (`Bᵀ x`, `B` the incidence matrix): the net current out of each node for edge currents.
    `axis`: the edge axis (the node axis of the result), as in `edge_drops`; `dtype`: the
    result's (default `edge_values`')."""
    out = _at_nodes(net, edge_values, axis, dtype)
    return out.at[_along(axis, net.senders)].add(edge_values).at[_along(axis, net.receivers)].add(-edge_values)


def incident_sum(
    net: Network, edge_values: Float[Array, "*examples edges"], *, axis: int = -1, dtype=None
) -> Float[Array, "*examples nodes"]:
    """Per node, the sum of `edge_values` over every edge that touches it (`|B|ᵀ x`): for
    conductances the weighted degree, for currents' magnitudes the current through the node.
    `axis` and `dtype` as in `outflow`."""
    out = _at_nodes(net, edge_values, axis, dtype)
    return out.at[_along(axis, net.senders)].add(edge_values).at[_along(axis, net.receivers)].add(edge_values)
