"""`jn.plot_network`: what it draws, and the errors it names."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn


def test_plot_network_draws_edges_nodes_and_terminals(tmp_path):
    net = jn.square_lattice(4, 4)
    task = jn.regression_task(jax.random.key(0), net)
    k = jnp.linspace(0.1, 5.0, net.n_edges)
    v = jn.solve(net, k, task.fixed_nodes, jnp.array([1.0, 0.5, 0.0]))
    fig = jn.plot_network(net, k, v, task=task, edge_color="current", path=str(tmp_path / "net.png"), title="t")
    ax = fig.axes[0]
    lines = ax.collections[0]
    assert len(lines.get_segments()) == net.n_edges
    # edge colours carry |I_e|, widths grow with conductance
    np.testing.assert_allclose(lines.get_array(), np.abs(np.asarray(jn.edge_currents(net, k, v))), rtol=1e-6)
    widths = np.asarray(lines.get_linewidths())
    assert widths[np.argmax(np.asarray(k))] == widths.max() and widths[np.argmin(np.asarray(k))] == widths.min()
    labels = [t.get_text() for t in ax.texts]
    assert {"in0", "in1", "out0", "out1", "gnd"} <= set(labels)
    assert (tmp_path / "net.png").stat().st_size > 10_000


def test_plot_network_lays_out_a_network_without_positions_and_marks_element_kinds():
    net = jn.random_graph(jax.random.key(1), 10, 20).with_elements(jn.Elements.from_kinds(["diode", "resistor"] * 10))
    fig = jn.plot_network(net, np.ones(net.n_edges))
    styles = fig.axes[0].collections[0].get_linestyles()
    assert styles[0] != styles[1]  # a diode is drawn unlike a resistor
    offsets = fig.axes[0].collections[1].get_offsets()
    assert len(np.unique(np.round(offsets, 6), axis=0)) == net.n_nodes  # spectral layout: distinct places


def test_plot_network_names_bad_input():
    net = jn.square_lattice(2, 2)
    with pytest.raises(ValueError, match=r"conductances must have shape \(4,\)"):
        jn.plot_network(net, np.ones(3))
    with pytest.raises(ValueError, match="needs voltages"):
        jn.plot_network(net, np.ones(4), edge_color="current")
    with pytest.raises(ValueError, match="one example's state"):
        jn.plot_network(net, np.ones(4), np.ones((2, 4)))


def test_plot_network_bows_parallel_edges_apart():
    net = jn.Network.from_edges([[0, 1], [1, 2], [2, 1], [1, 2]], positions=[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    paths = jn.plot_network(net, np.ones(4)).axes[0].collections[0].get_paths()
    assert len(paths[0].vertices) == 2  # a single edge stays straight
    peaks = [p.vertices[len(p.vertices) // 2] for p in paths[1:]]
    np.testing.assert_allclose([x for x, _ in peaks], 1.5)  # three arcs peak over the middle of 1-2,
    np.testing.assert_allclose(sorted(y for _, y in peaks), [-0.25, 0.0, 0.25], atol=1e-12)  # bowed apart
