"""Ways to make networks: lattices, disordered and random graphs, networkx, terminal choice.

Random generators take a JAX PRNG key and are reproducible from it. They run in NumPy at
Python time (building a topology is done once, not inside `jit`).
"""

from __future__ import annotations

import jax
import numpy as np
import scipy.spatial
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from ._network import Network


def _rng(key: PRNGKeyArray) -> np.random.Generator:
    """A NumPy generator seeded deterministically from a JAX key."""
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def square_lattice(rows: int, cols: int) -> Network:
    """A `rows x cols` square grid; node `i * cols + j` sits at `(j, i)`.

    **Returns:** a `Network` with `rows*cols` nodes and `rows*(cols-1) + cols*(rows-1)` edges.
    """
    if rows < 1 or cols < 1 or rows * cols < 2:
        raise ValueError(f"square_lattice needs at least 2 nodes; got rows={rows}, cols={cols}.")
    idx = np.arange(rows * cols).reshape(rows, cols)
    horizontal = np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], axis=1)
    vertical = np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], axis=1)
    jj, ii = np.meshgrid(np.arange(cols), np.arange(rows))
    pos = np.stack([jj.ravel(), ii.ravel()], axis=1).astype(float)
    return Network.from_edges(np.concatenate([horizontal, vertical]), rows * cols, positions=pos)


def triangular_lattice(rows: int, cols: int) -> Network:
    """A `rows x cols` triangular lattice (square grid plus one diagonal per cell, rows sheared).

    Interior nodes have coordination 6. **Returns:** a `Network` with `rows*cols` nodes.
    """
    if rows < 2 or cols < 2:
        raise ValueError(f"triangular_lattice needs rows, cols >= 2; got {rows}, {cols}.")
    idx = np.arange(rows * cols).reshape(rows, cols)
    horizontal = np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], axis=1)
    vertical = np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], axis=1)
    diagonal = np.stack([idx[:-1, 1:].ravel(), idx[1:, :-1].ravel()], axis=1)
    jj, ii = np.meshgrid(np.arange(cols), np.arange(rows))
    pos = np.stack([jj.ravel() + 0.5 * ii.ravel(), ii.ravel() * np.sqrt(3) / 2], axis=1)
    edges = np.concatenate([horizontal, vertical, diagonal])
    return Network.from_edges(edges, rows * cols, positions=pos)


def _connected_subgraph(rng: np.random.Generator, edges: np.ndarray, n_nodes: int, n_keep: int):
    """`n_keep` of `edges` chosen at random that still connect all nodes.

    A random spanning tree (Kruskal on a random edge order) guarantees connectivity; the
    remaining edges are then added in the same random order until `n_keep` are kept.
    """
    order = rng.permutation(len(edges))
    parent = np.arange(n_nodes)

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    in_tree = np.zeros(len(edges), bool)
    for e in order:
        a, b = find(edges[e, 0]), find(edges[e, 1])
        if a != b:
            parent[a] = b
            in_tree[e] = True
    extra = [e for e in order if not in_tree[e]][: max(0, n_keep - int(in_tree.sum()))]
    keep = np.sort(np.concatenate([np.flatnonzero(in_tree), np.asarray(extra, dtype=int)]))
    return edges[keep]


