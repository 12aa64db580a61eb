"""`Task`: terminals and examples; the shipped tasks (regression, allostery, Iris)."""

from __future__ import annotations

import importlib.resources

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from ._generators import random_terminals
from ._checks import is_concrete
from ._network import Network

REGRESSION_MATRIX = ((0.2, 0.3), (0.1, 0.5))
"""Default target matrix of the regression task, `y = C x` (from the coupled-learning papers)."""


class Task(eqx.Module):
    """A supervised task on a network: which nodes are inputs, outputs and ground, and examples.

    In the free state the inputs are held at an example's `x` (volts), ground nodes at 0 V and
    the outputs are free; training drives the output voltages towards `y`.

    **Fields:**

    - `inputs`, `outputs`, `ground`: int arrays of distinct node ids (no node in two of them).
    - `x_train` `(D, n_in)`, `y_train` `(D, n_out)`: training examples (volts).
    - `x_test`, `y_test`: optional test examples, both or neither.
    - `readout`: how a classification task's outputs are read as a class, or None (not a
      classification task):
      - `"argmax"`: the class is the output with the highest voltage (one output per class),
        scored against `argmax(y)`;
      - `"nearest"`: the class whose target voltages are nearest (Euclidean) to the outputs,
        e.g. one output with ordered class levels, scored against the class nearest `y`.
    - `class_targets` `(classes, outputs)`: each class's target voltages (volts), for
      `"nearest"`; None otherwise.
    - `n_bias`: how many of the inputs are bias (reference) nodes: the last `n_bias` entries of
      `inputs`, whose example columns hold their constant voltages.

    **Constructor** (besides the fields): `classification=True` means `readout="argmax"`;
    `readout="nearest"` without `class_targets` takes the distinct rows of the targets.
    `bias_nodes` `(B,)` and `bias_voltages` `(B,)` (volts) add reference inputs held at
    constant voltages in every example: they are appended to `inputs`, and constant columns to
    `x_train` and `x_test`. A network of resistors maps inputs to outputs as `V = W x` with
    `W >= 0` and no offset; a bias node gives it the offset that classification usually needs.

    Shapes and overlaps are checked on construction (`ValueError`); node ids against a network
    by `check(net)`, which `train` calls.
    """

    inputs: Int[Array, " inputs"]
    outputs: Int[Array, " outputs"]
    ground: Int[Array, " ground"]
    x_train: Float[Array, "train inputs"]
    y_train: Float[Array, "train outputs"]
    x_test: Float[Array, "test inputs"] | None = None
    y_test: Float[Array, "test outputs"] | None = None
    class_targets: Float[Array, "classes outputs"] | None = None
    readout: str | None = eqx.field(static=True, default=None)
    n_bias: int = eqx.field(static=True, default=0)

    def __init__(self, inputs, outputs, ground, x_train, y_train, x_test=None, y_test=None, classification=False, *,
                 readout=None, class_targets=None, bias_nodes=(), bias_voltages=()):
        bias_nodes = jnp.asarray(bias_nodes, jnp.int32).reshape(-1)
        bias_voltages = jnp.asarray(bias_voltages, float).reshape(-1)
        if bias_nodes.shape != bias_voltages.shape:
            raise ValueError(f"bias_nodes and bias_voltages must have one length; got {bias_nodes.shape[0]} "
                             f"and {bias_voltages.shape[0]}.")
        self.inputs = jnp.concatenate([jnp.asarray(inputs, jnp.int32).reshape(-1), bias_nodes])
        self.outputs = jnp.asarray(outputs, jnp.int32).reshape(-1)
        self.ground = jnp.asarray(ground, jnp.int32).reshape(-1)
        self.n_bias = int(bias_nodes.shape[0])

        def with_bias(x):
            x = jnp.asarray(x, float)
            if x.ndim != 2 or not self.n_bias:
                return x  # a wrong shape is reported by __check_init__
            return jnp.concatenate([x, jnp.broadcast_to(bias_voltages.astype(x.dtype), (x.shape[0], self.n_bias))], 1)

        self.x_train = with_bias(x_train)
        self.y_train = jnp.asarray(y_train, float)
        self.x_test = None if x_test is None else with_bias(x_test)
        self.y_test = None if y_test is None else jnp.asarray(y_test, float)
        if readout is None and classification:
            readout = "argmax"
        if readout not in (None, "argmax", "nearest"):
            raise ValueError(f"readout must be 'argmax', 'nearest' or None; got {readout!r}.")
        if readout == "nearest" and class_targets is None:
            targets = [self.y_train] + ([] if self.y_test is None else [self.y_test])
            if not is_concrete(*targets):
                raise ValueError("readout='nearest' under a transformation needs class_targets.")
            class_targets = np.unique(np.concatenate([np.asarray(t) for t in targets]), axis=0)
        self.readout = readout
        self.class_targets = None if class_targets is None else jnp.asarray(class_targets, float)

    @property
    def classification(self) -> bool:
        """Whether the task is read as classes (a `readout` is set)."""
        return self.readout is not None

    def __check_init__(self):
        n_in, n_out = self.inputs.shape[0], self.outputs.shape[0]
        if self.class_targets is not None and (self.class_targets.ndim != 2 or self.class_targets.shape[1] != n_out):
            raise ValueError(f"class_targets must have shape (classes, {n_out}) for {n_out} outputs; "
                             f"got {self.class_targets.shape}.")
        if self.readout == "argmax" and n_out < 2:
            raise ValueError("readout='argmax' needs one output per class (two or more); "
                             "with one output, use readout='nearest' with class levels.")
        if n_out == 0:
            raise ValueError("a task needs at least one output node.")
        if n_in + self.ground.shape[0] == 0:
            raise ValueError("a task needs at least one input or ground node to fix the voltages.")
        for name, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if (x is None) != (y is None):
                raise ValueError(f"give both x_{name} and y_{name}, or neither.")
            if x is None:
                continue
            if x.ndim != 2 or x.shape[1] != n_in:
                got = (x.shape[0], x.shape[1] - self.n_bias) if x.ndim == 2 else x.shape  # as given
                n_data = n_in - self.n_bias
                raise ValueError(f"x_{name} must have shape (examples, {n_data}) for {n_data} inputs; got {got}.")
            if y.ndim != 2 or y.shape[1] != n_out:
                raise ValueError(f"y_{name} must have shape (examples, {n_out}) for {n_out} outputs; got {y.shape}.")
            if x.shape[0] != y.shape[0] or x.shape[0] == 0:
                raise ValueError(f"x_{name} and y_{name} must hold the same, non-zero number of examples; got {x.shape[0]} and {y.shape[0]}.")
            if is_concrete(x, y) and not (np.all(np.isfinite(np.asarray(x))) and np.all(np.isfinite(np.asarray(y)))):
                raise ValueError(f"x_{name} or y_{name} holds a non-finite value (NaN or inf).")
        if is_concrete(self.inputs, self.outputs, self.ground):
            nodes = np.concatenate([self.inputs, self.outputs, self.ground])
            values, counts = np.unique(nodes, return_counts=True)
            if (counts > 1).any():
                raise ValueError(
                    f"node {int(values[counts > 1][0])} is used twice among inputs, outputs and "
                    "ground: each terminal must be a distinct node."
                )

    def predict(self, voltages: Float[Array, "... outputs"]) -> Int[Array, "..."]:
        """The class read from output voltages by the task's `readout` (`argmax`: the index of
        the highest output; `nearest`: the index of the nearest row of `class_targets`)."""
        if self.readout == "argmax":
            return jnp.argmax(voltages, -1)
        if self.readout == "nearest":
            targets = self.class_targets.astype(voltages.dtype)
            return jnp.argmin(jnp.sum((voltages[..., None, :] - targets) ** 2, -1), -1)
        raise ValueError("this task is not a classification task (no readout).")

    def accuracy(self, voltages: Float[Array, "examples outputs"], y: Float[Array, "examples outputs"]) -> Float[Array, ""]:
        """Fraction of examples whose output voltages are read as the class of their target `y`."""
        return jnp.mean(self.predict(voltages) == self.predict(y), -1)

    def check(self, net: Network) -> None:
        """Raise `ValueError` if a terminal is out of range for `net` (concrete values only)."""
        if not is_concrete(self.inputs, self.outputs, self.ground):
            return
        for name, nodes in (("inputs", self.inputs), ("outputs", self.outputs), ("ground", self.ground)):
            bad = (np.asarray(nodes) < 0) | (np.asarray(nodes) >= net.n_nodes)
            if bad.any():
                raise ValueError(f"task {name} holds node {int(np.asarray(nodes)[bad][0])}, out of range for {net.n_nodes} nodes.")

    @property
    def fixed_nodes(self) -> Int[Array, " fixed"]:
        """Inputs followed by ground nodes: the nodes held in the free state."""
        return jnp.concatenate([self.inputs, self.ground])


