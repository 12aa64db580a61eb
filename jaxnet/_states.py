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
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._elements import Elements
from ._lapack import solve as small_solve
from ._network import Network, edge_drops
from ._nonlinear import boundary_of
from ._results import RESULTS, failed, first_failure
from ._solve import solver_for, solver_of_method, unit_rhs
from ._solver import AbstractSolver, SolveInfo, WarmStart
from ._system import free_mask


def _compiled(method):
    """A public method of `LinearPhysics` or `ElementPhysics`, compiled once per shapes when
    called eagerly (op by op, `free_and_nudge` on a 16-node lattice took 5 s, and 0.7 s every
    later call); inside a `jit` (train's, or a user's) it is inlined. Number arguments (`eta`,
    `beta`) are passed as arrays, so a new value does not compile again; `centered` (a bool)
    stays static."""
    jitted = eqx.filter_jit(method)

    @functools.wraps(method)
    def call(self, k, *args, **kwargs):
        def traced(a):
            return jnp.asarray(a) if isinstance(a, (int, float)) and not isinstance(a, bool) else a

        return jitted(self, k, *map(traced, args), **{name: traced(a) for name, a in kwargs.items()})

    return call


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
    for a cold solve; `method` the deprecated name of `solver` (it warns).

    `jn.Physics(...)` builds a `LinearPhysics` for a network of resistors and an
    `ElementPhysics` for one with nonlinear elements; each refuses a network of the other kind.

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
    method: AbstractSolver | str | None = eqx.field(static=True, default=None)  # deprecated name of `solver`

    @property
    def resolved_solver(self) -> AbstractSolver:
        """The solver this network takes (`jn.Newton` with elements; see `jaxnet._solve.solver_for`)."""
        solver = self.solver if self.method is None else solver_of_method(self.method, self.solver, warn=False)
        return solver_for(self.net, solver)

    def __new__(cls, *args, **kwargs):
        # `jn.Physics(...)` is the class of the network's kind (equinox refuses abstract
        # classes at construction, so the methods below raise rather than being abstract).
        # Without arguments (copy, pickle) the class is the one asked for.
        net = args[0] if args else kwargs.get("net")
        if cls is Physics and isinstance(net, Network):
            cls = LinearPhysics if net.linear else ElementPhysics
        return super().__new__(cls)

    def __check_init__(self):
        if isinstance(self.net, Network) and self.net.linear != isinstance(self, LinearPhysics):
            raise ValueError(f"{type(self).__name__} is for a network {'with' if self.net.linear else 'without'} "
                             "nonlinear elements, and this one has "
                             f"{'none' if self.net.linear else 'some'}: build it with jn.Physics(...), which picks "
                             "LinearPhysics or ElementPhysics by the network.")
        if self.method is not None:
            solver_for(self.net, solver_of_method(self.method, self.solver))  # warns once (deprecated), checks it

    def coupled_contrast(self, k: Float[Array, " edges"], eta):
        """Coupled learning's local signal per edge `(E,)`, and the step's measurement.

        `mean over examples of 2 [∂C_e/∂k_e (free) - ∂C_e/∂k_e (clamped)]`, with `C_e` the
        edge's co-content (`Elements.parameter_gradient`), the clamped state's outputs held at
        `V_O^F + eta (y - V_O^F)`. For resistors that is `(ΔV_F)² - (ΔV_C)²`, computed as
        `-(2 ΔV_F + δ) δ` with `δ = ΔV_C - ΔV_F` straight from the solver, so it keeps its
        relative accuracy in float32 at small `eta`. (With nonlinear elements the two states
        are solved apart and subtracted, so in float32 keep `eta` above about 1e-3.)
        """
        raise NotImplementedError  # LinearPhysics and ElementPhysics implement it

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
        raise NotImplementedError  # LinearPhysics and ElementPhysics implement it

    def free_outputs(self, k: Float[Array, " edges"]) -> Float[Array, "batch outputs"]:
        """Free-state output voltages `(B, n_out)` for the step's examples."""
        raise NotImplementedError  # LinearPhysics and ElementPhysics implement it

    def loss(self, k: Float[Array, " edges"]):
        """Loss on the step's examples, differentiable through the solver; aux: the measurement.

        The solve takes the solver's `for_gradients` (`Dense` where the solver would take
        warm-started CG with a dense fallback, small networks): its gradient's adjoint solve
        has no warm start, and the forward and adjoint solves then share one Cholesky
        factorization (about 2x faster on W64).
        With nonlinear elements the gradient is one adjoint solve at the Newton solution.
        """
        raise NotImplementedError  # LinearPhysics and ElementPhysics implement it


