"""K_eff, the outputs' effective conductance matrix, and why coupled learning is not gradient descent (issue 20).

Every reference here is NumPy written in this file: K_eff as the Schur complement of the Laplacian,
the free outputs' Jacobian in the conductances from the reduced Laplacian, and from them the
gradient of the K_eff-weighted error `W = mean e^T K_eff e` with K_eff frozen. The claims checked:
`P_C - P_F = eta² e^T K_eff e` exactly; coupled learning's `dk/alpha` is
`-∂W/∂k|frozen - eta mean e^T (∂K_eff/∂k) e` at every eta, so `-∂W/∂k|frozen` as eta -> 0; with one
output that is `2 K_eff (-∂C/∂k)`, parallel to gradient descent, and with two outputs and a
non-diagonal K_eff it is not.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tolerance
from helpers import numpy_laplacian, numpy_loss_and_grad, numpy_solve

import jaxnet as jn
from jaxnet.paper import keff

EDGES = np.array([(0, 2), (0, 5), (1, 3), (1, 6), (2, 5), (2, 6), (3, 6), (3, 7), (4, 5), (4, 7), (5, 6), (6, 7),
                  (2, 3), (0, 7)])
N = 8
INPUTS, OUTPUTS, GROUND = np.array([0, 1]), np.array([2, 3]), np.array([4])  # hidden: 5, 6, 7
K = np.random.default_rng(0).uniform(0.5, 2.0, len(EDGES))
X = np.random.default_rng(1).uniform(0.0, 1.0, (5, 2))
Y = X @ np.asarray(jn.REGRESSION_MATRIX).T


def numpy_keff(k, outputs):
    """K_eff = L_OO - L_OH L_HH^-1 L_HO, the hidden nodes H eliminated, inputs and ground held."""
    lap = numpy_laplacian(EDGES, k, N)
    hidden = np.setdiff1d(np.arange(N), np.concatenate([INPUTS, GROUND, outputs]))
    o, h = np.asarray(outputs), hidden
    return lap[np.ix_(o, o)] - lap[np.ix_(o, h)] @ np.linalg.solve(lap[np.ix_(h, h)], lap[np.ix_(h, o)])


def numpy_free(k, outputs, x):
    """Free states `(B, N)` and the outputs' Jacobian `J[b, o, e] = ∂V_o/∂k_e` `(B, n_out, E)`.

    `L_ff V_f = b` with `∂L/∂k_e = (δ_s - δ_r)(δ_s - δ_r)^T`, so `∂V_f/∂k_e = -L_ff^-1 (δ_s - δ_r)_f ΔV_e`.
    """
    fixed = np.concatenate([INPUTS, GROUND])
    free = np.setdiff1d(np.arange(N), fixed)
    states = numpy_solve(EDGES, k, N, fixed, np.concatenate([x, np.zeros((len(x), len(GROUND)))], axis=1))
    drops = states[:, EDGES[:, 0]] - states[:, EDGES[:, 1]]
    incidence = np.zeros((len(EDGES), N))
    incidence[np.arange(len(EDGES)), EDGES[:, 0]] = 1.0
    incidence[np.arange(len(EDGES)), EDGES[:, 1]] = -1.0
    lap = numpy_laplacian(EDGES, k, N)
    dipoles = np.linalg.solve(lap[np.ix_(free, free)], incidence[:, free].T)  # (free, E)
    rows = np.searchsorted(free, outputs)
    return states, -dipoles[rows][None] * drops[:, None, :]


def numpy_terms(k, outputs, y):
    """`-∂W/∂k` with K_eff frozen, `-∂C/∂k`, `mean e^T (∂K_eff/∂k) e` (each `(E,)`), and K_eff."""
    keff_np = numpy_keff(k, outputs)
    states, jac = numpy_free(k, outputs, X)
    e = y - states[:, outputs]
    neg_grad_w = 2 * np.mean(np.einsum("bi,ij,bje->be", e, keff_np, jac), axis=0)
    neg_grad_c = np.mean(np.einsum("bi,bie->be", e, jac), axis=0)
    # e^T (∂K_eff/∂k_e) e = ΔV_e² of the state with the outputs at e, inputs and ground at 0 (envelope theorem)
    held = np.concatenate([INPUTS, GROUND, outputs])
    u = numpy_solve(EDGES, k, N, held, np.concatenate([np.zeros((len(e), len(INPUTS) + len(GROUND))), e], axis=1))
    curvature = np.mean((u[:, EDGES[:, 0]] - u[:, EDGES[:, 1]]) ** 2, axis=0)
    return neg_grad_w, neg_grad_c, curvature, keff_np


def network_task(dtype, outputs=OUTPUTS):
    net = jn.Network.from_edges(EDGES, N)
    y = Y[:, : len(outputs)]
    task = jn.Task(INPUTS, outputs, GROUND, X, y)
    physics = jn.Physics(net, task.inputs, task.outputs, task.ground, jnp.asarray(X, dtype), jnp.asarray(y, dtype), jn.Dense())
    return net, task, physics, jnp.asarray(K, dtype)


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("outputs", [OUTPUTS, OUTPUTS[:1]])
def test_effective_conductance_is_the_schur_complement(dtype, outputs):
    net, task, _, k = network_task(dtype, outputs)
    got = jn.effective_conductance(net, task, k)
    assert got.dtype == dtype and got.shape == (len(outputs), len(outputs))
    want = numpy_keff(K, outputs)
    np.testing.assert_allclose(np.asarray(got, float), want, rtol=tolerance(dtype, 1e-5, 1e-12),
                               atol=tolerance(dtype, 1e-5, 1e-12) * np.abs(want).max())
    if len(outputs) == 2:  # the two outputs share an edge: K_eff is far from diagonal
        assert abs(want[0, 1]) / np.sqrt(want[0, 0] * want[1, 1]) > 0.1
    # the inverse of the outputs' block of the Green's function the learning states use
    green = np.asarray(task_physics_green(net, task, k), float)
    np.testing.assert_allclose(np.linalg.inv(green), want, rtol=tolerance(dtype, 1e-4, 1e-10))


def task_physics_green(net, task, k):
    physics = jn.Physics(net, task.inputs, task.outputs, task.ground, jnp.asarray(X, k.dtype),
                         jnp.asarray(Y[:, : task.outputs.shape[0]], k.dtype))
    return jax.jit(lambda k: physics.responses(k)[1])(k)[task.outputs]


def test_effective_conductance_refuses_nonlinear_networks():
    net = jn.Network.from_edges(EDGES, N).with_elements(jn.Elements.from_kinds(["diode"] + ["resistor"] * (len(EDGES) - 1)))
    with pytest.raises(ValueError, match="nonlinear"):
        jn.effective_conductance(net, jn.Task(INPUTS, OUTPUTS, GROUND, X, Y), jnp.asarray(K))


def test_effective_conductance_refuses_bad_input_as_solve_does():
    net, task, _, k = network_task(jnp.float32)
    with pytest.raises(ValueError, match="negative"):
        jn.effective_conductance(net, task, k.at[0].set(-1.0))
    with pytest.raises(ValueError, match="out of range"):
        jn.effective_conductance(net, jn.Task(INPUTS, [N + 3, OUTPUTS[1]], GROUND, X, Y), k)
    with pytest.raises(ValueError, match="shape"):
        jn.effective_conductance(net, task, k[:-1])


def test_clamped_extra_power_is_eta_squared_e_keff_e(dtype):
    net, task, physics, k = network_task(dtype)
    keff_np = numpy_keff(K, OUTPUTS)
    nudge = jax.jit(lambda k, eta: physics.free_and_nudge(k, eta))  # one program for every eta
    for eta in (0.1, 1.0) if dtype == jnp.float32 else (1e-3, 0.1, 1.0):
        free, delta, _ = nudge(k, eta)
        extra = np.asarray(jn.power(net, k, free + delta) - jn.power(net, k, free), float)  # sum k ΔV², no 1/2
        e = Y - np.asarray(free, float)[:, OUTPUTS]
        want = eta**2 * np.einsum("bi,ij,bj->b", e, keff_np, e)
        np.testing.assert_allclose(extra, want, rtol=tolerance(dtype, 1e-3, 1e-7))  # a difference of powers: rounding / eta²


def test_numpy_jacobian_gives_the_loss_gradient(x64):
    _, neg_grad_c, _, _ = numpy_terms(K, OUTPUTS, Y)
    np.testing.assert_allclose(neg_grad_c, -numpy_loss_and_grad(EDGES, K, N, jn.Task(INPUTS, OUTPUTS, GROUND, X, Y), X, Y)[1],
                               rtol=1e-10, atol=1e-14)


def test_coupled_learning_tends_to_the_frozen_keff_gradient(dtype):
    """`(1/eta) mean[ΔV_F² - ΔV_C²] -> -∂W/∂k|frozen` as eta -> 0, with an O(eta) gap."""
    _, _, physics, k = network_task(dtype)
    neg_grad_w, neg_grad_c, _, _ = numpy_terms(K, OUTPUTS, Y)
    scale = np.linalg.norm(neg_grad_w)
    contrast = jax.jit(lambda k, eta: physics.coupled_contrast(k, eta))  # one program for every eta
    for eta in (1e-3, 1e-4) if dtype == jnp.float32 else (1e-5, 1e-7):
        limit = np.asarray(contrast(k, eta)[0], float) / eta
        assert np.linalg.norm(limit - neg_grad_w) / scale < tolerance(dtype, 2e-3, 10 * eta)
    # what the rule does to k, unbounded (float64: (k + dk) - k is exact enough)
    if dtype == jnp.float64:
        rule = jn.rules.coupled_learning(alpha=0.5, eta=1e-6)
        step = np.asarray(jax.jit(lambda k: rule.update(jax.random.key(0), k, physics, None)[0] - k)(k))
        np.testing.assert_allclose(step, 0.5 * neg_grad_w, rtol=1e-4, atol=1e-6 * scale)
    # and it is not gradient descent: K_eff is not a multiple of the identity
    assert cosine(neg_grad_w, neg_grad_c) < 0.99


def test_coupled_learning_is_exactly_linear_in_eta(x64):
    """`dk/alpha = -∂W/∂k|frozen - eta mean e^T (∂K_eff/∂k) e` at every eta, not only the limit."""
    _, _, physics, k = network_task(jnp.float64)
    neg_grad_w, _, curvature, _ = numpy_terms(K, OUTPUTS, Y)
    contrast = jax.jit(lambda k, eta: physics.coupled_contrast(k, eta))
    for eta in (0.05, 0.5, 1.0):
        got = np.asarray(contrast(k, eta)[0]) / eta
        np.testing.assert_allclose(got, neg_grad_w - eta * curvature, rtol=1e-8, atol=1e-12 * np.abs(neg_grad_w).max())


def test_single_output_coupled_learning_is_gradient_descent(dtype):
    """One output: K_eff is a scalar, and the eta -> 0 update is 2 K_eff (-∂C/∂k), cosine 1."""
    net, task, _, k = network_task(dtype, OUTPUTS[:1])
    neg_grad_w, neg_grad_c, _, keff_np = numpy_terms(K, OUTPUTS[:1], Y[:, :1])
    np.testing.assert_allclose(neg_grad_w, 2 * keff_np[0, 0] * neg_grad_c, rtol=1e-10, atol=1e-14)
    numbers = keff.comparison(net, task, jn.rules.coupled_learning(1.0, 0.1), k, eta=1e-4)
    assert numbers["cos_cl_limit_vs_neg_grad_loss_all_edges"] > 1 - tolerance(dtype, 1e-5, 1e-7)
    assert numbers["norm_ratio_cl_limit_to_neg_grad_loss"] == pytest.approx(2 * keff_np[0, 0], rel=tolerance(dtype, 1e-3, 1e-3))
    assert numbers["keff_max_offdiagonal_correlation"] == 0 and numbers["keff_eigenvalue_ratio"] == 1


def test_two_outputs_coupled_learning_follows_the_weighted_error(dtype):
    """Two outputs and a non-diagonal K_eff: parallel to -∇W (K_eff frozen), measurably not to -∇C."""
    net, task, _, k = network_task(dtype)
    neg_grad_w, neg_grad_c, _, keff_np = numpy_terms(K, OUTPUTS, Y)
    numbers = keff.comparison(net, task, jn.rules.coupled_learning(1.0, 0.1), k, eta=1e-4)
    assert numbers["cos_cl_limit_vs_neg_grad_keff_weighted_error_all_edges"] > 1 - tolerance(dtype, 1e-5, 1e-7)
    assert numbers["cos_cl_limit_vs_neg_grad_loss_all_edges"] == pytest.approx(cosine(neg_grad_w, neg_grad_c), abs=1e-4)
    assert numbers["cos_cl_limit_vs_neg_grad_loss_all_edges"] < 0.99
    assert numbers["rel_err_cl_limit_vs_neg_grad_keff_weighted_error"] < tolerance(dtype, 2e-3, 1e-3)
    assert numbers["rel_err_cl_rule_eta_vs_exact_relation"] < tolerance(dtype, 1e-3, 1e-8)
    corr = abs(keff_np[0, 1]) / np.sqrt(keff_np[0, 0] * keff_np[1, 1])
    assert numbers["keff_max_offdiagonal_correlation"] == pytest.approx(corr, rel=1e-4)
    assert numbers["edges_at_bound"] == 0 and numbers["edges_clipped_by_step"] == 0


def test_bounds_act_only_through_the_clip(x64):
    """Edges at a bound: the update still follows -∇W on every edge; the clipped step does not."""
    net, task, _, _ = network_task(jnp.float64)
    k_min, k_max = 0.6, 1.9
    k = jnp.clip(jnp.asarray(K), k_min, k_max)
    at_bound = int(np.sum((np.asarray(k) <= k_min) | (np.asarray(k) >= k_max)))
    assert at_bound >= 2
    numbers = keff.comparison(net, task, jn.rules.coupled_learning(1.0, 0.1, k_min, k_max), k, eta=1e-6)
    assert numbers["edges_at_bound"] == at_bound
    assert numbers["cos_cl_limit_vs_neg_grad_keff_weighted_error_all_edges"] > 1 - 1e-9
    assert numbers["cos_cl_limit_vs_neg_grad_keff_weighted_error_free_edges"] > 1 - 1e-9
    assert numbers["cos_cl_step_vs_neg_grad_keff_weighted_error_free_edges"] > 0.99  # eta = 0.1: O(eta) off
    assert numbers["edges_clipped_by_step"] >= 1  # the clip turns the step away from -∇W on all edges
    assert numbers["cos_cl_step_vs_neg_grad_keff_weighted_error_all_edges"] < \
        numbers["cos_cl_step_vs_neg_grad_keff_weighted_error_free_edges"] - 0.01


def test_along_run_records_each_step():
    net, task, _, k = network_task(jnp.float32)
    run = keff.along_run(net, task, jn.rules.coupled_learning(1.0, 0.1), k, key=jax.random.key(0), steps=4, every=2)
    assert run["steps"] == [0, 2, 4] and len(run["records"]) == 3 and run["loss"][-1] < run["loss"][0]
    assert all(r["cos_cl_limit_vs_neg_grad_keff_weighted_error_all_edges"] > 1 - 1e-4 for r in run["records"])
    assert run["final"] == run["records"][-1] and set(run["median"]) == set(run["final"])


@pytest.mark.timeout(900)  # the first test of a run that asks for the smoke reproduction builds it
def test_study_rows_and_table(smoke_reproduction):
    """The claims' part at a toy size (the smoke reproduction's study: 12 nodes, 6 steps), read
    back from its claims.json: rows, each named, and a table row per run."""
    import json
    import os

    out, _ = smoke_reproduction
    numbers = json.load(open(os.path.join(out, "claims.json")))["claims"]["gd"]
    assert numbers["keff_vs_gradient"]["setup"]["n_nodes"] == [12]
    runs = numbers["keff_vs_gradient"]["runs"]
    assert [(r["outputs"], r["bounds"]) for r in runs] == [(2, "wide"), (2, "tight"), (1, "wide"), (1, "tight")]
    assert all(r["median"]["cos_cl_limit_vs_neg_grad_keff_weighted_error_all_edges"] > 1 - 1e-4 for r in runs)
    assert all(r["start"]["cos_cl_limit_vs_neg_grad_loss_all_edges"] > 1 - 1e-4 for r in runs if r["outputs"] == 1)
    assert keff.markdown(numbers).count("\n| float32 | 12 |") == 4
