"""The numerical contract: right to tolerance, or an error that says why; never a crash.

Failures leave compiled programs as result codes (`jn.RESULTS`), never through host
callbacks, so a failed instance on one device cannot strand another (tested on two CPU
devices in a subprocess); the host raises `jn.SolverError` naming the failed instances.
"""

import os
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnet as jn
from helpers import Unclipped


@pytest.fixture(scope="module")
def small():
    net = jn.square_lattice(3, 3)
    task = jn.regression_task(jax.random.key(1), net, n_train=4, n_test=2)
    return net, task


def _batched(net, task, rule, steps=20, log_every=10):
    return jax.jit(jax.vmap(lambda k0, key: jn.train(net, task, rule, k0, key=key, steps=steps, log_every=log_every)))


def test_errors_share_one_base_class():
    for error in (jn.SolverError, jn.ConfigError, jn.SweepError):
        assert issubclass(error, jn.JaxnetError)
    assert issubclass(jn.ConfigError, ValueError) and issubclass(jn.SweepError, ValueError)


def test_one_bad_instance_is_nan_and_named(small):
    net, task = small
    rule = jn.rules.coupled_learning(alpha=1.0, eta=1e-3)
    k0 = jnp.ones((4, net.n_edges)).at[2, 3].set(-1.0)  # caught only inside jit
    result = _batched(net, task, rule)(k0, jax.random.split(jax.random.key(0), 4))
    codes = np.asarray(result.failure.result._value)
    assert codes.tolist() == [0, 0, int(jn.RESULTS.bad_conductance._value), 0]
    assert np.all(np.isnan(result.loss[2])) and np.all(np.isnan(result.conductances[2]))
    good = jn.train(net, task, rule, jnp.ones(net.n_edges), key=jax.random.split(jax.random.key(0), 4)[0],
                    steps=20, log_every=10)
    np.testing.assert_allclose(result.loss[0], good.loss, rtol=1e-5)
    with pytest.raises(jn.SolverError, match=r"1 of 4 instances failed(.|\n)*instance 2: step 0: a conductance"):
        jn.check(result)
    with pytest.raises(jn.SolverError, match="instance 2"):
        result.check()


def test_train_outside_jit_raises(small):
    net, task = small
    rule = jn.rules.coupled_learning(alpha=1.0, eta=1e-3)
    with pytest.raises(ValueError, match="edge 3 is negative"):  # concrete: found at Python time
        jn.train(net, task, rule, jnp.ones(net.n_edges).at[3].set(-1.0), key=jax.random.key(0), steps=2)


def test_a_rule_returning_non_positive_conductances_stops_the_run(small):
    net, task = small
    # the range named is that of the values at fault, the rule's output (k - 5 = -4)
    with pytest.raises(jn.SolverError, match=r"step 0: the rule returned conductances that are not finite and "
                                             r"positive.*conductances span \[-4, -4\]"):
        jn.train(net, task, Unclipped(), jnp.ones(net.n_edges), key=jax.random.key(0), steps=5)
    result = _batched(net, task, Unclipped(), steps=4, log_every=1)(
        jnp.ones((2, net.n_edges)), jax.random.split(jax.random.key(0), 2))
    assert np.all(np.isfinite(result.loss[:, 0])) and np.all(np.isnan(result.loss[:, 1:]))
    assert np.all(np.asarray(result.failure.step) == 0)
    np.testing.assert_array_equal(result.state.conductances, jnp.ones((2, net.n_edges)))  # last good state


@pytest.mark.parametrize("field, value", [("p", 1.5), ("eta", 0.0)])
def test_traced_hyperparameters_are_checked_as_eager_ones(small, field, value):
    """Traced, the broken constraint is named in the words of the eager check."""
    net, task = small
    says = re.escape({"p": "p must lie in [0, 1]", "eta": "eta must be > 0"}[field])
    with pytest.raises(ValueError, match=says):
        jn.rules.desync(jn.rules.coupled_learning(1.0, value if field == "eta" else 1e-3), value if field == "p" else 1.0)

    def run(v, key):
        p, eta = (v, 1e-3) if field == "p" else (1.0, v)
        rule = jn.rules.desync(jn.rules.coupled_learning(1.0, eta), p)
        return jn.train(net, task, rule, jnp.ones(net.n_edges), key=key, steps=3)

    result = jax.jit(jax.vmap(run))(jnp.array([value, 0.5]), jax.random.split(jax.random.key(0), 2))
    assert np.all(np.isnan(result.loss[0])) and np.all(np.isfinite(result.loss[1]))
    with pytest.raises(jn.SolverError, match="1 of 2 instances failed") as error:
        jn.check(result)
    assert re.search("instance 0: step 0: a hyperparameter is out of its range: " + says, str(error.value))
    assert "instance 1" not in str(error.value)