class LinearPhysics(Physics):
    """`Physics` of a network of resistors: every state from ONE call of the linear solver,
    by superposition (see the module docs). `jn.Physics(...)` builds it for such a network."""

    @_compiled
    def responses(self, k: Float[Array, " edges"]):
        """Solve once: `(R, G, Measurement)` with `R` `(N, n_in)`, `G` `(N, n_out)`. Linear networks only."""
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

    @_compiled
    def free_and_nudge(self, k: Float[Array, " edges"], eta):
        """Free state and clamped-minus-free difference for the step's examples.

        **Returns:** `(V_F, dV, measurement)` with `V_F` and `dV = V_C - V_F` of shape `(B, N)`.
        Linear networks only.
        """
        response, green, weights, meas = self._nudge(k, eta)
        return self.x @ response.T, (green @ weights).T, meas

    @_compiled
    def free_and_nudge_drops(self, k: Float[Array, " edges"], eta):
        """Edge drops of the free state and of `V_C - V_F`, each `(B, E)`, and the measurement.

        The same as `edge_drops` of `free_and_nudge`'s states, but the drops are taken on the
        `n_in + n_out` solution columns and the examples superposed after, so the per-edge work
        does not grow with the number of examples. Linear networks only.
        """
        response, green, weights, meas = self._nudge(k, eta)
        return self.x @ edge_drops(self.net, response.T), weights.T @ edge_drops(self.net, green.T), meas

    @_compiled
    def coupled_contrast(self, k: Float[Array, " edges"], eta):
        """See `Physics.coupled_contrast`."""
        drop_free, drop_delta, meas = self.free_and_nudge_drops(k, eta)
        return -jnp.mean((2 * drop_free + drop_delta) * drop_delta, axis=0), meas

    @_compiled
    def equilibrium_contrast(self, k: Float[Array, " edges"], beta, centered: bool = False):
        """See `Physics.equilibrium_contrast`."""
        signs = (1.0, -1.0) if centered else (1.0,)
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

    @_compiled
    def free_outputs(self, k: Float[Array, " edges"]) -> Float[Array, "batch outputs"]:
        """See `Physics.free_outputs`."""
        return self.x @ self.responses(k)[2].transfer.T

    @_compiled
    def loss(self, k: Float[Array, " edges"]):
        """See `Physics.loss`."""
        physics = dataclasses.replace(self, solver=self.resolved_solver.for_gradients(self.net.n_nodes), method=None)
        _, _, meas = physics.responses(k)
        return transfer_loss(meas.transfer, self.x, self.y), meas


class ElementPhysics(Physics):
    """`Physics` of a network with nonlinear `Elements`: each example's states by damped Newton
    (`jn.Newton`), every step a call of its linear solver. `jn.Physics(...)` builds it for such
    a network. It has no superposition: `responses`, `free_and_nudge` and
    `free_and_nudge_drops` are refused."""

    def _linear_only(self, name: str):
        raise ValueError(
            f"Physics.{name} solves the linear (resistor) network by superposition, and this network "
            "has nonlinear elements: use coupled_contrast, equilibrium_contrast, free_outputs or loss, "
            "which solve it by Newton.")

    def responses(self, k):
        self._linear_only("responses")

    def free_and_nudge(self, k, eta):
        self._linear_only("free_and_nudge")

    def free_and_nudge_drops(self, k, eta):
        self._linear_only("free_and_nudge_drops")

    @_compiled
    def coupled_contrast(self, k: Float[Array, " edges"], eta):
        """See `Physics.coupled_contrast`."""
        free, free_info = self._newton_free(k)
        outputs = free[:, self.outputs]
        clamp = jnp.concatenate([self.inputs, self.ground, self.outputs])
        values = jnp.concatenate([self.x, jnp.zeros((self.x.shape[0], self.ground.shape[0]), k.dtype),
                                  outputs + eta * (self.y - outputs)], axis=1)
        clamped, clamped_info = self._newton(self.net, k, clamp, values, free)
        d = 2 * (self._edge_signal(k, free) - self._edge_signal(k, clamped))
        return jnp.mean(d, axis=0), self._newton_measurement(free_info, clamped_info)

    @_compiled
    def equilibrium_contrast(self, k: Float[Array, " edges"], beta, centered: bool = False):
        """See `Physics.equilibrium_contrast`."""
        signs = (1.0, -1.0) if centered else (1.0,)
        free, free_info = self._newton_free(k)
        states, info = self._newton_nudged(k, beta * jnp.asarray(signs, k.dtype), free)
        if centered:  # the -beta nudge is a negative conductance: too large a beta has no state
            info = eqx.tree_at(lambda i: i.result, info,
                               RESULTS.where(failed(info.result), RESULTS.nudge_too_strong, RESULTS.successful))
        nudged = self._edge_signal(k, states)  # (len(signs), B, E)
        reference = nudged[1] if centered else self._edge_signal(k, free)
        scale = 1.0 if centered else 2.0
        return jnp.mean(scale * (nudged[0] - reference), axis=0), self._newton_measurement(free_info, info)

    @_compiled
    def free_outputs(self, k: Float[Array, " edges"]) -> Float[Array, "batch outputs"]:
        """See `Physics.free_outputs`."""
        return self._newton_free(k)[0][:, self.outputs]

    @_compiled
    def loss(self, k: Float[Array, " edges"]):
        """See `Physics.loss`."""
        free, info = self._newton_free(k)
        return output_loss(free[:, self.outputs], self.y), self._newton_measurement(info)

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
        # nanmax: a solve started from a failed one's NaN states has a NaN residual of its own,
        # and the first failure's is the one to report.
        info = SolveInfo(sum(i.iterations for i in infos).astype(jnp.int32),
                         jnp.nanmax(jnp.stack([i.residual for i in infos])), infos[0].tolerance,
                         first_failure(*(i.result for i in infos)))
        return Measurement(None, None, info)


def output_loss(outputs, y) -> Float[Array, ""]:
    """`0.5 * mean over examples of sum over outputs of (V_O - y)^2`."""
    return 0.5 * jnp.mean(jnp.sum((outputs - y) ** 2, axis=-1))


def transfer_loss(transfer, x, y) -> Float[Array, ""]:
    """`output_loss` of the linear outputs `T x`."""
    return output_loss(x @ transfer.T, y)
