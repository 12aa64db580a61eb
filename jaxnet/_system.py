"""The Kirchhoff system of a network with some nodes held: `A(k) = M L(k) M + (I - M)`.

`L(k) = Bᵀ diag(k) B` is the weighted graph Laplacian (`B` the incidence matrix, whose products
are `_network.edge_drops` and `_network.outflow`) and `M = diag(free)` masks out the fixed
nodes, whose rows become identity. Here are its products with node-voltage columns `(N, C)`
without forming it (what CG needs), the dense matrix (what Cholesky needs) and its diagonal
(the Jacobi preconditioner); `_solver` solves the system.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._network import Network, edge_drops, edge_sums, incident_sum, outflow


def free_mask(net: Network, fixed_nodes: Int[Array, " fixed"], dtype) -> Float[Array, " nodes"]:
    """1.0 at free nodes, 0.0 at fixed nodes."""
    return jnp.ones(net.n_nodes, dtype).at[fixed_nodes].set(0.0)


def laplacian_apply(
    net: Network, k: Float[Array, " edges"], x: Float[Array, "nodes cols"]
) -> Float[Array, "nodes cols"]:
    """`L(k) @ x` without forming `L`: net current out of each node for each column of `x`
    (in `x`'s dtype)."""
    current = k[:, None] * edge_drops(net, x, axis=0)
    return outflow(net, current, axis=0, dtype=x.dtype)


def system_apply(
    net: Network, k: Float[Array, " edges"], free: Float[Array, " nodes"], x: Float[Array, "nodes cols"]
) -> Float[Array, "nodes cols"]:
    """`A(k) @ x` with `A = M L M + (I - M)`, matrix-free."""
    f = free[:, None]
    return f * laplacian_apply(net, k, f * x) + (1 - f) * x


def abs_system_apply(
    net: Network, k: Float[Array, " edges"], free: Float[Array, " nodes"], x: Float[Array, "nodes cols"]
) -> Float[Array, "nodes cols"]:
    """`|A(k)| @ |x|`, matrix-free: at a free node `d_i |x_i| + sum_j k_ij |x_j|` over free
    neighbours `j` (the currents through the node's edges, bounded), `|x_i|` at a fixed node."""
    f = free[:, None]
    y = f * jnp.abs(x)
    through = k[:, None] * edge_sums(net, y, axis=0)
    return f * incident_sum(net, through, axis=0, dtype=x.dtype) + (1 - f) * jnp.abs(x)


def system_matrix(
    net: Network, k: Float[Array, " edges"], free: Float[Array, " nodes"]
) -> Float[Array, "nodes nodes"]:
    """Dense `A(k)` (N x N)."""
    s, r = net.senders, net.receivers
    lap = (
        jnp.zeros((net.n_nodes, net.n_nodes), k.dtype)
        .at[s, s].add(k)
        .at[r, r].add(k)
        .at[s, r].add(-k)
        .at[r, s].add(-k)
    )
    return free[:, None] * lap * free[None, :] + jnp.diag(1 - free)


def system_diagonal(
    net: Network, k: Float[Array, " edges"], free: Float[Array, " nodes"]
) -> Float[Array, " nodes"]:
    """Diagonal of `A(k)`: weighted degree at free nodes, 1 at fixed nodes."""
    return free * incident_sum(net, k) + (1 - free)
