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
    offsets = fig.axes[0].collections[2].get_offsets()  # after the edges and the diode symbols
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


def test_plot_network_names_the_element_kinds_and_points_each_diode_from_anode_to_cathode():
    # 0 -> 1 left to right, 2 -> 1 right to left, a smooth diode 1 -> 3 upwards, and in
    # parallel with the first (both drawn as arcs) 1 -> 0, right to left
    net = jn.Network.from_edges([[0, 1], [2, 1], [1, 3], [0, 3], [2, 3], [1, 0]],
                                positions=[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [1.0, 1.0]])
    kinds = ["diode", "diode", "smooth_diode", "resistor", "transistor", "diode"]
    fig = jn.plot_network(net.with_elements(jn.Elements.from_kinds(kinds)), np.ones(6))
    ax, (legend,) = fig.axes[0], fig.legends
    names = [t.get_text() for t in legend.get_texts() if t.get_text().strip()]
    assert sorted(names) == sorted(["resistor", "diode (anode → cathode)", "smooth diode (anode → cathode)", "transistor"])
    # The legend lies inside the figure, clear of the axes and of the colour bar.
    fig.canvas.draw()
    box, renderer = legend.get_window_extent(), fig.canvas.get_renderer()
    assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)
    for other in (ax, fig.axes[1]):  # the axes, the colour bar
        assert not box.overlaps(other.get_tightbbox(renderer))
    (symbols,) = [c for c in ax.collections if c.get_gid() == "diode symbols"]
    triangles = [p.vertices[:3] for p in symbols.get_paths()[::2]]  # each diode: a triangle, then a bar
    assert len(triangles) == 4  # diodes and the smooth diode, not the resistor or the transistor
    for (tip, *base), direction in zip(triangles, ([1, 0], [-1, 0], [0, 1], [-1, 0]), strict=True):
        assert np.dot(tip - np.mean(base, 0), direction) > 0  # the tip points at the receiver


@pytest.mark.parametrize("kinds, unit", [(["transistor"] * 4, "gate voltage k = $V_G$ (V)"),
                                         (["resistor", "diode"] * 2, "conductance k (S)"),
                                         (["transistor", "resistor"] * 2, "gate voltage (V) on transistors")])
def test_plot_network_colour_bar_gives_what_k_is_and_its_unit(kinds, unit):
    net = jn.square_lattice(2, 2).with_elements(jn.Elements.from_kinds(kinds))
    fig = jn.plot_network(net, np.linspace(0.5, 2.0, 4))
    label = fig.axes[0].collections[0].colorbar.ax.get_ylabel()
    assert unit in label
    if "on transistors" in label:
        assert "conductance (S) on the other edges" in label


def test_plot_network_sets_terminal_labels_off_their_markers():
    net = jn.square_lattice(4, 4)
    task = jn.regression_task(jax.random.key(0), net)
    fig = jn.plot_network(net, np.ones(net.n_edges), task=task)
    ax = fig.axes[0]
    fig.canvas.draw()  # places the axes (equal aspect) and its labels
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_text().rstrip("0123456789") in ("in", "out", "gnd")]
    assert len(labels) == 5
    # a marker of area s points² reaches sqrt(s / 2) points from its centre (a square's corner)
    reach = (np.sqrt(120 / 2) + 1.2) * fig.dpi / 72
    for text in labels:
        box = text.get_window_extent(renderer)
        centre = ax.transData.transform(text.xy)
        nearest = np.clip(centre, [box.x0, box.y0], [box.x1, box.y1])
        assert np.linalg.norm(nearest - centre) > reach, text.get_text()
        assert ax.get_window_extent(renderer).contains(*box.p0) and ax.get_window_extent(renderer).contains(*box.p1)


def test_plot_network_draws_two_networks_on_one_k_range():
    """`k_range` fixes the colour bar (and the widths) so that two drawings compare; bad ranges are refused."""
    net = jn.square_lattice(3, 3)
    k = np.linspace(0.5, 1.0, net.n_edges)
    lines = [c for c in jn.plot_network(net, k, k_range=(0.1, 2.0)).axes[0].collections if c.get_array() is not None]
    assert lines[0].get_clim() == (0.1, 2.0)
    own = [c for c in jn.plot_network(net, k).axes[0].collections if c.get_array() is not None]
    assert own[0].get_clim() == (0.5, 1.0)
    for bad in ((2.0, 1.0), (-1.0, 1.0), (0.1,)):
        with pytest.raises(ValueError, match="k_range"):
            jn.plot_network(net, k, k_range=bad)