def test_a_state_carried_into_another_rule_keeps_its_tree_structure(small):
    """The words a state's failure keeps are those of the rule it began with: a `fori_loop`
    carrying a coupled-learning state through desync's steps (the same rule state) compiles."""
    net, task = small
    rule = jn.rules.coupled_learning(1.0, 1e-3)
    start = jn.initial_state(net, task, rule, jnp.ones(net.n_edges), jax.random.key(0))
    ahead = jax.jit(lambda s: jax.lax.fori_loop(
        0, 2, lambda i, s: jn.train(net, task, jn.rules.desync(rule, 0.5), s, steps=2).state, s))(start)
    assert int(ahead.step) == 4 and ahead.failure.constraints == start.failure.constraints
    jn.check(ahead)


def test_normalized_loss_of_a_continued_run_is_that_of_the_whole_run(small):
    net, task = small
    rule = jn.rules.coupled_learning(alpha=1.0, eta=1e-3)
    whole = jn.train(net, task, rule, jnp.ones(net.n_edges), key=jax.random.key(0), steps=20, log_every=5)
    first = jn.train(net, task, rule, jnp.ones(net.n_edges), key=jax.random.key(0), steps=10, log_every=5)
    second = jn.train(net, task, rule, first.state, steps=10, log_every=5)
    joined = np.concatenate([first.normalized_loss, second.normalized_loss[1:]])
    np.testing.assert_array_equal(joined, whole.normalized_loss)
    assert second.normalized_loss[0] < 1


def test_solve_under_jit_is_nan_and_eager_raises():
    net = jn.Network.from_edges([[0, 1], [1, 2], [2, 3], [1, 4], [4, 2]])
    fixed, vals = jnp.array([0, 3]), jnp.array([1.0, 0.0])
    f = jax.jit(lambda k: jn.solve(net, k, fixed, vals, return_info=True))
    for k, names in [(jnp.array([1.0, 1.0, 1.0, -1.0, 1.0]), ["bad_conductance"]),
                     (jnp.array([1.0, 1.0, jnp.nan, 1.0, 1.0]), ["bad_conductance"]),
                     (jnp.array([1.0, 1.0, 1.0, 0.0, 0.0]), ["singular", "nonfinite"])]:  # node 4 floating
        voltages, info = f(k)
        assert np.all(np.isnan(voltages))
        assert any(bool(info.result == getattr(jn.RESULTS, name)) for name in names)
    with pytest.raises(jn.SolverError, match=r"^jaxnet.solve: CG did not reach.*backward error reached [\d.e-]+, required <= 1e-12"):
        jn.solve(net, jnp.ones(5), fixed, vals, solver=jn.CG(max_steps=1, rtol=1e-12))


def test_an_adjoint_failure_makes_the_gradient_nan():
    net = jn.square_lattice(6, 6)
    task = jn.regression_task(jax.random.key(0), net, n_train=4, n_test=0)
    k = jax.random.uniform(jax.random.key(1), (net.n_edges,), minval=0.5, maxval=2.0)
    physics = jn.Physics(net, task.inputs, task.outputs, task.ground, task.x_train, task.y_train,
                         jn.CG(max_steps=3))
    grad = jax.jit(jax.grad(lambda k: physics.loss(k)[0]))(k)
    assert np.all(np.isnan(grad))
    gd = jn.rules.gradient_descent(optax.sgd(0.1))
    # Warm-started at the exact solution, the forward solve passes with no iteration and only
    # the (cold) adjoint fails: the rule's measurement names the adjoint.
    exact = jn.Physics(net, task.inputs, task.outputs, task.ground, task.x_train, task.y_train, jn.Dense(),
                       jn.Dense().init(net, task.inputs.shape[0] + task.outputs.shape[0], k.dtype))
    warm = jn.Physics(net, task.inputs, task.outputs, task.ground, task.x_train, task.y_train,
                      jn.CG(max_steps=3), exact.responses(k)[2].solver_state)
    _, _, meas = jax.jit(lambda k: gd.update(jax.random.key(0), k, warm, gd.init(None, k)))(k)
    assert bool(meas.info.result == jn.RESULTS.adjoint) and int(meas.info.iterations) == 0
    assert np.isnan(meas.info.residual)  # the adjoint's own is unknown; not the forward solve's, which passed
    with pytest.raises(jn.SolverError, match="CG's iteration cap too low.*raise its max_steps"):
        jn.check(meas.info)
    with pytest.raises(jn.SolverError, match="step 0: CG did not reach"):
        jn.train(net, task, gd, k, key=jax.random.key(0), steps=2, solver=jn.CG(max_steps=3))


