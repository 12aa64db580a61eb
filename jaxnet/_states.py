"""States of a network wired for learning (free, clamped, nudged), and what an experimenter measures.

A learning step needs, for one network with conductances `k`:

- the free state: inputs held at the example's `x`, ground at 0, outputs free;
- the clamped state (coupled learning): outputs also held, at `V_O^F + eta (y - V_O^F)`;
- the nudged state (equilibrium propagation): a current `beta (y - V_O)` injected at the outputs.

On a linear network all come from ONE call of the linear solver, with these columns:

- `R` (N, n_in): the response to 1 V at each input (other inputs and ground at 0). By
  superposition the free state of every example is `V_F = x @ R.T`.
- `G` (N, n_out): the response to a unit current injected at each output (Green's function of
  the free problem). Holding the outputs at `V_O^F + d` changes the state by
  `V_C - V_F = G (G_OO)^-1 d`, solved directly, so float32 keeps its accuracy for tiny nudges.

The transfer matrix `T = R[outputs]` (n_out, n_in) gives the outputs of any input, `V_O = T x`,
so the loss on the training or test set at the current conductances costs no further solve.

A network with nonlinear `Elements` has no superposition: each example's states are solved by
damped Newton (`jn.Newton`), every Newton step a call of its linear solver.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from ._checks import check_conductances, check_no_floating, is_concrete
from ._elements import Elements
from ._lapack import solve as small_solve
from ._network import Network, edge_drops, outflow
from ._nonlinear import boundary_of
from ._results import RESULTS, failed, first_failure
from ._solve import solver_for, unit_rhs
from ._solver import AbstractSolver, SolveInfo, WarmStart
from ._system import free_mask, laplacian_apply
from ._tasks import Task


class Measurement(eqx.Module):
    """What a learning step measured at the conductances it started from.

    - `transfer`: `(n_out, n_in)` output volts per input volt, `V_O = transfer @ x` (None
      with nonlinear elements, which have no transfer matrix).
    - `solver_state`: the solver's state after the step's solve (its warm start for the
      next; None for a cold solve, and with nonlinear elements).
    - `info`: the solver's `SolveInfo` (CG iterations, true residual, status); with nonlinear
      elements the Newton iterations of the step's solves and their worst relative imbalance.
    """

    transfer: Float[Array, "outputs inputs"] | None
    solver_state: WarmStart | None
    info: SolveInfo


class Physics(eqx.Module):
    """A network wired to its terminals, with the examples of one learning step.

    **Fields:** `net`; `inputs` `(n_in,)`, `outputs` `(n_out,)`, `ground` `(n_ground,)` node
    ids; `x` `(B, n_in)` input volts; `y` `(B, n_out)` target volts; `solver` a solver object
    (None: `jn.Auto()`; see `jn.solve`); `solver_state` its warm start for `n_in + n_out`
    columns (`solver.init(net, n_in + n_out, dtype)`, or a `Measurement.solver_state`), None
    for a cold solve.

    Nothing here raises inside `jit`: a failed solve's states are NaN and
    `Measurement.info.result` says why (`train` records it as the run's failure).
    """

    net: Network
    inputs: Int[Array, " inputs"]
    outputs: Int[Array, " outputs"]
    ground: Int[Array, " ground"]
    x: Float[Array, "batch inputs"]
    y: Float[Array, "batch outputs"]
    solver: AbstractSolver | None = eqx.field(static=True, default=None)
    solver_state: WarmStart | None = None

    @property
    def resolved_solver(self) -> AbstractSolver:
        """The solver this network takes (`jn.Newton` with elements; see `jaxnet._solve.solver_for`)."""
        return solver_for(self.net, self.solver)

    def _linear_only(self, name: str) -> None:
        if not self.net.linear:
            raise ValueError(
                f"Physics.{name} solves the linear (resistor) network by superposition, and this network "
                "has nonlinear elements: use coupled_contrast, equilibrium_contrast, free_outputs or loss, "
                "which solve it by Newton.")

    def responses(self, k: Float[Array, " edges"]):
        """Solve once: `(R, G, Measurement)` with `R` `(N, n_in)`, `G` `(N, n_out)`. Linear networks only."""
        self._linear_only("responses")
        fixed = jnp.concatenate([self.inputs, self.ground])
        free = free_mask(self.net, fixed, k.dtype)
        n_out = self.outputs.shape[0]
        inject = jnp.zeros((self.net.n_nodes, n_out), k.dtype).at[self.outputs, jnp.arange(n_out)].set(1)
        rhs = jnp.concatenate([unit_rhs(self.net, k, free, self.inputs), inject], axis=1)
        solution, info, state = self.resolved_solver.solve(self.net, k, free, rhs, self.solver_state)
        n_in = self.inputs.shape[0]
        response, green = solution[:, :n_in], solution[:, n_in:]
        return response, green, Measurement(response[self.outputs], state, info)

    def _nudge(self, k, eta):
        """Responses, Green's functions, and the weights `(G_OO)^-1 eta (y - V_O^F)` (n_out, B)."""
        response, green, meas = self.responses(k)
        nudge = eta * (self.y - self.x @ meas.transfer.T)  # (B, n_out)
        return response, green, small_solve(green[self.outputs], nudge.T), meas

    def free_and_nudge(self, k: Float[Array, " edges"], eta):
        """Free state and clamped-minus-free difference for the step's examples.

        **Returns:** `(V_F, dV, measurement)` with `V_F` and `dV = V_C - V_F` of shape `(B, N)`.
        Linear networks only.
        """
        self._linear_only("free_and_nudge")
        response, green, weights, meas = self._nudge(k, eta)
        return self.x @ response.T, (green @ weights).T, meas

    def free_and_nudge_drops(self, k: Float[Array, " edges"], eta):
        """Edge drops of the free state and of `V_C - V_F`, each `(B, E)`, and the measurement.

        The same as `edge_drops` of `free_and_nudge`'s states, but the drops are taken on the
        `n_in + n_out` solution columns and the examples superposed after, so the per-edge work
        does not grow with the number of examples. Linear networks only.
        """
        self._linear_only("free_and_nudge_drops")
        response, green, weights, meas = self._nudge(k, eta)
        return self.x @ edge_drops(self.net, response.T), weights.T @ edge_drops(self.net, green.T), meas

    def coupled_contrast(self, k: Float[Array, " edges"], eta):
        """Coupled learning's local signal per edge `(E,)`, and the step's measurement.

        `mean over examples of 2 [∂C_e/∂k_e (free) - ∂C_e/∂k_e (clamped)]`, with `C_e` the
        edge's co-content (`Elements.parameter_gradient`), the clamped state's outputs held at
        `V_O^F + eta (y - V_O^F)`. For resistors that is `(ΔV_F)² - (ΔV_C)²`, computed as
        `-(2 ΔV_F + δ) δ` with `δ = ΔV_C - ΔV_F` straight from the solver, so it keeps its
        relative accuracy in float32 at small `eta`. (With nonlinear elements the two states
        are solved apart and subtracted, so in float32 keep `eta` above about 1e-3.)
        """
        if self.net.linear:
            drop_free, drop_delta, meas = self.free_and_nudge_drops(k, eta)
            return -jnp.mean((2 * drop_free + drop_delta) * drop_delta, axis=0), meas
        free, free_info = self._newton_free(k)
        outputs = free[:, self.outputs]
        clamp = jnp.concatenate([self.inputs, self.ground, self.outputs])
        values = jnp.concatenate([self.x, jnp.zeros((self.x.shape[0], self.ground.shape[0]), k.dtype),
                                  outputs + eta * (self.y - outputs)], axis=1)
        clamped, clamped_info = self._newton(self.net, k, clamp, values, free)
        d = 2 * (self._edge_signal(k, free) - self._edge_signal(k, clamped))
        return jnp.mean(d, axis=0), self._newton_measurement(free_info, clamped_info)

    def equilibrium_contrast(self, k: Float[Array, " edges"], beta, centered: bool = False):
        """Equilibrium propagation's local signal per edge `(E,)`, and the step's measurement.

        The nudged state minimizes the co-content plus `beta` times the cost
        `0.5 sum_o (V_o - y_o)²`: it is the free state with a current `beta (y - V_O)` injected
        at each output (`V_O` the nudged outputs themselves). Returns `mean over examples of
        2 [∂C_e/∂k_e (nudged) - ∂C_e/∂k_e (free)]` (for resistors `(ΔV_β)² - (ΔV_F)²`), or
        with `centered` `[∂C_e/∂k_e (+beta) - ∂C_e/∂k_e (-beta)]`, which is the same to first
        order in `beta`. Divided by `beta`, it tends to `2 ∂L/∂k` as `beta -> 0` (with error
        O(beta), centered O(beta²)).

        On a linear network the nudged state costs no solve beyond the free one: the injected
        currents act through the Green's function `G` the free solve already returned, and
        `j = beta (y - V_O^F - G_OO j)` is an `n_out x n_out` system per example.
        """
        signs = (1.0, -1.0) if centered else (1.0,)
        if self.net.linear:
            response, green, meas = self.responses(k)
            drop_free = self.x @ edge_drops(self.net, response.T)
            green_drops = edge_drops(self.net, green.T)  # (n_out, E)
            miss = self.y - self.x @ meas.transfer.T  # (B, n_out)
            eye = jnp.eye(self.outputs.shape[0], dtype=k.dtype)
            deltas = [small_solve(eye + sign * beta * green[self.outputs], sign * beta * miss.T).T @ green_drops
                      for sign in signs]
            if centered:
                d = (deltas[0] - deltas[1]) * (2 * drop_free + deltas[0] + deltas[1]) / 2
            else:
                d = (2 * drop_free + deltas[0]) * deltas[0]
            return jnp.mean(d, axis=0), meas
        free, free_info = self._newton_free(k)
        states, info = self._newton_nudged(k, beta * jnp.asarray(signs, k.dtype), free)
        if centered:  # the -beta nudge is a negative conductance: too large a beta has no state
            info = eqx.tree_at(lambda i: i.result, info,
                               RESULTS.where(failed(info.result), RESULTS.nudge_too_strong, RESULTS.successful))
        nudged = self._edge_signal(k, states)  # (len(signs), B, E)
        reference = nudged[1] if centered else self._edge_signal(k, free)
        scale = 1.0 if centered else 2.0
        return jnp.mean(scale * (nudged[0] - reference), axis=0), self._newton_measurement(free_info, info)

    def free_outputs(self, k: Float[Array, " edges"]) -> Float[Array, "batch outputs"]:
        """Free-state output voltages `(B, n_out)` for the step's examples."""
        if self.net.linear:
            return self.x @ self.responses(k)[2].transfer.T
        return self._newton_free(k)[0][:, self.outputs]

    def loss(self, k: Float[Array, " edges"]):
        """Loss on the step's examples, differentiable through the solver; aux: the measurement.

        The solve takes the solver's `for_gradients` (`Dense` where the solver would take
        warm-started CG with a dense fallback, small networks): its gradient's adjoint solve
        has no warm start, and the forward and adjoint solves then share one Cholesky
        factorization (about 2x faster on W64).
        With nonlinear elements the gradient is one adjoint solve at the Newton solution.
        """
        if not self.net.linear:
            free, info = self._newton_free(k)
            return output_loss(free[:, self.outputs], self.y), self._newton_measurement(info)
        physics = dataclasses.replace(self, solver=self.resolved_solver.for_gradients(self.net.n_nodes))
        _, _, meas = physics.responses(k)
        return transfer_loss(meas.transfer, self.x, self.y), meas

    # Networks with nonlinear elements: each example's states by damped Newton (`_nonlinear`).

    def _newton(self, net, k, fixed, values, guess):
        """States `(B, N)` with `fixed` nodes at `values` `(B, F)`, and the summed `SolveInfo`."""
        free = free_mask(net, fixed, values.dtype)
        states, info = self.resolved_solver.solve(net, k, free, boundary_of(net, fixed, values, values.dtype), guess)
        return states, SolveInfo(jnp.sum(info.iterations).astype(jnp.int32), jnp.max(info.residual), info.tolerance,
                                 info.result)

    def _newton_free(self, k):
        fixed = jnp.concatenate([self.inputs, self.ground])
        values = jnp.concatenate([self.x, jnp.zeros((self.x.shape[0], self.ground.shape[0]), k.dtype)], axis=1)
        return self._newton(self.net, k, fixed, values, jnp.zeros((self.x.shape[0], self.net.n_nodes), k.dtype))

    def _newton_nudged(self, k, betas, free):
        """The nudged states `(len(betas), B, N)`, all in one Newton solve: each output joined to
        a node held at its target by a resistor of conductance `beta` (which draws the current
        `beta (y - V_o)` into it)."""
        n, n_out, el = self.net.n_nodes, self.outputs.shape[0], self.net.elements
        targets = n + jnp.arange(n_out)
        resistors = Elements.from_kinds(["resistor"] * n_out)
        augmented = Network(
            jnp.concatenate([self.net.senders, self.outputs]), jnp.concatenate([self.net.receivers, targets]),
            n + n_out, None, jax.tree.map(lambda a, b: jnp.concatenate([a, b.astype(a.dtype)]), el, resistors),
        )
        batch, nudges = self.x.shape[0], betas.shape[0]
        k_each = jnp.concatenate([jnp.broadcast_to(k, (nudges, batch, k.shape[0])),
                                  jnp.broadcast_to(betas[:, None, None], (nudges, batch, n_out))], axis=-1)
        fixed = jnp.concatenate([self.inputs, self.ground, targets])
        values = jnp.concatenate([self.x, jnp.zeros((batch, self.ground.shape[0]), k.dtype), self.y], axis=1)
        guess = jnp.concatenate([free, self.y], axis=1)
        states, info = self._newton(augmented, k_each.reshape(nudges * batch, -1), fixed,
                                    jnp.tile(values, (nudges, 1)), jnp.tile(guess, (nudges, 1)))
        return states[:, :n].reshape(nudges, batch, n), info

    def _edge_signal(self, k, states):
        """`∂C_e/∂k_e` of each example's state `(B, E)`."""
        return self.net.elements.parameter_gradient(edge_drops(self.net, states), k)

    @staticmethod
    def _newton_measurement(*infos):
        info = SolveInfo(sum(i.iterations for i in infos).astype(jnp.int32), jnp.max(jnp.stack([i.residual for i in infos])),
                         infos[0].tolerance, first_failure(*(i.result for i in infos)))
        return Measurement(None, None, info)


def output_loss(outputs, y) -> Float[Array, ""]:
    """`0.5 * mean over examples of sum over outputs of (V_O - y)^2`."""
    return 0.5 * jnp.mean(jnp.sum((outputs - y) ** 2, axis=-1))


def transfer_loss(transfer, x, y) -> Float[Array, ""]:
    """`output_loss` of the linear outputs `T x`."""
    return output_loss(x @ transfer.T, y)


def edge_currents(
    net: Network, conductances: Float[ArrayLike, " edges"], voltages: Float[ArrayLike, "*examples nodes"]
) -> Float[Array, "*examples edges"]:
    """Current through each edge from sender to receiver (amperes): `k_e ΔV_e` for a resistor,
    the element's current (`Elements.current`) on a network with elements.

    **Arguments:** `net`; `conductances` `(E,)` (each element's parameter); `voltages` `(..., N)`.
    **Returns:** `(..., E)`.
    """
    k, drops = jnp.asarray(conductances), edge_drops(net, voltages)
    return k * drops if net.linear else net.elements.current(drops, k)


def power(
    net: Network, conductances: Float[ArrayLike, " edges"], voltages: Float[ArrayLike, "*examples nodes"]
) -> Float[Array, "*examples"]:
    """Total dissipated power `sum_e I_e ΔV_e` (watts); `sum_e k_e ΔV_e²` for resistors.

    **Arguments:** `net`; `conductances` `(E,)`; `voltages` `(..., N)`. **Returns:** `(...)`.
    """
    return jnp.sum(edge_currents(net, conductances, voltages) * edge_drops(net, voltages), axis=-1)


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
    return outflow(net, edge_currents(net, conductances, voltages))


def effective_conductance(
    net: Network, task: Task, conductances: Float[ArrayLike, " edges"], *, solver: AbstractSolver | None = None,
    method=None,
) -> Float[Array, "outputs outputs"]:
    """Effective conductance matrix `K_eff` among the task's outputs, inputs and ground held (siemens).

    `K_eff[i, j]` is the current (amperes) a source at output `i` injects into the network when
    output `j` is held at 1 V and every other output, input and ground node at 0 V, the hidden
    nodes free: the Schur complement `L_OO - L_OH L_HH^-1 L_HO` of the Laplacian onto the
    outputs, with the inputs and ground eliminated as held nodes (their conductances to the
    outputs are in `L_OO`). Symmetric positive definite, to rounding. It depends on the
    conductances and the terminals, not on the examples; it is the inverse of the outputs'
    block of the Green's function the learning states use (`Physics.responses`).

    In coupled learning it weights the output errors: holding the outputs at
    `V_O^F + eta e` (`e = y - V_O^F`) dissipates `power` `eta² e^T K_eff e` more than the free
    state, exactly on a linear network.

    One solve of the shared solver (a column per output) and one Laplacian product;
    differentiable in `conductances`. Linear (resistor) networks only.

    **Arguments:** `net`; `task` (its `inputs`, `outputs`, `ground`); `conductances` `(E,)`
    (siemens); `solver` a linear solver object (None: `jn.Auto()`); `method` its deprecated name.
    **Returns:** `(n_out, n_out)` in the conductances' dtype (NaN if the solve fails).

    **Raises:** `ValueError` for concrete bad input, as `solve` does: a terminal out of range, a
    negative or non-finite conductance, a node left floating.
    """
    if not net.linear:
        raise ValueError("effective_conductance is the Schur complement of the Laplacian of a linear "
                         "(resistor) network, and this network has nonlinear elements.")
    k = jnp.asarray(conductances)
    k = k.astype(jnp.result_type(k, float))
    if k.shape != (net.n_edges,):
        raise ValueError(f"conductances must have shape ({net.n_edges},) (one per edge); got {k.shape}.")
    held = jnp.concatenate([task.inputs, task.ground, task.outputs])
    if is_concrete(k, held, net.senders):  # the checks `solve` makes, on the same helpers
        task.check(net)
        check_conductances(net, k)
        check_no_floating(net, k, held)
    free = free_mask(net, held, k.dtype)
    response, _, _ = solver_for(net, solver, method).solve(net, k, free, unit_rhs(net, k, free, task.outputs))  # NaN if failed
    return laplacian_apply(net, k, response)[task.outputs]
