import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from helpers import numpy_contrast, numpy_solve

import jaxnet as jn


def test_from_edges_basic():
    net = jn.Network.from_edges([[0, 1], [1, 2], [2, 0]])
    assert (net.n_nodes, net.n_edges) == (3, 3)
    np.testing.assert_array_equal(net.senders, [0, 1, 2])
    np.testing.assert_array_equal(net.receivers, [1, 2, 0])
    assert jax.tree_util.tree_leaves(net)  # a pytree with array leaves


@pytest.mark.parametrize(
    "edges, n_nodes, match",
    [
        ([[0, 1], [1, 1]], None, r"edge 1 = \(1, 1\) is a self-loop"),
        ([[0, 1], [1, 5]], 4, r"edge 1 = \(1, 5\) names a node out of range"),
        ([[0, 1], [-1, 2]], None, r"edge 1 = \(-1, 2\) has a negative node id"),
        ([[0, 1], [2, 3]], None, r"disconnected: node 2 has no path to node 0"),
        ([[0, 1], [1, 2]], 4, r"disconnected: node 3"),
        ([0, 1, 2], None, r"shape \(E, 2\)"),
        (np.zeros((0, 2), int), None, "empty"),
        ([[0.5, 1.0]], None, "integer"),
    ],
)
def test_from_edges_refuses(edges, n_nodes, match):
    with pytest.raises(ValueError, match=match):
        jn.Network.from_edges(edges, n_nodes)


def test_square_and_triangular_lattices():
    sq = jn.square_lattice(8, 8)
    assert (sq.n_nodes, sq.n_edges) == (64, 112)
    tri = jn.triangular_lattice(5, 6)
    assert (tri.n_nodes, tri.n_edges) == (30, 5 * 5 + 4 * 6 + 4 * 5)
    degree = np.bincount(np.concatenate([tri.senders, tri.receivers]), minlength=30)
    assert degree.max() == 6


def test_disordered_network(key):
    net = jn.disordered_network(key, 200, coordination=3.5)
    assert net.n_nodes == 200
    assert net.n_edges == 350  # 2E/N = 3.5
    assert net.positions.shape == (200, 2)
    again = jn.disordered_network(key, 200, coordination=3.5)
    np.testing.assert_array_equal(net.senders, again.senders)
    other = jn.disordered_network(jax.random.key(1), 200, coordination=3.5)
    assert not np.array_equal(np.asarray(net.positions), np.asarray(other.positions))
    with pytest.raises(ValueError, match="out of reach"):
        jn.disordered_network(key, 50, coordination=7.0)


def test_random_graph(key):
    net = jn.random_graph(key, 30, 60)
    assert (net.n_nodes, net.n_edges) == (30, 60)  # from_edges already checked connectivity
    with pytest.raises(ValueError, match="n_edges must be between"):
        jn.random_graph(key, 10, 5)
    pairs = np.sort(np.asarray(net.edges), axis=1)
    assert len(np.unique(pairs, axis=0)) == net.n_edges  # simple unless asked
    multi = jn.random_graph(key, 6, 40, parallel_edges=True)  # more edges than 6 nodes' 15 pairs
    assert (multi.n_nodes, multi.n_edges) == (6, 40)
    assert np.all(multi.senders < multi.receivers)


def test_parallel_edges_are_separate_edges_of_the_solve_and_of_learning(x64):
    """A multigraph: the solve and coupled learning's update against plain NumPy (whose
    Laplacian adds parallel conductances), and each parallel edge keeps its own conductance."""
    net = jn.random_graph(jax.random.key(2), 10, 30, parallel_edges=True)
    edges = np.asarray(net.edges)
    pairs = np.sort(edges, axis=1)
    task = jn.regression_task(jax.random.key(4), net, n_train=6, n_test=2)
    k = jax.random.uniform(jax.random.key(1), (net.n_edges,), minval=0.5, maxval=1.5)
    values = jnp.concatenate([task.x_train, jnp.zeros((6, 1))], axis=1)
    v = jax.vmap(lambda x: jn.solve(net, k, task.fixed_nodes, x))(values)
    np.testing.assert_allclose(v, numpy_solve(edges, k, net.n_nodes, task.fixed_nodes, values), atol=1e-12)
    rule = jn.rules.coupled_learning(alpha=0.2, eta=0.1, k_min=0.3, k_max=3.0)
    learned = jn.train(net, task, rule, k, key=jax.random.key(0), steps=1).conductances
    step = 0.2 / 0.1 * numpy_contrast(edges, np.asarray(k), net.n_nodes, task, task.x_train, task.y_train, 0.1)
    np.testing.assert_allclose(learned, np.clip(k + step, 0.3, 3.0), rtol=1e-9)
    _, inverse, counts = np.unique(pairs, axis=0, return_inverse=True, return_counts=True)
    twins = np.flatnonzero(counts[inverse.ravel()] > 1)
    assert len(np.unique(np.asarray(learned)[twins])) == len(twins)  # each parallel edge its own k


def test_from_edges_accepts_parallel_edges_in_either_orientation():
    net = jn.Network.from_edges([[0, 1], [1, 2], [1, 0], [0, 1]])
    assert (net.n_nodes, net.n_edges) == (3, 4)


def test_random_terminals(key):
    net = jn.square_lattice(5, 5)
    inputs, outputs, ground = jn.random_terminals(key, net, 2, 3, 1)
    nodes = np.concatenate([inputs, outputs, ground])
    assert (len(inputs), len(outputs), len(ground)) == (2, 3, 1)
    assert len(np.unique(nodes)) == 6 and nodes.min() >= 0 and nodes.max() < 25
    with pytest.raises(ValueError, match="cannot pick"):
        jn.random_terminals(key, net, 20, 5, 1)


def test_networkx_round_trip():
    graph = nx.petersen_graph()
    net = jn.from_networkx(graph)
    assert (net.n_nodes, net.n_edges) == (10, 15)
    k = np.arange(1.0, 16.0)
    back = jn.to_networkx(net, k)
    assert nx.is_isomorphic(graph, back)
    assert back.edges[int(net.senders[3]), int(net.receivers[3])]["conductance"] == 4.0
    grid = jn.to_networkx(jn.square_lattice(3, 3))
    assert jn.from_networkx(grid).positions is not None


def test_networkx_multigraph_round_trip_and_errors_in_the_graphs_own_names():
    graph = nx.MultiGraph([("a", "b"), ("b", "c"), ("a", "b"), ("c", "a")])
    net = jn.from_networkx(graph)
    assert (net.n_nodes, net.n_edges) == (3, 4)
    back = jn.to_networkx(net, np.arange(1.0, 5.0))
    assert isinstance(back, nx.MultiGraph) and back.number_of_edges(0, 1) == 2
    assert sorted(c for *_, c in back.edges(data="conductance")) == [1.0, 2.0, 3.0, 4.0]
    assert back.edges[int(net.senders[2]), int(net.receivers[2]), 2]["conductance"] == 3.0  # key = edge index
    assert not isinstance(jn.to_networkx(jn.square_lattice(2, 2)), nx.MultiGraph)  # simple stays a Graph
    with pytest.raises(ValueError, match="self-loop on node 'b'"):
        jn.from_networkx(nx.MultiGraph([("a", "b"), ("b", "b")]))
    with pytest.raises(ValueError, match="node 'x' has no path to node 'a'"):
        jn.from_networkx(nx.Graph([("a", "b"), ("x", "y")]))