def _custom_calls(hlo_text: str) -> list[str]:
    return [line for line in hlo_text.splitlines() if "custom-call" in line and "callback" in line.lower()]


def _hlo(fn, *args) -> str:
    """The HLO `fn` lowers to for `args`, before XLA's passes: a host callback is a custom call
    that JAX's lowering writes and XLA's passes never add, so any in the compiled program is
    here too. Not compiling spares the test most of its time (the nonlinear train's XLA compile)."""
    return fn.lower(*args).as_text(dialect="hlo")


def test_compiled_train_and_solve_hold_no_host_callback(small):
    """No host callback in train's program (linear and nonlinear, gradient rule, cosine) or solve's."""
    import equinox as eqx

    control = jax.jit(lambda x: eqx.error_if(x, x > 0, "boom"))
    assert _custom_calls(_hlo(control, 1.0))  # the detector sees a callback where there is one
    assert _custom_calls(control.lower(1.0).compile().as_text())  # and keeps seeing it once compiled
    net, task = small
    diodes = net.with_elements(jn.Elements.from_kinds(["smooth_diode"] * net.n_edges, leak=0.01))
    cases = [(net, jn.rules.desync(jn.rules.coupled_learning(1.0, 1e-3), 0.5)),
             (net, jn.rules.gradient_descent(optax.adam(0.1))),  # adjoint solves, and the cosine's
             (diodes, jn.rules.equilibrium_propagation(1.0, 0.1))]  # Newton and its adjoint
    for network, rule in cases:
        fn = jax.jit(jax.vmap(lambda k0, key: jn.train(network, task, rule, k0, key=key, steps=2, track_cosine=True)))
        text = _hlo(fn, jnp.ones((2, net.n_edges)), jax.random.split(jax.random.key(0), 2))
        assert _custom_calls(text) == [], (type(rule).__name__, _custom_calls(text)[:1])
    fixed = jnp.concatenate([task.inputs, task.ground])
    values = jnp.zeros((3, fixed.shape[0]))
    for network in (net, diodes):
        solve = jax.jit(jax.grad(lambda k: jnp.sum(jn.solve(network, k, fixed, values))))
        assert _custom_calls(_hlo(solve, jnp.ones(net.n_edges))) == []


SHARDED = textwrap.dedent("""
    import os, time
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax, jax.numpy as jnp, numpy as np
    import jaxnet as jn
    assert jax.device_count() == 2
    net = jn.square_lattice(4, 4)
    task = jn.regression_task(jax.random.key(1), net)
    rule = jn.rules.desync(jn.rules.coupled_learning(alpha=1.0, eta=1e-3), p=0.5)
    k0 = jnp.ones((4, net.n_edges)).at[1, 0].set(-1.0)
    k0, keys = jn.shard_instances((k0, jax.random.split(jax.random.key(2), 4)))
    run = jax.jit(jax.vmap(lambda k, key: jn.train(net, task, rule, k, key=key, steps=50, log_every=10)))
    start = time.time()
    result = jax.block_until_ready(run(k0, keys))
    print("seconds", round(time.time() - start, 1))
    print("nan", np.isnan(np.asarray(result.loss)).all(axis=1).tolist())
    try:
        jn.check(result)
    except jn.SolverError as e:
        print("raised", type(e).__name__, str(e).splitlines()[1].strip())
""")


def test_sharded_program_with_a_failing_instance_survives(tmp_path):
    """The minimal case of the crash: 4 instances on 2 CPU devices, one with a negative
    conductance. The process ends normally within seconds; the host check names instance 1."""
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "nan [False, True, False, False]" in done.stdout, done.stdout
    assert "raised SolverError instance 1: step 0: a conductance" in done.stdout, done.stdout


def test_linear_only_physics_methods_refuse_a_nonlinear_network(small):
    net, task = small
    diodes = net.with_elements(jn.Elements.from_kinds(["smooth_diode"] * net.n_edges, leak=0.01))
    physics = jn.Physics(diodes, task.inputs, task.outputs, task.ground, task.x_train, task.y_train)
    k = jnp.ones(net.n_edges)
    for method in ("responses", "free_and_nudge", "free_and_nudge_drops"):
        args = (k,) if method == "responses" else (k, 0.1)
        with pytest.raises(ValueError, match=f"Physics.{method} solves the linear .* nonlinear elements"):
            getattr(physics, method)(*args)
    assert np.all(np.isfinite(physics.free_outputs(k)))  # the Newton path serves it