def regression_task(
    key: PRNGKeyArray,
    net: Network,
    *,
    n_train: int = 20,
    n_test: int = 20,
    matrix: Float[ArrayLike, "outputs inputs"] | None = None,
    random_matrix: bool = False,
) -> Task:
    """Linear regression `y = C x` on 2 inputs and 2 outputs (plus one ground node).

    `C` is `REGRESSION_MATRIX` unless `matrix` is given, or drawn uniform in [0.05, 0.45]
    from the key when `random_matrix`; `x ~ U[0, 1]`. Terminals are picked from the key. The
    data are drawn and `y` computed in float32 whatever JAX's x64 mode, so a key gives the
    same task with x64 on or off.

    **Returns:** a `Task` with `n_train` training and `n_test` test examples.
    """
    k_nodes, k_matrix, k_x = jax.random.split(key, 3)
    if matrix is not None and random_matrix:
        raise ValueError("give either matrix or random_matrix=True, not both.")
    # Data are drawn and computed in float32 whatever JAX's x64 mode, so a key gives the same
    # task with x64 on or off (a float32 sweep resumed in another mode continues the same runs).
    if random_matrix:
        c = jax.random.uniform(k_matrix, (2, 2), jnp.float32, minval=0.05, maxval=0.45)
    else:
        c = jnp.asarray(REGRESSION_MATRIX if matrix is None else matrix, jnp.float32)
    if c.ndim != 2:
        raise ValueError(f"matrix must be 2-D (outputs, inputs); got shape {c.shape}.")
    n_out, n_in = c.shape
    inputs, outputs, ground = random_terminals(k_nodes, net, n_in, n_out, 1)
    x = jax.random.uniform(k_x, (n_train + n_test, n_in), jnp.float32)
    y = x @ c.T
    return Task(inputs, outputs, ground, x[:n_train], y[:n_train], x[n_train:] if n_test else None, y[n_train:] if n_test else None)


