"""Iris as the field encodes it: bias inputs, readouts, the lab stand-in network, in sweeps."""

import networkx as nx
import numpy as np
import pytest
import scipy.optimize

import jax
import jax.numpy as jnp

import jaxnet as jn


def _nonnegative_map_accuracy(x, labels, targets):
    """Accuracy of the least-squares map V = W x with W >= 0 (what a resistor network's outputs
    are at best) fit to the class targets, read by argmax (several outputs) or nearest level."""
    w = np.stack([scipy.optimize.nnls(x, targets[labels, o])[0] for o in range(targets.shape[1])])
    v = x @ w.T
    predicted = v.argmax(1) if targets.shape[1] > 1 else np.argmin(np.abs(v - targets.T), 1)
    return np.mean(predicted == labels)


def test_a_bias_input_and_ordered_levels_are_what_iris_needs_from_a_resistor_network():
    features, labels = jn.load_iris()
    x = (features - features.min(0)) / (features.max(0) - features.min(0))
    with_bias = np.concatenate([x, np.ones((150, 1))], 1)
    one_hot, levels = np.where(np.eye(3, dtype=bool), 0.6, 0.2), np.array(jn.IRIS_LEVELS)[:, None]
    assert _nonnegative_map_accuracy(x, labels, one_hot) < 0.7          # the old encoding: two thirds
    assert _nonnegative_map_accuracy(x, labels, levels) < 0.9
    assert _nonnegative_map_accuracy(with_bias, labels, levels) > 0.95  # the lab's encoding


def test_bias_nodes_are_inputs_with_constant_columns(key):
    net = jn.random_graph(key, 10, 16)
    plain = jn.iris_task(key, net, n_train=30)
    biased = jn.iris_task(key, net, n_train=30, bias=(1.0, 0.5))
    assert biased.n_bias == 2 and biased.inputs.shape == (6,) and biased.x_train.shape == (30, 6)
    np.testing.assert_array_equal(biased.x_train[:, 4:], np.broadcast_to([1.0, 0.5], (30, 2)))
    np.testing.assert_array_equal(biased.x_test[:, :4], plain.x_test)
    assert plain.n_bias == 0 and plain.x_train.shape == (30, 4)
    task = jn.Task([0], [1], [2], [[0.3]], [[0.1]], bias_nodes=[3], bias_voltages=[1.0])
    np.testing.assert_array_equal(task.inputs, [0, 3])
    np.testing.assert_array_equal(task.fixed_nodes, [0, 3, 2])
    with pytest.raises(ValueError, match="one length"):
        jn.Task([0], [1], [2], [[0.3]], [[0.1]], bias_nodes=[3, 4], bias_voltages=[1.0])
    with pytest.raises(ValueError, match=r"shape \(examples, 1\) for 1 inputs; got \(1, 2\)"):
        jn.Task([0], [1], [2], [[0.3, 0.2]], [[0.1]], bias_nodes=[3], bias_voltages=[1.0])


def test_readouts_against_numpy(key):
    rng = np.random.default_rng(0)
    voltages = rng.uniform(0, 1, (50, 1))
    levels = np.array([[0.2], [0.4], [0.6]])
    y = levels[rng.integers(0, 3, 50)]
    task = jn.Task([0], [1], [2], rng.uniform(size=(50, 1)), y, readout="nearest")
    np.testing.assert_allclose(task.class_targets, levels, rtol=1e-6)  # the distinct targets, in order
    nearest = np.argmin(np.abs(voltages - levels.T), 1)
    truth = np.argmin(np.abs(y - levels.T), 1)
    assert float(task.accuracy(jnp.asarray(voltages), task.y_train)) == pytest.approx(np.mean(nearest == truth))
    one_hot = np.where(np.eye(3, dtype=bool), 0.6, 0.2)[truth]
    out3 = rng.uniform(0, 1, (50, 3))
    argmax = jn.Task([0], [1, 3, 4], [2], rng.uniform(size=(50, 1)), one_hot, classification=True)
    assert argmax.readout == "argmax" and argmax.classification
    assert float(argmax.accuracy(jnp.asarray(out3), argmax.y_train)) == pytest.approx(np.mean(out3.argmax(1) == truth))
    with pytest.raises(ValueError, match="one output per class"):
        jn.Task([0], [1], [2], [[0.3]], [[0.2]], readout="argmax")
    with pytest.raises(ValueError, match="readout must be"):
        jn.Task([0], [1], [2], [[0.3]], [[0.2]], readout="closest")
    net = jn.lab_network()
    with pytest.raises(ValueError, match="three different voltages"):
        jn.iris_task(jax.random.key(0), net, encoding="levels", levels=(0.2, 0.2, 0.6))
    with pytest.raises(ValueError, match="one per bias node"):
        jn.iris_task(jax.random.key(0), net, encoding="levels", bias=((1.0,),))