NAN_CG = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    import jaxnet as jn
    net = jn.square_lattice(4, 4)
    solve = jax.jit(lambda k: jn.solve(net, k, jnp.array([0, 15]), jnp.array([1.0, 0.0]), solver=jn.CG(),
                                       return_info=True))
    voltages, info = solve(jnp.ones(net.n_edges).at[3].set(jnp.nan))
    print("nan", bool(np.isnan(voltages).all()), int(info.iterations))
""")


def test_cg_on_nan_input_ends(tmp_path):
    """NaN in CG's system (a NaN conductance under jit; a failed forward solve's cotangent in
    the adjoint) ends CG at once: NaN compares False everywhere, so a loop that waited for it
    to converge would never end."""
    script = tmp_path / "nan_cg.py"
    script.write_text(NAN_CG)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "nan True" in done.stdout, done.stdout


def test_a_node_between_off_transistors_is_singular_not_zero_volts(x64):
    """Balanced at the start (no current flows at 0 V) but undetermined: Newton takes a step
    anyway, and its linear solve sees the singular Jacobian."""
    net = jn.Network.from_edges([[0, 1], [1, 2]])
    net = net.with_elements(jn.Elements.from_kinds(["transistor"] * 2, threshold=1.0, leak=0.0))
    with pytest.raises(jn.SolverError, match="singular"):
        jn.solve(net, jnp.array([0.5, 0.5]), jnp.array([0, 2]), jnp.array([1.0, 0.0]))


def test_non_finite_source_values_under_jit_are_a_result_code():
    net = jn.square_lattice(3, 3)
    solve = jax.jit(lambda v: jn.solve(net, jnp.ones(net.n_edges), jnp.array([0, 8]), v, return_info=True))
    voltages, info = solve(jnp.array([jnp.inf, 0.0]))
    assert np.all(np.isnan(voltages)) and bool(info.result == jn.RESULTS.nonfinite)
    with pytest.raises(jn.SolverError, match="a source value is not finite"):
        jn.check(info)


def test_the_elimination_answers_only_for_the_instances_cholesky_refuses():
    """In a vmapped batch, an instance that float32 Cholesky cannot resolve (nine decades) is
    answered by the elimination, within 1e-6 of float64; the other keeps its Cholesky answer,
    bit for bit, so batching changes nothing."""
    net = jn.square_lattice(6, 6)
    hard = jnp.asarray(10 ** np.random.default_rng(1).uniform(-9, 0, 120)[60:], jnp.float32)
    easy = jnp.asarray(np.random.default_rng(2).uniform(0.5, 2.0, 60), jnp.float32)
    fixed, values = jnp.array([0, 35, 5]), jnp.array([1.0, 0.0, 0.3])
    solve = lambda k: jn.solve(net, k, fixed, values, solver=jn.Dense())  # noqa: E731
    both = jax.jit(jax.vmap(solve))(jnp.stack([hard, easy]))
    np.testing.assert_array_equal(both[1], jax.jit(solve)(easy))
    with jax.enable_x64(True):
        truth = jn.solve(net, hard.astype(jnp.float64), fixed, values.astype(jnp.float64))
    assert float(jnp.abs(both[0] - truth).max()) < 1e-6


@pytest.mark.parametrize("field, value", [("rtol", float("inf")), ("rtol", 1.0), ("forward_rtol", 0.0),
                                          ("atol", float("inf"))])
def test_solver_tolerances_are_validated(field, value):
    for cls in (jn.Dense, jn.Auto) if field == "forward_rtol" else (jn.Dense, jn.CG, jn.Auto, jn.Newton):
        with pytest.raises(ValueError, match=field):
            cls(**{field: value})


def test_centered_equilibrium_propagation_with_too_large_a_beta_says_so():
    net = jn.disordered_network(jax.random.key(0), n_nodes=32, coordination=4.0)
    task = jn.regression_task(jax.random.key(1), net)
    diodes = net.with_elements(jn.Elements.from_kinds(["smooth_diode"] * net.n_edges, leak=0.01))
    rule = jn.rules.equilibrium_propagation(alpha=1.0, beta=0.1, centered=True)
    with pytest.raises(jn.SolverError, match="-beta nudge .* use a smaller beta"):
        jn.train(diodes, task, rule, jnp.ones(net.n_edges), key=jax.random.key(0), steps=2)


def test_the_singular_newton_case_under_jit_is_named_by_its_result_code():
    net = jn.Network.from_edges([[0, 1], [1, 2]])
    net = net.with_elements(jn.Elements.from_kinds(["transistor"] * 2, threshold=1.0, leak=0.0))
    solve = jax.jit(lambda k: jn.solve(net, k, jnp.array([0, 2]), jnp.array([1.0, 0.0]), return_info=True))
    _, info = solve(jnp.array([0.5, 0.5]))
    assert bool(info.result == jn.RESULTS.singular)