def allostery_task(
    key: PRNGKeyArray, net: Network, *, n_outputs: int = 2, ratios: Float[ArrayLike, " outputs"] | None = None
) -> Task:
    """Allostery: one source node at 1 V and one ground node; target voltage ratios at outputs.

    The target at output `o` is `ratios[o] * V_source`; `ratios` default to U[0.1, 0.9] drawn
    from the key. A single example (x = 1 V), so no test set.

    **Returns:** a `Task` with one input, `n_outputs` outputs and one ground node.
    """
    k_nodes, k_ratio = jax.random.split(key)
    if ratios is None:
        ratios = jax.random.uniform(k_ratio, (n_outputs,), jnp.float32, minval=0.1, maxval=0.9)  # x64-proof
    ratios = jnp.asarray(ratios, float).reshape(-1)
    inputs, outputs, ground = random_terminals(k_nodes, net, 1, ratios.shape[0], 1)
    return Task(inputs, outputs, ground, jnp.ones((1, 1)), ratios[None, :])


def load_iris() -> tuple[np.ndarray, np.ndarray]:
    """The 150-row Iris table shipped with jaxnet: features `(150, 4)` in cm, labels `(150,)` 0..2."""
    text = importlib.resources.files("jaxnet").joinpath("data/iris.csv").read_text()
    table = np.loadtxt(text.splitlines(), delimiter=",", skiprows=1)
    return table[:, :4], table[:, 4].astype(int)


IRIS_LEVELS = (0.2, 0.4, 0.6)
"""Default class levels (volts) of Iris's one-output encoding: setosa, versicolor, virginica."""