def disordered_network(key: PRNGKeyArray, n_nodes: int, coordination: float = 4.0) -> Network:
    """A disordered 2D network: random points, Delaunay triangulation, pruned at random.

    Points are uniform in the unit square; the Delaunay triangulation (mean coordination just
    under 6) is pruned by removing random edges, keeping the graph connected, until the mean
    coordination `2E/N` is `coordination` (rounded to a whole number of edges).

    **Arguments:** `key` PRNG key; `n_nodes` (>= 4); `coordination` target mean number of
    edges per node, between 2(1 - 1/N) (a tree) and that of the triangulation.

    **Returns:** a `Network` with `positions`.
    """
    if n_nodes < 4:
        raise ValueError(f"disordered_network needs n_nodes >= 4; got {n_nodes}.")
    rng = _rng(key)
    points = rng.uniform(size=(n_nodes, 2))
    simplices = scipy.spatial.Delaunay(points).simplices
    tri = np.concatenate([simplices[:, [0, 1]], simplices[:, [1, 2]], simplices[:, [2, 0]]])
    edges = np.unique(np.sort(tri, axis=1), axis=0)
    n_keep = int(round(coordination * n_nodes / 2))
    if not (n_nodes - 1 <= n_keep <= len(edges)):
        raise ValueError(
            f"coordination={coordination} is out of reach for {n_nodes} nodes: it must lie between "
            f"{2 * (n_nodes - 1) / n_nodes:.3f} (a tree) and {2 * len(edges) / n_nodes:.3f} "
            "(the full triangulation)."
        )
    kept = _connected_subgraph(rng, edges, n_nodes, n_keep)
    return Network.from_edges(kept, n_nodes, positions=points)


def random_graph(key: PRNGKeyArray, n_nodes: int, n_edges: int, *, parallel_edges: bool = False) -> Network:
    """A random connected graph: a random spanning tree plus random extra edges.

    **Arguments:** `key`; `n_nodes` (>= 2); `n_edges`, at least `n_nodes - 1`; `parallel_edges`:
    if False (the default) the graph is simple and `n_edges` is at most `n_nodes (n_nodes - 1) / 2`;
    if True each extra edge joins a uniformly drawn pair of distinct nodes, which may already be
    joined (a multigraph, with no upper bound on `n_edges`).

    **Returns:** a `Network` with edges sorted by `(sender, receiver)`.
    """
    if n_nodes < 2:
        raise ValueError(f"random_graph needs n_nodes >= 2; got {n_nodes}.")
    most = n_edges if parallel_edges else n_nodes * (n_nodes - 1) // 2
    if not (n_nodes - 1 <= n_edges <= most):
        raise ValueError(f"n_edges must be between {n_nodes - 1} and {most} for {n_nodes} nodes; got {n_edges}.")
    rng = _rng(key)
    perm = rng.permutation(n_nodes)
    # Random recursive tree: each new node attaches to a uniformly chosen earlier one.
    tree = [tuple(sorted((int(perm[i]), int(perm[rng.integers(i)])))) for i in range(1, n_nodes)]
    chosen = list(tree) if parallel_edges else set(tree)
    add = chosen.append if parallel_edges else chosen.add
    while len(chosen) < n_edges:
        a, b = rng.integers(n_nodes, size=2)
        if a != b:
            add((int(min(a, b)), int(max(a, b))))
    return Network.from_edges(np.array(sorted(chosen)), n_nodes)


LAB_EDGES = ((0, 7), (0, 3), (1, 2), (1, 8), (2, 6), (2, 9), (2, 3), (3, 6), (3, 9), (3, 8), (4, 9), (4, 6), (4, 5),
             (5, 8), (5, 7), (7, 9))
"""Edges of the lab stand-in: `networkx.gnm_random_graph(10, 16, seed=5)`, in its edge order."""

LAB_TERMINALS = {"features": (0, 1, 4, 5), "bias": (6,), "output": (7,), "ground": (8,)}
"""The lab stand-in's terminals for Iris: the three nodes of highest degree (3, 2, 9) stay
hidden, and the other seven, in increasing order, are the four feature inputs, the bias
input, the output and ground."""


def lab_network() -> Network:
    """A stand-in for the laboratory network of Dillavou et al. (Phys. Rev. Applied 18, 014040,
    2022): 16 variable resistors, randomly wired, on 10 nodes, three of them hidden.

    The lab's exact wiring is not public in a form we reproduce, so this is a named random
    graph chosen by a stated rule: `networkx.gnm_random_graph(10, 16, seed)` for the first
    seed (5) that is connected with every node of degree 2 or more (no dangling resistor).
    `LAB_EDGES` holds its edge list and `LAB_TERMINALS` its terminals (networkx is not
    needed to build it; the tests check the list against networkx).

    **Returns:** a `Network` with 10 nodes and 16 edges.
    """
    return Network.from_edges(np.array(LAB_EDGES), 10)