def test_lab_network_is_the_named_generator_and_seed():
    first = next(s for s in range(100)
                 if nx.is_connected(g := nx.gnm_random_graph(10, 16, seed=s)) and min(d for _, d in g.degree) >= 2)
    assert first == 5
    assert tuple(nx.gnm_random_graph(10, 16, seed=5).edges) == jn.LAB_EDGES
    net = jn.lab_network()
    assert (net.n_nodes, net.n_edges) == (10, 16)
    degree = np.bincount(np.concatenate([net.senders, net.receivers]), minlength=10)
    hidden = set(range(10)) - {n for nodes in jn.LAB_TERMINALS.values() for n in nodes}
    assert hidden == set(np.argsort(-degree, kind="stable")[:3].tolist())


LAB_IRIS = """
[sweep]
steps = 60
log_every = 30
networks = 2
batch_size = 1
chunk_size = 8

[network]
kind = "lab"

[task]
kind = "iris"
n_train = 30
encoding = "levels"
readout = "nearest"
bias = 1.0

[[rule]]
kind = "discrete"
eta = 0.5
k_min = 0.1
k_max = 12.8
spacing = "resistance"
p = [1.0, 0.5]
"""


def test_lab_iris_sweep_uses_the_documented_wiring(tmp_path):
    table = jn.sweep(LAB_IRIS, str(tmp_path / "lab"), quiet=True)
    assert set(table.readout) == {"nearest"} and set(table.encoding) == {"levels"}
    final = table[table.step == table.steps]
    assert len(final) == 4 and final.test_accuracy.between(0, 1).all()
    run = jn.rebuild_run(str(tmp_path / "lab"), table.run.iloc[0])
    t = jn.LAB_TERMINALS
    np.testing.assert_array_equal(run.task.inputs, t["features"] + t["bias"])
    np.testing.assert_array_equal(run.task.outputs, t["output"])
    assert run.task.n_bias == 1 and run.task.readout == "nearest"


@pytest.mark.parametrize("overrides, match", [
    ({"task.readout": "argmax"}, "set task.readout = 'nearest'"),
    ({"task.encoding": "one_hot", "task.readout": "argmax"}, "wires Iris with one output"),
    ({"task.bias": "yes"}, "'none' or a finite number of volts"),
])
def test_iris_config_errors(overrides, match):
    with pytest.raises(jn.ConfigError, match=match):
        jn.load_config(LAB_IRIS, overrides)


def test_iris_on_a_network_too_small_for_its_terminals_is_a_config_error():
    """Named when the config is read (before a directory is made), with what to change."""
    small = {"network": {"kind": "random", "n_nodes": 6, "n_edges": 10},
             "task": {"kind": "iris", "encoding": "levels", "bias": 1.0},
             "rule": {"kind": "coupled_learning", "alpha": 1.0, "eta": 0.1}}
    with pytest.raises(jn.ConfigError, match="iris needs 7 terminals .* 6 nodes: raise network.n_nodes .* drop task.bias"):
        jn.load_config(small)
    assert jn.load_config(small, {"network.n_nodes": 7}).points()
