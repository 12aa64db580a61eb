import jax
import networkx as nx
import numpy as np
import pytest

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
        ([[0, 1], [1, 2], [1, 0]], None, r"edges \[0, 2\] all join nodes \(0, 1\)"),
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