def random_terminals(
    key: PRNGKeyArray, net: Network, n_inputs: int, n_outputs: int, n_ground: int = 1
) -> tuple[Int[Array, " inputs"], Int[Array, " outputs"], Int[Array, " ground"]]:
    """Pick distinct input, output and ground nodes uniformly at random.

    **Returns:** `(inputs, outputs, ground)` int arrays of lengths `n_inputs`, `n_outputs`,
    `n_ground`, with no node in two of them.
    """
    total = n_inputs + n_outputs + n_ground
    if min(n_inputs, n_outputs, n_ground) < 0 or total > net.n_nodes:
        raise ValueError(
            f"cannot pick {n_inputs} inputs, {n_outputs} outputs and {n_ground} ground nodes "
            f"from {net.n_nodes} nodes (counts must be >= 0 and sum to at most the node count)."
        )
    nodes = jax.random.choice(key, net.n_nodes, (total,), replace=False)
    return nodes[:n_inputs], nodes[n_inputs : n_inputs + n_outputs], nodes[n_inputs + n_outputs :]


def from_networkx(graph) -> Network:
    """A `Network` from an undirected `networkx` graph: a `Graph`, or a `MultiGraph` whose
    parallel edges become parallel network edges.

    Nodes are numbered in `graph.nodes` order, edges follow `graph.edges` order; a node
    attribute ``"pos"`` (2-sequence), if every node has one, becomes `positions`.

    **Returns:** a `Network`.

    **Raises:** `ValueError` naming the graph's own node for a self-loop or a node that no path
    joins to the first node.
    """
    import networkx as nx

    nodes = list(graph.nodes)
    if not nodes:
        raise ValueError("the graph has no nodes.")
    for a, b in nx.selfloop_edges(graph):
        raise ValueError(f"the graph has a self-loop on node {a!r}.")
    apart = set(nodes) - nx.node_connected_component(graph, nodes[0])
    if apart:
        raise ValueError(f"the graph is disconnected: node {next(n for n in nodes if n in apart)!r} has no path "
                         f"to node {nodes[0]!r}.")
    index = {node: i for i, node in enumerate(nodes)}
    edges = np.array([(index[a], index[b]) for a, b in graph.edges()], dtype=np.int64).reshape(-1, 2)
    pos = None
    if all("pos" in graph.nodes[n] for n in nodes):
        pos = np.array([graph.nodes[n]["pos"] for n in nodes], dtype=float)
    return Network.from_edges(edges, len(nodes), positions=pos)


def to_networkx(net: Network, conductances: Float[ArrayLike, " edges"] | None = None):
    """A `networkx` graph of `net`: a `Graph` when no two edges join the same pair of nodes, a
    `MultiGraph` when some do (its edge keys are the network's edge indices).

    Nodes are `0..N-1`; the edge attribute ``"conductance"`` holds `conductances` `(E,)` if
    given; node positions, if the network has them, go to the node attribute ``"pos"``.
    """
    import networkx as nx

    senders, receivers = np.asarray(net.senders).tolist(), np.asarray(net.receivers).tolist()
    pairs = {tuple(sorted(p)) for p in zip(senders, receivers)}
    multi = len(pairs) < net.n_edges
    graph = nx.MultiGraph() if multi else nx.Graph()
    pos = None if net.positions is None else np.asarray(net.positions)
    for i in range(net.n_nodes):
        graph.add_node(i, **({} if pos is None else {"pos": tuple(pos[i])}))
    k = None if conductances is None else np.asarray(conductances)
    for e, (a, b) in enumerate(zip(senders, receivers)):
        attributes = {} if k is None else {"conductance": float(k[e])}
        graph.add_edge(a, b, **({"key": e} if multi else {}), **attributes)
    return graph
