"""The built-in network, task and rule kinds of sweep configs, registered through the same calls
a user's own kinds are (`register_network`, `register_task`, `register_rule`)."""

from __future__ import annotations

import math

import optax

from .. import rules
from .._checks import Interval
from .._generators import LAB_TERMINALS, disordered_network, lab_network, random_graph, square_lattice
from .._generators import triangular_lattice
from .._network import Network
from .._tasks import allostery_task, iris_task, regression_task
from ._keys import REQUIRED, Key, boolean, choice, constrained, integer, number
from ._registry import register_network, register_rule, register_task


def _graph(net) -> Network:
    """The network without its node positions (not needed to train)."""
    return Network(net.senders, net.receivers, net.n_nodes)


def _iris(point, key, net):
    bias = () if point["bias"] == "none" else (float(point["bias"]),)
    terminals = None
    if point["network"] == "lab":
        t = LAB_TERMINALS
        terminals = (t["features"] + (t["bias"] if bias else ()), t["output"], t["ground"])
    readout = None if point["readout"] == "auto" else point["readout"]  # iris_task's default for the encoding
    return iris_task(key, net, n_train=point["n_train"], encoding=point["encoding"], readout=readout,
                     bias=bias, terminals=terminals)


def _iris_check(point) -> str | None:
    if not point["n_train"] < 150:
        return f"task.n_train is {point['n_train']}; iris has 150 rows: allowed 1 to 149."
    if point["encoding"] == "levels" and point["readout"] == "argmax":
        return ("task.readout = 'argmax' needs one output per class; task.encoding = 'levels' has one output: set "
                "task.readout = 'nearest'.")
    if point["network"] == "lab" and point["encoding"] != "levels":
        return ("network.kind = 'lab' wires Iris with one output (jn.LAB_TERMINALS): set task.encoding = 'levels' "
                "(its readout then defaults to nearest).")
    nodes = point.get("n_nodes") or (point["rows"] * point["cols"] if point.get("rows") else None)
    terminals = 4 + (point["bias"] != "none") + (3 if point["encoding"] == "one_hot" else 1) + 1
    if point["network"] != "lab" and nodes is not None and nodes < terminals:
        return (f"iris needs {terminals} terminals (4 feature inputs{', a bias input' * (point['bias'] != 'none')}, "
                f"{3 if point['encoding'] == 'one_hot' else 1} output(s), ground) but the network has {nodes} nodes: "
                f"raise network.n_nodes (or rows, cols){', or drop task.bias' * (point['bias'] != 'none')}.")
    return None


def _bias(v) -> str | None:
    return None if v == "none" or (number()(v) is None) else "'none' or a finite number of volts"


def _gradient_descent(point):
    """Gradient descent, its learning rate traced through `optax.inject_hyperparams`."""
    optimizer = optax.inject_hyperparams({"sgd": optax.sgd, "adam": optax.adam}[point["optimizer"]])
    return rules.gradient_descent(optimizer(learning_rate=point["learning_rate"]), point["k_min"], point["k_max"])


N_NODES = Key(64, integer(4), "nodes")
ROWS, COLS = Key(8, integer(2), "lattice rows"), Key(8, integer(2), "lattice columns")
N_TRAIN = "training examples"
BOUNDS_DOC = {"k_min": "lowest conductance", "k_max": "highest conductance"}

register_network("disordered",
                 lambda point, key: _graph(disordered_network(key, point["n_nodes"], point["coordination"])),
                 {"n_nodes": N_NODES,
                  "coordination": Key(4.0, number(Interval(2.0, math.inf, low_closed=True)), "mean edges per node")})
register_network("square", lambda point, key: _graph(square_lattice(point["rows"], point["cols"])),
                 {"rows": ROWS, "cols": COLS})
register_network("triangular", lambda point, key: _graph(triangular_lattice(point["rows"], point["cols"])),
                 {"rows": ROWS, "cols": COLS})
register_network("random", lambda point, key: _graph(random_graph(key, point["n_nodes"], point["n_edges"])),
                 {"n_nodes": N_NODES, "n_edges": Key(128, integer(1), "edges of a random graph")})
register_network("lab", lambda point, key: lab_network(), {})

register_task("regression", lambda point, key, net: regression_task(
    key, net, n_train=point["n_train"], n_test=point["n_test"], random_matrix=point["random_matrix"]),
    {"n_train": Key(20, integer(1), N_TRAIN), "n_test": Key(20, integer(0), "test examples"),
     "random_matrix": Key(False, boolean, "draw y = C x's matrix per network")})
register_task("allostery", lambda point, key, net: allostery_task(key, net, n_outputs=point["n_outputs"]),
              {"n_outputs": Key(2, integer(1), "output nodes")})
register_task("iris", _iris, {
    "n_train": Key(100, integer(1), N_TRAIN),
    "encoding": Key("one_hot", choice("one_hot", "levels"),
                    "Iris targets: one output per class (one_hot) or one output at ordered class levels"),
    "readout": Key("auto", choice("auto", "argmax", "nearest"),
                   "how outputs are read as a class: highest output, or nearest class target ('auto': argmax for "
                   "one_hot, nearest for levels, as jn.iris_task)"),
    "bias": Key("none", _bias, "voltage of a bias (reference) input node, or 'none'")}, check=_iris_check)

register_rule("coupled_learning", rules.CoupledLearning,
              docs={"alpha": "learning rate", "eta": "nudge amplitude", **BOUNDS_DOC})
register_rule("discrete", rules.Discrete, defaults={"n_states": 128, "k_min": 0.1, "k_max": 2.0, "spacing": "linear"},
              docs={"eta": "nudge amplitude", "n_states": "conductance levels", **BOUNDS_DOC,
                    "spacing": "level spacing: even in k, in log k, or in resistance 1/k (potentiometer taps)",
                    "threshold": "dead zone of the comparator", "offset_std": "per-edge comparator offset",
                    "noise_std": "per-update comparator noise"})
register_rule("gradient_descent", rules.GradientDescent, build=_gradient_descent, docs=BOUNDS_DOC, keys={
    "optimizer": Key("sgd", choice("sgd", "adam"), "optax optimizer"),
    "learning_rate": Key(REQUIRED, constrained("positive"), "optimizer learning rate", static=False)})
register_rule("equilibrium_propagation", rules.EquilibriumPropagation,
              docs={"alpha": "learning rate", "beta": "the nudge (current per volt of error)",
                    "centered": "nudge by +beta and -beta", **BOUNDS_DOC})
