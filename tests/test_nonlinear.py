"""Equilibrium propagation, nonlinear elements (Newton states, implicit gradients), XOR."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import tolerance

import jaxnet as jn


def mixed_network(seed=0, n_nodes=12, n_edges=24, **params):
    """A random network with every element kind, conductances ~U[0.5, 2], gates ~U[0.5, 2] V."""
    net = jn.random_graph(jax.random.key(seed), n_nodes, n_edges)
    kinds = np.random.default_rng(seed).choice(list(jn.KINDS), net.n_edges)
    params = {"threshold": 0.1, "leak": 1e-6, **params}
    return net.with_elements(jn.Elements.from_kinds(kinds, **params)), kinds


def physics_for(net, task, solver=jn.Auto()):
    return jn.Physics(net, task.inputs, task.outputs, task.ground, task.x_train, task.y_train, solver)


# ---------------------------------------------------------------- elements


@pytest.mark.usefixtures("x64")
def test_elements_current_is_the_cocontent_slope_and_conductance_its_derivative():
    drops = jnp.linspace(-1.5, 1.5, 31)[:, None] * jnp.ones(8)
    kinds = [kind for kind in jn.KINDS for _ in range(2)]
    el = jn.Elements.from_kinds(kinds, threshold=0.2, leak=1e-3)
    k = jnp.array([0.5, 2.0] * 4)
    h = 1e-6

    @jax.jit
    def measure(drops):
        slope = jax.grad(lambda d: el.cocontent(d, k).sum())(drops)
        finite_diff = (el.current(drops + h, k) - el.current(drops - h, k)) / (2 * h)
        return el.current(drops, k), slope, el.conductance(drops, k), finite_diff, el.parameter_gradient(drops, k)

    current, slope, conductance, finite_diff, parameter_gradient = measure(drops)
    np.testing.assert_allclose(slope, current, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(conductance, finite_diff, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(conductance) > 0)  # monotone: each Newton step is a solve
    # resistors: C = k dV^2 / 2, so the local rule reads dV^2 / 2
    np.testing.assert_allclose(parameter_gradient[:, :2], 0.5 * drops[:, :2] ** 2)
    # a diode conducts forward, blocks backward (down to -I_s and its leak)
    assert current[-1, 2] > 0.1 and abs(current[0, 2]) < 1e-11 + 1.5e-3 * 1.5


def test_elements_refuse_bad_kinds_and_parameters():
    with pytest.raises(ValueError, match="unknown element kind 'capacitor'"):
        jn.Elements.from_kinds(["resistor", "capacitor"])
    with pytest.raises(ValueError, match="saturation_current must be finite and positive"):
        jn.Elements.from_kinds(["diode"], saturation_current=0.0)
    with pytest.raises(ValueError, match="has 1 edges; the network has 2"):
        jn.Network.from_edges([[0, 1], [1, 2]]).with_elements(jn.Elements.from_kinds(["diode"]))


# ---------------------------------------------------------------- Newton states


def test_newton_state_obeys_the_current_law(dtype):
    net, _ = mixed_network()
    k = jnp.asarray(np.random.default_rng(1).uniform(0.5, 2.0, net.n_edges), dtype)
    fixed = jnp.array([0, 5, 7])
    values = jnp.array([[1.0, 0.0, -0.5], [0.3, 0.8, 0.0]], dtype)
    v = jn.solve(net, k, fixed, values)
    assert v.dtype == dtype and v.shape == (2, net.n_nodes)
    np.testing.assert_allclose(v[:, fixed], values)
    free = np.setdiff1d(np.arange(net.n_nodes), np.asarray(fixed))
    through = np.abs(np.asarray(jn.edge_currents(net, k, v))).max()
    imbalance = np.abs(np.asarray(jn.node_currents(net, k, v))[:, free]).max()
    assert imbalance <= tolerance(dtype, 1e-4, 1e-10) * through
    # charge is conserved: what the sources inject sums to zero
    assert abs(float(jn.source_currents(net, k, v, fixed).sum(-1).max())) <= tolerance(dtype, 1e-5, 1e-12) * through


@pytest.mark.usefixtures("x64")
def test_newton_with_only_resistors_is_the_linear_solve():
    net = jn.square_lattice(3, 4)
    k = jnp.asarray(np.random.default_rng(2).uniform(0.1, 10, net.n_edges))
    fixed, values = jnp.array([0, 11]), jnp.array([1.0, 0.0])
    resistors = net.with_elements(jn.Elements.from_kinds(["resistor"] * net.n_edges))
    np.testing.assert_allclose(jn.solve(resistors, k, fixed, values), jn.solve(net, k, fixed, values), atol=1e-14)


@pytest.mark.usefixtures("x64")
def test_newton_gradient_is_implicit_and_matches_finite_differences():
    net, _ = mixed_network(seed=3)
    k = jnp.asarray(np.random.default_rng(3).uniform(0.5, 2.0, net.n_edges))
    fixed = jnp.array([0, 4])
    weights = jnp.arange(net.n_nodes, dtype=float)

    @jax.jit
    def f(k, values):
        return jnp.sum(weights * jn.solve(net, k, fixed, values) ** 2)

    values = jnp.array([1.0, 0.1])
    grad_k, grad_v = jax.jit(jax.grad(f, argnums=(0, 1)))(k, values)
    # directional derivatives along random directions, by central differences
    h, rng = 1e-6, np.random.default_rng(0)
    for dk, dv in [(rng.normal(size=net.n_edges), rng.normal(size=2)) for _ in range(3)]:
        finite_diff = (f(k + h * dk, values + h * dv) - f(k - h * dk, values - h * dv)) / (2 * h)
        np.testing.assert_allclose(grad_k @ dk + grad_v @ dv, finite_diff, rtol=1e-6)


def _reached(error):
    """The backward error reached and the one required, as a `SolverError`'s message gives them."""
    match = re.search(r"backward error reached (\S+), required <= ([^;]+?)[;.] ", str(error))
    return float(match[1]), float(match[2])


