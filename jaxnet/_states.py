"""What an experimenter measures on a solved network: drops, currents, power."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from ._network import Network


def edge_drops(net: Network, voltages: Float[ArrayLike, "*examples nodes"]) -> Float[Array, "*examples edges"]:
    """Voltage drop across each edge, `V[sender] - V[receiver]` (volts).

    **Arguments:** `net`; `voltages` `(..., N)`. **Returns:** `(..., E)`.
    """
    v = jnp.asarray(voltages)
    return v[..., net.senders] - v[..., net.receivers]


def edge_currents(
    net: Network, conductances: Float[ArrayLike, " edges"], voltages: Float[ArrayLike, "*examples nodes"]
) -> Float[Array, "*examples edges"]:
    """Current through each edge from sender to receiver, `k_e ΔV_e` (amperes).

    **Arguments:** `net`; `conductances` `(E,)`; `voltages` `(..., N)`. **Returns:** `(..., E)`.
    """
    return jnp.asarray(conductances) * edge_drops(net, voltages)


def power(
    net: Network, conductances: Float[ArrayLike, " edges"], voltages: Float[ArrayLike, "*examples nodes"]
) -> Float[Array, "*examples"]:
    """Total dissipated power `sum_e k_e ΔV_e²` (watts).

    **Arguments:** `net`; `conductances` `(E,)`; `voltages` `(..., N)`. **Returns:** `(...)`.
    """
    return jnp.sum(jnp.asarray(conductances) * edge_drops(net, voltages) ** 2, axis=-1)


def source_currents(
    net: Network,
    conductances: Float[ArrayLike, " edges"],
    voltages: Float[ArrayLike, "*examples nodes"],
    fixed_nodes: Int[ArrayLike, " fixed"],
) -> Float[Array, "*examples fixed"]:
    """Current each voltage source injects into the network at its fixed node (amperes).

    Positive means current flows from the source into the network. At a solved state these
    sum to zero over the fixed nodes (charge conservation), and the current at every free
    node is zero (Kirchhoff's current law).

    **Arguments:** `net`; `conductances` `(E,)`; `voltages` `(..., N)`; `fixed_nodes` `(F,)`.
    **Returns:** `(..., F)`.
    """
    return node_currents(net, conductances, voltages)[..., jnp.asarray(fixed_nodes)]


def node_currents(
    net: Network, conductances: Float[ArrayLike, " edges"], voltages: Float[ArrayLike, "*examples nodes"]
) -> Float[Array, "*examples nodes"]:
    """Net current leaving each node through its edges, `(L V)_i` (amperes).

    Zero at every free node of a solved state (Kirchhoff's current law); at a fixed node it is
    the current its source injects. **Returns:** `(..., N)`.
    """
    current = edge_currents(net, conductances, voltages)
    out = jnp.zeros(current.shape[:-1] + (net.n_nodes,), current.dtype)
    return out.at[..., net.senders].add(current).at[..., net.receivers].add(-current)
