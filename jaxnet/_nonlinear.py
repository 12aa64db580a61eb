"""The state of a network with nonlinear elements: damped Newton on its co-content.

The free nodes of a network with `Elements` settle where the co-content `Φ(V) = Σ_e C_e(Δ_e)`
is least (Kirchhoff's current law is `∂Φ/∂V = 0` there; see `_elements`). `Φ` is convex, and
its Hessian is the weighted Laplacian of the elements' small-signal conductances, so each
Newton step is one solve with its linear solver (`Newton.linear`). A backtracking line
search on the current imbalance, each node's weighted by its own tolerance (Armijo), damps the
steps: a Newton step descends every such weighted norm, and it sees a node that carries
picoamperes as well as one that carries amperes, which a search on `Φ` (whose rounding is set
by the large currents) does not.

Derivatives (with respect to the element parameters `k` and the fixed voltages) come from the
implicit function theorem at the solution: one adjoint solve with the same linear solver,
never differentiation through the Newton iterations.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._checks import plain_int
from ._network import Network, edge_drops, edge_sums, incident_sum, outflow
from ._results import RESULTS, first_failure
from ._solver import AbstractSolver, Auto, LinearSolver, SolveInfo, check_fields


def _step_solve(net, g, free, rhs, solver):
    """The linear solves of a Newton step (or of its adjoint), one per example: `(x, singular)`.

    `g` `(B, E)` and `rhs` `(B, N)`, one system per example. Their residual is not held to the
    tolerance of Newton's linear solver: a reverse-biased diode's conductance (~1e-12 S) beside a resistor's
    makes the system too ill-conditioned for any backward-stable solve to meet it, and Newton
    needs no exact steps (its own test, on the current law, is the check). A singular or
    non-finite solve is reported, for the error message.
    """
    def one(g, rhs):
        x, info, _ = solver.linear.solve(net, g, free, rhs[:, None], check=False)
        return x[:, 0], (info.result == RESULTS.nonfinite) | (info.result == RESULTS.singular)

    x, singular = jax.vmap(one)(g, rhs)
    return x, jnp.any(singular)


def _newton(net: Network, k, free, boundary, guess, solver: Newton):
    """`(V, SolveInfo)`: each example's co-content minimum, `V = boundary` at the fixed nodes.

    All examples `(B, N)` advance together in one loop (each with its own Jacobian and line
    search); an example that has converged stays put while the others finish. A failure
    (non-finite, a singular step, not converged) is reported in `info.result` (the worst
    over the examples), never raised; a non-finite or unconverged example's `V` is NaN. (A
    singular step's flag comes from a linear solve's aux output, which must not feed the
    states: under forward-over-reverse differentiation JAX 0.9 batches it; `solve` and
    `train` raise or record it from `info.result`.)
    """
    el, dtype = net.elements, boundary.dtype
    rtol, atol, eps = solver.tolerance(dtype), solver.atol, jnp.finfo(dtype).eps
    batch = boundary.shape[0]

    def residual(v):
        """Net current out of each free node `(B, N)`."""
        return free * outflow(net, el.current(edge_drops(net, v), k))

    def imbalance(v):
        """The residual, its tolerance, and the edges' small-signal conductances `(B, E)` (the
        next Newton step's).

        The tolerance is `rtol` times the current through the node (`Σ_e |I_e|` over its
        edges), plus what rounding the voltages to working precision alone makes the currents
        miss (`8 eps Σ_e g_e (|V_s| + |V_r|)`), plus `atol`, plus a floor of `1e-3 rtol` times
        the largest current through any node of the example (as SPICE's `abstol`): a node fed
        only picoamperes through reverse-biased diodes cannot balance better than the
        rounding of the large currents elsewhere allows.
        """
        drops = edge_drops(net, v)
        current, g = el.current(drops, k), el.conductance(drops, k)
        magnitude = edge_sums(net, jnp.abs(v))

        def incident(x):
            return free * incident_sum(net, x, dtype=v.dtype)

        through = incident(jnp.abs(current))
        floor = 1e-3 * rtol * jnp.max(through, -1, keepdims=True) + atol + jnp.finfo(dtype).tiny
        return free * outflow(net, current), rtol * through + 8 * eps * incident(g * magnitude) + floor, g

    def converged(r, tol):
        return jnp.all(jnp.abs(r) <= tol, axis=-1)

    def step(carry):
        v, r, tol, g, it, singular, count = carry
        delta, singular_now = _step_solve(net, g, free, -r, solver)
        delta = free * delta
        # Backtracking on the current imbalance, each node's weighted by its tolerance: the
        # Newton step descends every such norm (J delta = -r), and unlike the co-content, a
        # node that carries picoamperes weighs as much as one that carries amperes.
        weight = free / tol

        def merit(r):
            return jnp.sum((weight * r) ** 2, -1)

        start = merit(r)
        floor = jnp.sum(free, -1)  # every node within its tolerance

        def too_long(t):
            trial = merit(residual(v + t[:, None] * delta))
            return (trial > (1 - 1e-4 * t) * start) & (trial > floor) & (t > 2.0**-30)

        t = jax.lax.while_loop(lambda t: jnp.any(too_long(t)), lambda t: jnp.where(too_long(t), t / 2, t),
                               jnp.ones(batch, dtype))
        moving = ~converged(r, tol)
        v = jnp.where(moving[:, None], v + t[:, None] * delta, v)
        return v, *imbalance(v), it + moving, singular | singular_now, count + 1

    def going(carry):
        _, r, tol, _, it, _, count = carry
        # At least one step, so its linear solve sees a singular Jacobian even where the start
        # is already balanced (a node between off transistors carries no current at 0 V, and
        # its voltage is undetermined, not 0).
        return (count == 0) | ((jnp.max(it) < solver.max_steps) & ~jnp.all(converged(r, tol)))

    v0 = free * guess + (1 - free) * boundary
    init = (v0, *imbalance(v0), jnp.zeros(batch, jnp.int32), jnp.array(False), jnp.int32(0))
    v, r, tol, _, iterations, singular, _ = jax.lax.while_loop(going, step, init)
    # The worst imbalance in units of `rtol`: each node's against its own tolerance, scaled so
    # that a converged solve reports at most `rtol`, as the linear solvers' backward error does.
    relative = rtol * jnp.max(jnp.abs(r) / tol, axis=-1)
    finite = jnp.all(jnp.isfinite(v), axis=-1)
    ok = finite & converged(r, tol)
    result = first_failure(
        RESULTS.where(jnp.all(finite), RESULTS.successful, RESULTS.nonfinite),
        RESULTS.where(singular, RESULTS.singular, RESULTS.successful),
        RESULTS.where(jnp.all(ok), RESULTS.successful, RESULTS.newton),
    )
    v = jnp.where(ok[:, None], v, jnp.nan)
    return v, SolveInfo(iterations, relative, jnp.asarray(rtol, dtype), result)


def _current_law(net, free, v, k, boundary):
    """`F(V; k, boundary)`: the net current out of each free node of the state `v` with its
    fixed nodes at `boundary`, as a function of `(k, boundary)` for implicit derivatives."""
    u = free * v + (1 - free) * boundary
    return free * outflow(net, net.elements.current(edge_drops(net, u), k))


@eqx.filter_custom_vjp
def _equilibrium(diff, net, free, guess, solver):
    k, boundary = diff
    return _newton(net, k, free, boundary, guess, solver)


@_equilibrium.def_fwd
def _equilibrium_fwd(perturbed, diff, net, free, guess, solver):
    # `_implicit`, not `_newton`: a second derivative (`jax.hessian`, `jacfwd` or `jacrev`
    # over `grad`) differentiates this forward pass too, and must meet implicit derivatives
    # of the states there, in either mode (reverse mode cannot go through Newton's loop).
    out = _implicit(diff, net=net, free=free, guess=guess, solver=solver)
    return out, out[0]


@eqx.filter_custom_jvp
def _implicit(diff, *, net, free, guess, solver):
    """`_newton`, differentiable to any order in either mode by the implicit function theorem."""
    k, boundary = diff
    return _newton(net, k, free, boundary, guess, solver)


@_implicit.def_jvp
def _implicit_jvp(primals, tangents, *, net, free, guess, solver):
    # With F(V; k, boundary) = 0 the current law at the free nodes and J = ∂F/∂V:
    # J dV = -(∂F/∂k dk + ∂F/∂boundary dboundary) at the free nodes, dV = dboundary at the
    # fixed ones. Linear in the tangents (so reverse mode transposes it), and built from
    # `_implicit` itself, so differentiating it again is implicit differentiation again.
    # The solve's matrix is the one `_equilibrium_bwd`'s adjoint solve checks.
    ((k, boundary),), ((t_k, t_boundary),) = primals, tangents
    out = _implicit((k, boundary), net=net, free=free, guess=guess, solver=solver)
    v = out[0]
    t_k = jnp.zeros_like(k) if t_k is None else t_k
    t_boundary = jnp.zeros_like(boundary) if t_boundary is None else t_boundary

    r_dot = jax.jvp(functools.partial(_current_law, net, free, v), (k, boundary), (t_k, t_boundary))[1]
    g = net.elements.conductance(edge_drops(net, v), k)
    x, _ = _step_solve(net, g, free, -r_dot, solver)  # as in `_equilibrium_bwd`
    return out, (free * x + (1 - free) * t_boundary, jax.tree.map(lambda _: None, out[1]))


@_equilibrium.def_bwd
def _equilibrium_bwd(v, grad_obj, perturbed, diff, net, free, guess, solver):
    # The free voltages solve F(V; k, boundary) = 0 (the current law). With J = ∂F/∂V (the
    # conductance-weighted Laplacian, symmetric), the cotangent of (k, boundary) is
    # -λᵀ ∂F/∂(k, boundary) with J λ = v̄: one adjoint solve.
    k, boundary = diff
    v_bar = grad_obj[0]
    if v_bar is None:
        v_bar = jnp.zeros_like(v)
    g = net.elements.conductance(edge_drops(net, v), k)
    # The adjoint's matrix is that of Newton's last steps, whose solves reported a singular
    # system already (the forward states are then NaN, and so is this gradient). Its flag is
    # not used here: a condition drawn from a linear solve's aux output cannot be batched
    # under forward-over-reverse differentiation (jax.hessian), JAX 0.9.
    lam, _ = _step_solve(net, g, free, free * v_bar, solver)
    k_bar, boundary_bar = jax.vjp(functools.partial(_current_law, net, free, v), k, boundary)[1](lam)
    return -k_bar, (1 - free) * v_bar - boundary_bar


class Newton(AbstractSolver):
    """Damped Newton on the co-content of a network with nonlinear `Elements`; each step one
    solve of `linear` with the elements' small-signal conductances.

    `jn.solve`, `train` and the rest take it for a network with elements; given a linear
    solver there, they use `Newton(linear=that, rtol=that.rtol, atol=that.atol)`, and given a
    `Newton` for a network of resistors only, they use its `linear`.

    **Fields** (static):

    - `linear`: the linear solver of the steps (default `Auto()`). Its residual is not held
      to its tolerance: Newton needs no exact steps, and its own test is the check.
    - `rtol`: relative tolerance on each free node's current imbalance, against the current
      through the node (None: 1e-4 in float32, 1e-10 in float64).
    - `atol`: absolute tolerance on the imbalance (amperes), default 0.
    - `max_steps`: the iteration cap (default 50); not converging within it is a failure
      (`RESULTS.newton`) that names the imbalance reached.
    """

    linear: LinearSolver = Auto()
    rtol: float | None = eqx.field(static=True, default=None)
    atol: float = eqx.field(static=True, default=0.0)
    max_steps: int = eqx.field(static=True, default=50, converter=plain_int)

    def __check_init__(self):
        if not isinstance(self.linear, LinearSolver):
            raise ValueError(f"Newton's linear solver must be jn.Dense, jn.CG, jn.CGThenDense or jn.Auto; "
                             f"got {type(self.linear).__name__}.")
        check_fields(self)

    def tolerance(self, dtype) -> float:
        """`rtol`, or its default for `dtype` (1e-4 in float32, 1e-10 in float64)."""
        if self.rtol is not None:
            return self.rtol
        return 1e-4 if jnp.finfo(dtype).eps > 1e-10 else 1e-10

    def solve(
        self,
        net: Network,
        k: Float[Array, "*batch edges"],
        free: Float[Array, " nodes"],
        boundary: Float[Array, "batch nodes"],
        guess: Float[Array, "batch nodes"] | None = None,
    ) -> tuple[Float[Array, "batch nodes"], SolveInfo]:
        """The states of a network with elements for a batch of examples: `(B, N)` and `SolveInfo`.

        **Arguments:** `net` (with `elements`); `k` `(E,)` element parameters, or `(B, E)` one
        set per example; `free` `(N,)` the free-node mask; `boundary` `(B, N)` the voltages of
        the fixed nodes (ignored elsewhere); `guess` `(B, N)` a starting point at the free
        nodes (None: 0 V).

        Newton stops when every free node's current imbalance is at most `rtol` times the
        current through it, plus `atol`, the rounding floor of its voltages, and `1e-3 rtol`
        times the example's largest current (as SPICE's `abstol`); an example not converged
        within `max_steps` has NaN voltages, and `info.result` says why. `info` holds per
        example the Newton iterations and the worst relative imbalance. Differentiable in `k`
        and `boundary` by one adjoint solve per example (implicit differentiation), never
        through the iterations.
        """
        if guess is None:
            guess = jnp.zeros_like(boundary)
        return _equilibrium((k, boundary), net, free, jax.lax.stop_gradient(guess), self)


def boundary_of(net: Network, fixed_nodes, fixed_values, dtype) -> Float[Array, "batch nodes"]:
    """`(B, N)` voltages: `fixed_values` `(B, F)` at `fixed_nodes`, 0 elsewhere."""
    return jnp.zeros((fixed_values.shape[0], net.n_nodes), dtype).at[:, fixed_nodes].set(fixed_values.astype(dtype))

