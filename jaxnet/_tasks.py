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
    - `classification`: if True, the predicted class is the output with the highest voltage
      and accuracy is reported against `argmax(y)`.

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
    classification: bool = eqx.field(static=True, default=False)

    def __init__(self, inputs, outputs, ground, x_train, y_train, x_test=None, y_test=None, classification=False):
        self.inputs = jnp.asarray(inputs, jnp.int32).reshape(-1)
        self.outputs = jnp.asarray(outputs, jnp.int32).reshape(-1)
        self.ground = jnp.asarray(ground, jnp.int32).reshape(-1)
        self.x_train = jnp.asarray(x_train, float)
        self.y_train = jnp.asarray(y_train, float)
        self.x_test = None if x_test is None else jnp.asarray(x_test, float)
        self.y_test = None if y_test is None else jnp.asarray(y_test, float)
        self.classification = bool(classification)

    def __check_init__(self):
        n_in, n_out = self.inputs.shape[0], self.outputs.shape[0]
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
                raise ValueError(f"x_{name} must have shape (examples, {n_in}) for {n_in} inputs; got {x.shape}.")
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


def iris_task(
    key: PRNGKeyArray, net: Network, *, n_train: int = 100, high: float = 0.6, low: float = 0.2
) -> Task:
    """Iris classification: 4 inputs (features scaled to [0, 1] V), 3 outputs (one per class).

    Each feature is min-max scaled over the table; the target is `high` volts at the right
    class's output and `low` at the others. Rows are shuffled by the key and split into
    `n_train` training and `150 - n_train` test examples. One ground node.

    **Returns:** a classification `Task`.
    """
    if not 0 < n_train < 150:
        raise ValueError(f"n_train must be between 1 and 149; got {n_train}.")
    k_nodes, k_split = jax.random.split(key)
    features, labels = load_iris()
    x = (features - features.min(0)) / (features.max(0) - features.min(0))
    y = np.where(np.arange(3)[None, :] == labels[:, None], high, low)
    order = jax.random.permutation(k_split, 150)  # jnp indexing: vmappable over keys
    x, y = jnp.asarray(x)[order], jnp.asarray(y)[order]
    inputs, outputs, ground = random_terminals(k_nodes, net, 4, 3, 1)
    return Task(inputs, outputs, ground, x[:n_train], y[:n_train], x[n_train:], y[n_train:], classification=True)


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