def iris_task(
    key: PRNGKeyArray,
    net: Network,
    *,
    n_train: int = 100,
    encoding: str = "one_hot",
    readout: str | None = None,
    high: float = 0.6,
    low: float = 0.2,
    levels: Float[ArrayLike, " classes"] = IRIS_LEVELS,
    bias: Float[ArrayLike, " bias"] = (),
    terminals: tuple[ArrayLike, ArrayLike, ArrayLike] | None = None,
) -> Task:
    """Iris classification: 4 inputs (features scaled to [0, 1] V), outputs per the encoding.

    Each feature is min-max scaled over the table. Rows are shuffled by the key and split into
    `n_train` training and `150 - n_train` test examples. One ground node.

    **Arguments:**

    - `encoding`: `"one_hot"`, three outputs, `high` volts at the right class's output and
      `low` at the others; or `"levels"`, one output whose target is the class's level
      (`levels[c]`, volts; the classes are ordered as the table numbers them).
    - `readout`: `"argmax"` or `"nearest"` (see `Task`); default `"argmax"` for one-hot and
      `"nearest"` (the nearest level) for levels.
    - `bias`: voltages of reference inputs (volts), one node each, held in every example. A
      resistor network's outputs are at best `W x` with `W >= 0` and no offset. Fit by least
      squares, such a map classifies two thirds of the flowers one-hot (argmax), 89% at one
      output's levels, and 96% at levels with a 1 V bias input (checked in the tests).
    - `terminals`: `(feature_and_bias_inputs, outputs, ground)` node ids, to fix them (a lab
      network's wiring); default: picked from the key.

    **Returns:** a classification `Task` (inputs: the 4 features, then the bias nodes).
    """
    if not 0 < n_train < 150:
        raise ValueError(f"n_train must be between 1 and 149; got {n_train}.")
    if encoding not in ("one_hot", "levels"):
        raise ValueError(f"encoding must be 'one_hot' or 'levels'; got {encoding!r}.")
    if np.shape(levels) not in ((3,), (3, 1)):
        raise ValueError(f"levels must hold one voltage per class (3); got shape {np.shape(levels)}.")
    if len(set(np.asarray(levels, float).reshape(-1).tolist())) < 3:
        raise ValueError(f"levels must be three different voltages (two classes at one level cannot be told apart); "
                         f"got {tuple(np.asarray(levels, float).reshape(-1).tolist())}.")
    if np.ndim(bias) > 1:
        raise ValueError(f"bias must be a sequence of voltages (one per bias node); got shape {np.shape(bias)}.")
    try:
        bias = np.asarray(bias, float).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"bias must be voltages (a sequence of numbers); got {bias!r}.") from None
    k_nodes, k_split = jax.random.split(key)
    features, labels = load_iris()
    x = (features - features.min(0)) / (features.max(0) - features.min(0))
    if encoding == "one_hot":
        targets = np.where(np.eye(3, dtype=bool), high, low)
    else:
        targets = np.asarray(levels, float).reshape(3, 1)
    y = targets[labels]
    order = jax.random.permutation(k_split, 150)  # jnp indexing: vmappable over keys
    x, y = jnp.asarray(x)[order], jnp.asarray(y)[order]
    if terminals is None:
        terminals = random_terminals(k_nodes, net, 4 + bias.shape[0], targets.shape[1], 1)
    inputs, outputs, ground = (jnp.asarray(t, jnp.int32).reshape(-1) for t in terminals)
    if inputs.shape[0] != 4 + bias.shape[0] or outputs.shape[0] != targets.shape[1]:
        raise ValueError(f"terminals must hold {4 + bias.shape[0]} inputs (4 features, {bias.shape[0]} bias) and "
                         f"{targets.shape[1]} outputs for this encoding; got {inputs.shape[0]} and {outputs.shape[0]}.")
    readout = ("argmax" if encoding == "one_hot" else "nearest") if readout is None else readout
    return Task(inputs[:4], outputs, ground, x[:n_train], y[:n_train], x[n_train:], y[n_train:], readout=readout,
                class_targets=targets, bias_nodes=inputs[4:], bias_voltages=bias)


def xor_task(key: PRNGKeyArray, net: Network, *, high: float = 0.6, low: float = 0.2) -> Task:
    """XOR of two bits: a task no linear network can learn, and a nonlinear one can.

    Each bit `b` drives two input nodes, `b` and `1 - b` volts (complementary encoding), and a
    fifth input is a 1 V rail; one output, one ground node (terminals picked from the key). The
    target is `high` volts when exactly one bit is set, `low` otherwise. The complementary pair
    matters: a network of monotone elements (resistors, diodes, transistors) has outputs that
    never fall when an input rises, and XOR of plain inputs is not monotone. A linear network
    stays linear in the bits whatever the encoding, and its best loss is
    `0.5 ((high - low) / 2)²` (a constant output halfway), 0.02 at the defaults.

    **Returns:** a `Task` with the four examples as its training set (inputs
    `(b1, 1 - b1, b2, 1 - b2, 1)`).
    """
    bits = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    x = np.stack([bits[:, 0], 1 - bits[:, 0], bits[:, 1], 1 - bits[:, 1], np.ones(4)], axis=1)
    y = np.where(bits[:, 0] != bits[:, 1], high, low)[:, None]
    inputs, outputs, ground = random_terminals(key, net, 5, 1, 1)
    return Task(inputs, outputs, ground, x, y)
