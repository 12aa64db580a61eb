"""Every Python-time check of user input, in one place.

Each check raises `ValueError` naming the thing that is wrong and how to fix it, and runs only
on concrete values (`is_concrete`); under `jit`/`vmap` the in-graph checks
(`equinox.error_if`) of the solver and of `train` take over.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

if TYPE_CHECKING:
    from ._network import Network


def is_concrete(*xs) -> bool:
    """True when none of `xs` is a JAX tracer, i.e. Python can look at their values."""
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def plain_int(value):
    """`value` as a Python `int` if it is an integer of any kind (NumPy's included, not `bool`),
    else unchanged (so the field's own check refuses it): the converter of static int fields,
    which must hash and compare as Python ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    return value


def connected_components(edges: np.ndarray, n_nodes: int) -> np.ndarray:
    """Label each node with its connected component.

    **Arguments:** `edges` int `(E, 2)`; `n_nodes`.

    **Returns:** int `(n_nodes,)` component labels `0..C-1`.
    """
    edges = np.asarray(edges).reshape(-1, 2)
    adjacency = scipy.sparse.coo_matrix(
        (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n_nodes, n_nodes)
    )
    return scipy.sparse.csgraph.connected_components(adjacency, directed=False)[1]


class Interval(NamedTuple):
    """A range of real values; `low_closed`, `high_closed` say whether the ends belong to it."""

    low: float
    high: float
    low_closed: bool = False
    high_closed: bool = False

    def contains(self, v):
        """Elementwise: whether `v` lies in the range (NaN does not; NumPy or traced JAX arrays)."""
        above = v >= self.low if self.low_closed else v > self.low
        below = True if math.isinf(self.high) else (v <= self.high if self.high_closed else v < self.high)
        return above & below

    def __str__(self):
        return f"{'[' if self.low_closed else '('}{self.low:g}, {self.high:g}{']' if self.high_closed else ')'}"

    def says(self) -> str:
        """The range as a requirement: "must be > 0", "must lie in [0, 1]"."""
        if math.isinf(self.high):
            return f"must be {'>=' if self.low_closed else '>'} {self.low:g}"
        return f"must lie in {self}"


#: Constraints a hyperparameter may declare (`Rule.constraints`), each declared once: the eager
#: check, the traced check and the sweep config's validation all read these ranges.
CONSTRAINTS = {
    "positive": Interval(0.0, math.inf),
    "non_negative": Interval(0.0, math.inf, low_closed=True),
    "probability": Interval(0.0, 1.0, low_closed=True, high_closed=True),
    "fraction": Interval(0.0, 1.0, low_closed=True),
}


def check_constraint(name: str, value, kind: str) -> None:
    """Raise `ValueError` unless `value` meets the constraint `kind` (skipped for traced values)."""
    if is_concrete(value) and not np.all(CONSTRAINTS[kind].contains(np.asarray(value))):
        raise ValueError(f"{name} {CONSTRAINTS[kind].says()}; got {value}.")


def violates(value, kind: str):
    """Traced: True when `value` breaks the constraint `kind` (what `check_constraint` tests)."""
    return ~jnp.all(CONSTRAINTS[kind].contains(jnp.asarray(value)))


def check_bounds(k_min, k_max) -> None:
    """Raise `ValueError` unless k_min < k_max (skipped for traced values)."""
    if is_concrete(k_min, k_max) and not np.all(np.asarray(k_min) < np.asarray(k_max)):
        raise ValueError(f"k_min must be < k_max; got k_min={k_min}, k_max={k_max}.")


def check_conductances(net: "Network", k) -> None:
    """Python-time check of a concrete conductance vector: shape, finite, non-negative."""
    k = np.asarray(k)
    if k.shape[-1:] != (net.n_edges,):
        raise ValueError(
            f"conductances must have shape (..., {net.n_edges}) (one per edge); got {k.shape}."
        )
    bad = ~np.isfinite(k)
    if bad.any():
        raise ValueError(f"conductance of edge {int(np.argwhere(bad)[0, -1])} is not finite.")
    if (k < 0).any():
        e = int(np.argwhere(k < 0)[0, -1])
        raise ValueError(f"conductance of edge {e} is negative ({k.reshape(-1, k.shape[-1])[:, e].min()}).")


def check_fixed_nodes(net: "Network", fixed_nodes, name: str = "fixed_nodes") -> None:
    """Python-time check of a concrete fixed-node list: non-empty, in range, distinct."""
    f = np.asarray(fixed_nodes)
    if f.ndim != 1 or f.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D int array; got shape {f.shape}. At least one node "
            "must be held at a given voltage (e.g. ground), or voltages are undetermined."
        )
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"{name} must hold integer node ids; got dtype {f.dtype}.")
    out = (f < 0) | (f >= net.n_nodes)
    if out.any():
        raise ValueError(f"{name} holds node {int(f[out][0])}, out of range for {net.n_nodes} nodes.")
    if len(np.unique(f)) != len(f):
        raise ValueError(f"{name} lists a node twice: {f.tolist()}.")


def check_no_floating(net: "Network", k, fixed_nodes) -> None:
    """Python-time check that every node has a path of positive conductance to a fixed node."""
    k = np.asarray(k).reshape(-1, net.n_edges)
    edges = np.stack([np.asarray(net.senders), np.asarray(net.receivers)], axis=1)
    anchor = np.asarray(fixed_nodes)
    for ki in k:
        labels = connected_components(edges[ki > 0], net.n_nodes)
        floating = ~np.isin(labels, labels[anchor])
        if floating.any():
            raise ValueError(
                f"node {int(np.flatnonzero(floating)[0])} is floating: no path of positive "
                f"conductance joins it to a fixed node ({int(floating.sum())} such node{'s' * (int(floating.sum()) != 1)})."
            )
