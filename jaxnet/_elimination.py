"""Gaussian elimination of a resistor network that never subtracts: accurate in any precision.

The Kirchhoff system `A x = b` of a resistor network is a diagonally dominant M-matrix. Written
by its off-diagonal conductances `G_ij >= 0` (summed over parallel edges between free nodes)
and its leaks `s_i >= 0` (each free node's conductance to the held nodes), every quantity of
Gaussian elimination is a sum of non-negative terms:

- the pivot of node `j` is `p_j = s_j + sum_i G_ij` (never `A_jj - sum l^2`, a difference);
- eliminating `j` adds `G_ij G_jk / p_j` to `G_ik` and `G_ij s_j / p_j` to `s_i`.

This is the trick of Grassmann, Taksar and Heyman (1985) for Markov chains, for which Ye
(2008) and Dopico and Koev proved that the factors are computed to high relative accuracy
whatever the matrix's condition number. The triangular factors' inverses are non-negative, so
a solve has componentwise error `O(n eps) (A^-1 |b|)_i`: in voltages, `O(n eps)` times the
largest held voltage, however many decades the conductances span. Cholesky's pivots, by
contrast, are differences that cancel where a part of the network hangs on edges many decades
weaker than its own, and float32 Cholesky is then wrong in the third digit or worse.

It costs `n` sequential rank-1 updates, so `jn.Dense` takes it only where Cholesky's own
checks fail (see `_algorithms.dense_solve`).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Float

from ._network import Network


def leaks(net: Network, k: Float[Array, " edges"], free: Float[Array, " nodes"]) -> Float[Array, " nodes"]:
    """Each free node's conductance to the held nodes (siemens), and 1 at a held node (its row of
    `A` is the identity's): the row sums of `A` at free nodes, summed without cancellation."""
    s, r = net.senders, net.receivers
    to_held = jnp.zeros(net.n_nodes, k.dtype).at[s].add(k * (1 - free[r])).at[r].add(k * (1 - free[s]))
    return free * to_held + (1 - free)


def eliminate(
    matrix: Float[Array, "nodes nodes"], leak: Float[Array, " nodes"]
) -> tuple[Float[Array, "nodes nodes"], Float[Array, " nodes"], Bool[Array, ""]]:
    """Factor `A = L D L^T` by subtraction-free elimination in node order.

    **Arguments:** `matrix`, the system matrix `A` (its off-diagonal entries `-G_ij <= 0` are
    used, its diagonal is not); `leak`, its row sums from `leaks`.

    **Returns:** `(rows, pivots, singular)`: `rows[j]` holds `G_ij` of the Schur complement at
    the step that eliminates `j` (zero at nodes eliminated before), `pivots[j]` is `p_j`, and
    `singular` is True where a pivot is zero (a free node with no path of conductance to a
    held node: floating) or not finite.
    """
    n = matrix.shape[0]
    node = jnp.arange(n)
    off_diagonal = node[:, None] != node[None, :]

    def step(j, carry):
        g, s, rows, pivots = carry
        column = g[:, j]
        pivot = s[j] + jnp.sum(column)
        safe = jnp.where(pivot > 0, pivot, 1)
        keep = (node != j)[:, None] & (node != j)[None, :] & off_diagonal
        g = jnp.where(keep, g + column[:, None] * (column / safe)[None, :], 0)
        s = s + column * (s[j] / safe)
        return g, s, rows.at[j].set(column), pivots.at[j].set(pivot)

    g0 = jnp.where(off_diagonal, -matrix, 0)
    init = (g0, leak, jnp.zeros_like(matrix), jnp.zeros(n, matrix.dtype))
    _, _, rows, pivots = lax.fori_loop(0, n, step, init)
    singular = ~jnp.all(pivots > 0) | ~jnp.all(jnp.isfinite(pivots))
    return rows, pivots, singular


def eliminated_solve(
    factors: tuple[Float[Array, "nodes nodes"], Float[Array, " nodes"], Bool[Array, ""]],
    b: Float[Array, "nodes cols"],
) -> Float[Array, "nodes cols"]:
    """Solve `A x = b` for every column of `b` with the factors of `eliminate`."""
    rows, pivots, _ = factors
    n = pivots.shape[0]
    safe = jnp.where(pivots > 0, pivots, 1)

    def forward(j, y):
        return y + rows[j][:, None] * (y[j] / safe[j])[None, :]

    y = lax.fori_loop(0, n, forward, b)

    def backward(i, x):
        j = n - 1 - i
        return x.at[j].set((y[j] + rows[j] @ x) / safe[j])

    return lax.fori_loop(0, n, backward, jnp.zeros_like(b))