def test_newton_not_converging_is_an_error_naming_the_imbalance():
    # The imbalance is reported in the units of rtol: at most rtol when converged, above it
    # when not, and a number (not NaN) also where train's nudged solve follows a failed one.
    net, _ = mixed_network(seed=4)
    k = jnp.full(net.n_edges, 2.0)
    fixed, values = jnp.array([0, 4]), jnp.array([1.0, 0.0])
    task = jn.regression_task(jax.random.key(0), net, n_train=4)

    @jax.jit  # one program (op by op, each Newton loop compiled apart)
    def run(k):
        solved = jn.solve(net, k, fixed, values, return_info=True)[1]
        capped = jn.solve(net, k, fixed, values, solver=jn.Newton(max_steps=1), return_info=True)[1]
        trained = jn.train(net, task, jn.rules.coupled_learning(0.1, 0.1), k, key=jax.random.key(0), steps=1,
                           solver=jn.Newton(max_steps=1))
        return solved, capped, trained

    solved, capped, trained = run(k)
    assert solved.result == jn.RESULTS.successful and 0 <= solved.residual <= solved.tolerance
    with pytest.raises(jn.SolverError, match=r"Newton did not converge.*jn.Newton\(rtol=") as error:
        jn.check(capped)
    assert "narrow the conductance range" not in str(error.value)  # a SolveInfo's range is not known
    reached, required = _reached(error.value)
    assert reached > required == pytest.approx(solved.tolerance)
    with pytest.raises(jn.SolverError, match="step 0: Newton did not converge") as error:
        jn.check(trained)
    reached, required = _reached(error.value)
    assert np.isfinite(reached) and reached > required


def test_newton_floating_behind_off_transistors_is_an_error():
    # node 2 hangs off the network through one transistor whose gate is below threshold
    net = jn.Network.from_edges([[0, 1], [1, 2]])
    net = net.with_elements(jn.Elements.from_kinds(["resistor", "transistor"], threshold=1.0, leak=0.0))
    with pytest.raises(jn.SolverError, match="singular|non-finite"):
        jn.solve(net, jnp.array([1.0, 0.5]), jnp.array([0]), jnp.array([1.0]))


# ---------------------------------------------------------------- equilibrium propagation


@pytest.fixture(scope="module")
def regression():
    net = jn.square_lattice(4, 4)
    task = jn.regression_task(jax.random.key(1), net, n_train=8)
    return net, task


def _gradient_and_estimates(physics, k, betas, centered):
    """`dL/dk` and EP's estimates of it, `contrast / (2 beta)`, one per beta (one compilation)."""
    @jax.jit
    def run(k, betas):
        grad = jax.grad(lambda k: physics.loss(k)[0])(k)
        return grad, jax.vmap(lambda beta: physics.equilibrium_contrast(k, beta, centered)[0] / (2 * beta))(betas)

    grad, estimates = run(k, jnp.asarray(betas, k.dtype))
    return grad, list(estimates)


