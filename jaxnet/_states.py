"""States of a network wired for learning (free, clamped), and what an experimenter measures.

A learning step needs, for one network with conductances `k`:

- the free state: inputs held at the example's `x`, ground at 0, outputs free;
- the clamped state: outputs also held, at `V_O^F + eta (y - V_O^F)`.

Both come from ONE call of the shared solver (`solve_system`), with these columns:

- `R` (N, n_in): the response to 1 V at each input (other inputs and ground at 0). By
  superposition the free state of every example is `V_F = x @ R.T`.
- `G` (N, n_out): the response to a unit current injected at each output (Green's function of
  the free problem). Holding the outputs at `V_O^F + d` changes the state by
  `V_C - V_F = G (G_OO)^-1 d`, solved directly, so float32 keeps its accuracy for tiny nudges.

The transfer matrix `T = R[outputs]` (n_out, n_in) gives the outputs of any input, `V_O = T x`,
so the loss on the training or test set at the current conductances costs no further solve.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from ._network import Network
from ._solver import Method, SolveInfo, Solver, as_solver, free_mask, solve_system, unit_rhs


class Measurement(eqx.Module):
    """What a learning step measured at the conductances it started from.

    - `transfer`: `(n_out, n_in)` output volts per input volt, `V_O = transfer @ x`.
    - `solution`: `(N, n_in + n_out)` the solver's columns `[R | G]` (a CG warm start).
    - `info`: the solver's `SolveInfo` (CG iterations, true residual, status).
    """

    transfer: Float[Array, "outputs inputs"]
    solution: Float[Array, "nodes cols"]
    info: SolveInfo


class Physics(eqx.Module):
    """A network wired to its terminals, with the examples of one learning step.

    **Fields:** `net`; `inputs` `(n_in,)`, `outputs` `(n_out,)`, `ground` `(n_ground,)` node
    ids; `x` `(B, n_in)` input volts; `y` `(B, n_out)` target volts; `method` the solver path
    or a `Solver`; `guess` `(N, n_in + n_out)` optional CG warm start (e.g. the previous step's solution);
    `check`: a failed forward solve raises (True), or only records its failure in
    `Measurement.info.status` for the caller to raise on (False; `train` does, once per call).
    """

    net: Network
    inputs: Int[Array, " inputs"]
    outputs: Int[Array, " outputs"]
    ground: Int[Array, " ground"]
    x: Float[Array, "batch inputs"]
    y: Float[Array, "batch outputs"]
    method: Method | Solver = eqx.field(static=True, default="auto")
    guess: Float[Array, "nodes cols"] | None = None
    check: bool = eqx.field(static=True, default=True)

    def responses(self, k: Float[Array, " edges"]):
        """Solve once: `(R, G, Measurement)` with `R` `(N, n_in)`, `G` `(N, n_out)`."""
        fixed = jnp.concatenate([self.inputs, self.ground])
        free = free_mask(self.net, fixed, k.dtype)
        n_out = self.outputs.shape[0]
        inject = jnp.zeros((self.net.n_nodes, n_out), k.dtype).at[self.outputs, jnp.arange(n_out)].set(1)
        rhs = jnp.concatenate([unit_rhs(self.net, k, free, self.inputs), inject], axis=1)
        solution, info = solve_system(self.net, k, free, rhs, method=self.method, x0=self.guess, check=self.check)
        n_in = self.inputs.shape[0]
        response, green = solution[:, :n_in], solution[:, n_in:]
        return response, green, Measurement(response[self.outputs], solution, info)

    def _nudge(self, k, eta):
        """Responses, Green's functions, and the weights `(G_OO)^-1 eta (y - V_O^F)` (n_out, B)."""
        response, green, meas = self.responses(k)
        nudge = eta * (self.y - self.x @ meas.transfer.T)  # (B, n_out)
        return response, green, jnp.linalg.solve(green[self.outputs], nudge.T), meas

    def free_and_nudge(self, k: Float[Array, " edges"], eta):
        """Free state and clamped-minus-free difference for the step's examples.

        **Returns:** `(V_F, dV, measurement)` with `V_F` and `dV = V_C - V_F` of shape `(B, N)`.
        """
        response, green, weights, meas = self._nudge(k, eta)
        return self.x @ response.T, (green @ weights).T, meas

    def free_and_nudge_drops(self, k: Float[Array, " edges"], eta):
        """Edge drops of the free state and of `V_C - V_F`, each `(B, E)`, and the measurement.

        The same as `edge_drops` of `free_and_nudge`'s states, but the drops are taken on the
        `n_in + n_out` solution columns and the examples superposed after, so the per-edge work
        does not grow with the number of examples.
        """
        response, green, weights, meas = self._nudge(k, eta)
        return self.x @ edge_drops(self.net, response.T), weights.T @ edge_drops(self.net, green.T), meas

    def loss(self, k: Float[Array, " edges"]):
        """Loss on the step's examples, differentiable through the solver; aux: the measurement.

        Where ``"auto"`` would solve by warm-started CG with a dense fallback (small networks),
        the loss drops the warm start: its gradient's adjoint solve has none, and the forward
        and adjoint solves then share one Cholesky factorization (about 2x faster on W64).
        """
        physics = self
        if as_solver(self.method).resolve(self.net.n_nodes, warm=True) == "cg+dense":
            physics = dataclasses.replace(self, guess=None)
        _, _, meas = physics.responses(k)
        return transfer_loss(meas.transfer, self.x, self.y), meas


def transfer_loss(transfer, x, y) -> Float[Array, ""]:
    """`0.5 * mean over examples of sum over outputs of (T x - y)^2`."""
    return 0.5 * jnp.mean(jnp.sum((x @ transfer.T - y) ** 2, axis=-1))


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