@pytest.mark.usefixtures("x64")
def test_equilibrium_propagation_tends_to_the_gradient(regression):
    net, task = regression
    k = jnp.asarray(np.random.default_rng(0).uniform(0.5, 2.0, net.n_edges))
    betas = [1e-2, 1e-3, 1e-4]
    for centered, order in [(False, 1), (True, 2)]:
        grad, estimates = _gradient_and_estimates(physics_for(net, task), k, betas, centered)
        errors = [float(jnp.linalg.norm(est - grad) / jnp.linalg.norm(grad)) for est in estimates]
        cosine = float(jnp.dot(estimates[-1], grad) / jnp.linalg.norm(estimates[-1]) / jnp.linalg.norm(grad))
        assert cosine > 0.9999
        # one-sided O(beta), centered O(beta^2): a decade of beta gains 1 or 2 decades
        for coarse, fine in zip(errors, errors[1:]):
            assert 0.5 * 10**order < coarse / fine < 2 * 10**order, (centered, errors)


def test_equilibrium_propagation_rule_is_the_update_in_float32(regression):
    net, task = regression
    task32 = jax.tree.map(lambda a: a.astype(jnp.float32) if a.dtype == jnp.float64 else a, task)
    k = jnp.asarray(np.random.default_rng(0).uniform(0.5, 2.0, net.n_edges), jnp.float32)
    rule = jn.rules.equilibrium_propagation(alpha=0.1, beta=0.01, centered=True)
    k_new, grad = jax.jit(lambda k: (rule.update(jax.random.key(0), k, physics_for(net, task32), None)[0],
                                     jax.grad(lambda k: physics_for(net, task32).loss(k)[0])(k)))(k)
    step = k_new - k
    assert step.dtype == jnp.float32
    np.testing.assert_allclose(step, -2 * 0.1 * grad, rtol=2e-2, atol=2e-3 * float(jnp.abs(step).max()))


@pytest.mark.usefixtures("x64")
def test_nonlinear_contrasts_agree_with_the_linear_ones_on_resistors(regression):
    net, task = regression
    k = jnp.asarray(np.random.default_rng(0).uniform(0.5, 2.0, net.n_edges))
    resistors = net.with_elements(jn.Elements.from_kinds(["resistor"] * net.n_edges))

    @jax.jit
    def contrasts(k):
        def both(physics):
            return (physics.coupled_contrast(k, 0.01)[0], physics.equilibrium_contrast(k, 0.01)[0],
                    physics.equilibrium_contrast(k, 0.01, centered=True)[0])
        return both(physics_for(resistors, task)), both(physics_for(net, task))

    for newton, linear in zip(*contrasts(k)):
        np.testing.assert_allclose(newton, linear, atol=1e-12)


@pytest.mark.usefixtures("x64")
def test_equilibrium_propagation_estimates_the_implicit_gradient_on_a_nonlinear_network():
    net = jn.random_graph(jax.random.key(5), 10, 20)
    net = net.with_elements(jn.Elements.from_kinds(["smooth_diode", "transistor", "resistor", "resistor"] * 5, threshold=0.1))
    task = jn.regression_task(jax.random.key(2), net, n_train=4)
    k = jnp.asarray(np.random.default_rng(5).uniform(0.5, 2.0, net.n_edges))
    grad, (estimate,) = _gradient_and_estimates(physics_for(net, task), k, [1e-4], centered=True)
    np.testing.assert_allclose(estimate, grad, rtol=1e-4, atol=1e-6 * float(jnp.abs(grad).max()))


# ---------------------------------------------------------------- learning on nonlinear networks


@pytest.mark.parametrize("rule", [
    jn.rules.equilibrium_propagation(alpha=1.0, beta=0.1),
    jn.rules.gradient_descent(optax.sgd(2.0)),
], ids=["equilibrium", "gradient"])
def test_rules_learn_on_a_nonlinear_network(rule):
    """Equilibrium propagation and gradient descent (coupled learning, through `train`: the XOR
    test below), stepped by their own `step` (`update`, then the clip to their bounds)."""
    net = jn.square_lattice(3, 3)
    net = net.with_elements(jn.Elements.from_kinds(["smooth_diode", "resistor"] * 6, leak=0.05))
    task = jn.regression_task(jax.random.key(0), net, n_train=4)
    physics = physics_for(net, task)

    @jax.jit
    def run(k):
        def step(_, carry):
            k, state = carry
            return rule.step(jax.random.key(0), k, physics, state)[:2]

        k_end, _ = jax.lax.fori_loop(0, 40, step, (k, rule.init(jax.random.key(1), k)))
        return physics.loss(k)[0], physics.loss(k_end)[0]

    before, after = run(jnp.ones(net.n_edges))
    assert float(after) < 0.5 * float(before), (before, after)


# A diode network learning XOR, which a linear one cannot, through `train` with coupled learning
# (every example classified right, the logged loss that of its own Newton solve): the code of
# docs/nonlinear.md, run and checked by tests/test_docs.py.
