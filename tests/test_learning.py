import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import numpy_contrast, numpy_loss_and_grad, numpy_states

import jaxnet as jn

# Comparisons with float64 NumPy at tight tolerances; float32 is covered where it is named.
pytestmark = pytest.mark.usefixtures("x64")


@pytest.fixture(scope="module")
def setup():
    net = jn.disordered_network(jax.random.key(3), 48, 4.0)
    task = jn.regression_task(jax.random.key(4), net, n_train=10, n_test=10)
    edges = np.stack([net.senders, net.receivers], 1)
    return net, task, edges


def physics_for(net, task, solver=jn.Auto()):
    return jn.Physics(net, task.inputs, task.outputs, task.ground, task.x_train, task.y_train, solver)


# ---------------------------------------------------------------- states


@pytest.mark.parametrize("solver", [jn.Dense(), jn.CG()], ids=["dense", "cg"])
def test_clamped_state_from_shared_factorization(setup, solver):
    net, task, edges = setup
    k = jax.random.uniform(jax.random.key(0), (net.n_edges,), minval=0.5, maxval=2.0)
    physics = physics_for(net, task, solver)
    free, delta, _ = jax.jit(lambda k: physics.free_and_nudge(k, 0.3))(k)
    ref_free, ref_clamped = numpy_states(edges, k, net.n_nodes, task, task.x_train, task.y_train, 0.3)
    np.testing.assert_allclose(free, ref_free, atol=1e-9)
    np.testing.assert_allclose(free + delta, ref_clamped, atol=1e-9)


def test_contrast_keeps_float32_accuracy_at_small_nudge(setup):
    net, task, _ = setup
    k = jnp.ones(net.n_edges)
    task32 = jax.tree.map(lambda a: a.astype(jnp.float32) if a.dtype == jnp.float64 else a, task)
    d64, d32 = jax.jit(lambda k: (physics_for(net, task).coupled_contrast(k, 1e-5)[0],
                                  physics_for(net, task32).coupled_contrast(k.astype(jnp.float32), 1e-5)[0]))(k)
    assert d32.dtype == jnp.float32
    # a naive difference of squares would lose all digits here (d ~ 1e-6 of (dV)^2 ~ 1e-2)
    np.testing.assert_allclose(d32, d64, rtol=1e-3, atol=1e-4 * np.abs(d64).max())


def test_eta_to_zero_limit(setup):
    """(alpha/eta) d converges as eta -> 0 (to the linear response), with error O(eta)."""
    net, task, _ = setup
    k = jnp.ones(net.n_edges)
    update = lambda eta: physics_for(net, task).coupled_contrast(k, eta)[0] / eta  # noqa: E731
    limit = update(1e-7)
    for eta in (1e-2, 1e-3, 1e-4):
        err = np.abs(update(eta) - limit).max() / np.abs(limit).max()
        assert err < 5 * eta


# ---------------------------------------------------------------- rules against NumPy


def numpy_train(edges, n, task, k0, steps, update):
    k = np.array(k0, dtype=float)
    x, y = np.asarray(task.x_train), np.asarray(task.y_train)
    for _ in range(steps):
        k = update(k, x, y)
    return k


def test_coupled_learning_matches_numpy(setup):
    net, task, edges = setup
    alpha, eta, steps = 0.2, 0.1, 300
    k0 = jax.random.uniform(jax.random.key(1), (net.n_edges,), minval=0.5, maxval=1.5)
    rule = jn.rules.coupled_learning(alpha=alpha, eta=eta, k_min=0.3, k_max=3.0)
    result = jax.jit(lambda k0: jn.train(net, task, rule, k0, key=jax.random.key(0), steps=steps))(k0)

    def update(k, x, y):
        return np.clip(k + alpha / eta * numpy_contrast(edges, k, net.n_nodes, task, x, y, eta), 0.3, 3.0)

    ref = numpy_train(edges, net.n_nodes, task, k0, steps, update)
    assert np.abs(ref - np.asarray(k0)).max() > 0.05  # training moved the conductances
    np.testing.assert_allclose(result.conductances, ref, rtol=1e-6)
    assert result.loss[-1] < 0.5 * result.loss[0]


def test_gradient_descent_matches_numpy(setup):
    net, task, edges = setup
    lr, steps = 2.0, 200
    k0 = jax.random.uniform(jax.random.key(1), (net.n_edges,), minval=0.5, maxval=1.5)
    rule = jn.rules.gradient_descent(optax.sgd(lr), k_min=0.3, k_max=3.0)
    result = jax.jit(lambda k0: jn.train(net, task, rule, k0, key=jax.random.key(0), steps=steps))(k0)

    def update(k, x, y):
        return np.clip(k - lr * numpy_loss_and_grad(edges, k, net.n_nodes, task, x, y)[1], 0.3, 3.0)

    ref = numpy_train(edges, net.n_nodes, task, k0, steps, update)
    np.testing.assert_allclose(result.conductances, ref, rtol=1e-6)
    losses = [numpy_loss_and_grad(edges, k0, net.n_nodes, task, task.x_train, task.y_train)[0]]
    np.testing.assert_allclose(result.loss[0], losses[0], rtol=1e-10)


NUMPY_LEVELS = {
    "linear": lambda k_min, k_max, n: np.linspace(k_min, k_max, n),
    "geometric": lambda k_min, k_max, n: np.geomspace(k_min, k_max, n),
    # digital potentiometer taps: evenly spaced resistances, from 1/k_min down to 1/k_max
    "resistance": lambda k_min, k_max, n: 1 / np.linspace(1 / k_min, 1 / k_max, n),
}


@pytest.mark.parametrize("spacing", list(NUMPY_LEVELS))
def test_discrete_matches_numpy(setup, spacing):
    net, task, edges = setup
    n_states, k_min, k_max, eta, threshold = 32, 0.2, 2.0, 0.5, 1e-5
    rule = jn.rules.discrete(eta, n_states, k_min, k_max, spacing=spacing, threshold=threshold)
    levels = NUMPY_LEVELS[spacing](k_min, k_max, n_states)
    np.testing.assert_allclose(rule.levels, levels, rtol=1e-12)
    s0 = np.asarray(jax.random.randint(jax.random.key(5), (net.n_edges,), 8, 24))
    result = jn.train(net, task, rule, rule.levels[s0], key=jax.random.key(0), steps=40)
    s = s0.copy()
    for _ in range(40):
        d = numpy_contrast(edges, levels[s], net.n_nodes, task, np.asarray(task.x_train), np.asarray(task.y_train), eta)
        s = np.clip(s + np.sign(d) * (np.abs(d) > threshold), 0, n_states - 1).astype(int)
    np.testing.assert_allclose(result.conductances, levels[s], rtol=1e-12)
    assert (s != s0).any()
    assert result.loss[-1] < result.loss[0]


def test_discrete_stays_on_grid_with_lab_noise(setup):
    net, task, _ = setup
    rule = jn.rules.discrete(0.5, 16, 0.1, 1.0, spacing="geometric", offset_std=1e-4, noise_std=1e-4)
    result = jn.train(net, task, rule, rule.levels[jnp.full(net.n_edges, 8)], key=jax.random.key(0), steps=50)
    levels = np.asarray(rule.levels)
    assert np.abs(np.asarray(result.conductances)[:, None] - levels[None]).min(axis=1).max() < 1e-12
    with pytest.raises(ValueError, match="not on the level grid"):
        jn.train(net, task, rule, jnp.full(net.n_edges, 0.5), key=jax.random.key(0), steps=2)
    # conductances closed over inside jit are concrete: checked while tracing (once a crash)
    on_grid, off_grid = rule.levels[jnp.full(net.n_edges, 8)], jnp.full(net.n_edges, 0.5)
    offsets = jax.jit(lambda key: rule.init(key, on_grid).offset)(jax.random.key(0))
    np.testing.assert_allclose(offsets, rule.init(jax.random.key(0), on_grid).offset, rtol=1e-12)
    with pytest.raises(ValueError, match="not on the level grid"):
        jax.jit(lambda key: rule.init(key, off_grid).offset)(jax.random.key(0))


@pytest.mark.parametrize("make", [
    lambda key, net: jn.regression_task(key, net, random_matrix=True),
    lambda key, net: jn.regression_task(key, net),
    lambda key, net: jn.allostery_task(key, net, n_outputs=3),
    lambda key, net: jn.iris_task(key, net, n_train=30),
])
def test_task_data_do_not_depend_on_x64_mode(make):
    """A key gives the same task (terminals, data as float32) with 64-bit JAX on or off."""
    net = jn.square_lattice(4, 4)
    with jax.enable_x64(False):
        off = jax.tree.map(np.asarray, make(jax.random.key(3), net))
    with jax.enable_x64(True):
        on = jax.tree.map(np.asarray, make(jax.random.key(3), net))
    for a, b in zip(jax.tree.leaves(off), jax.tree.leaves(on)):
        as_used = (lambda x: x.astype(np.float32)) if a.dtype.kind == "f" else (lambda x: x)  # float32 runs
        np.testing.assert_array_equal(as_used(a), as_used(b))


def test_discrete_grid_check_accepts_float32_levels():
    for spacing in NUMPY_LEVELS:
        rule = jn.rules.discrete(0.1, 1024, 0.01, 100.0, spacing=spacing)
        levels32 = rule.levels.astype(jnp.float32)
        rule.init(jax.random.key(0), levels32)  # every level, in float32: accepted
        np.testing.assert_array_equal(rule.state_index(levels32), np.arange(1024))
        with pytest.raises(ValueError, match="edge 3"):
            rule.init(jax.random.key(0), levels32.at[3].set((levels32[3] + levels32[4]) / 2))


# ---------------------------------------------------------------- coupled learning vs gradient


def test_coupled_learning_aligns_with_gradient():
    rule = jn.rules.coupled_learning(alpha=1e-3, eta=1e-4)

    @jax.jit  # one program for the four networks (same shapes)
    def cosine(net, task, k):
        physics = physics_for(net, task)
        dk = rule.update(jax.random.key(0), k, physics, None)[0] - k
        grad, _ = jax.grad(physics.loss, has_aux=True)(k)
        return jnp.dot(dk, -grad) / jnp.linalg.norm(dk) / jnp.linalg.norm(grad)

    for seed in range(4):
        net = jn.disordered_network(jax.random.key(seed), 64, 4.5)
        task = jn.regression_task(jax.random.key(100 + seed), net)
        k = jax.random.uniform(jax.random.key(200 + seed), (net.n_edges,), minval=0.5, maxval=1.5)
        assert float(cosine(net, task, k)) > 0.9, seed


def test_track_cosine_is_one_for_sgd(setup):
    net, task, _ = setup
    rule = jn.rules.gradient_descent(optax.sgd(0.01))
    result = jn.train(net, task, rule, jnp.ones(net.n_edges), key=jax.random.key(0), steps=10, log_every=5, track_cosine=True)
    np.testing.assert_allclose(result.cosine[:-1], 1.0, atol=1e-9)
    assert np.isnan(result.cosine[-1])


# ---------------------------------------------------------------- tasks and the loop


@pytest.mark.parametrize("make_task", [jn.regression_task, jn.allostery_task, jn.iris_task])
def test_loss_falls_on_every_task(make_task):
    net = jn.disordered_network(jax.random.key(1), 64, 4.5)
    task = make_task(jax.random.key(2), net)
    rule = jn.rules.coupled_learning(alpha=0.5, eta=0.1)
    result = jn.train(net, task, rule, jnp.ones(net.n_edges), key=jax.random.key(3), steps=400, log_every=100)
    assert result.loss.shape == (5,)
    assert result.loss[-1] < 0.6 * result.loss[0]
    np.testing.assert_array_equal(result.steps, [0, 100, 200, 300, 400])
    if task.classification:
        assert result.accuracy.shape == result.test_accuracy.shape == (5,)
        assert result.accuracy[-1] > 0.6  # chance is 1/3


def test_iris_table_and_accuracy():
    features, labels = jn.load_iris()
    assert features.shape == (150, 4) and np.bincount(labels).tolist() == [50, 50, 50]
    net = jn.square_lattice(5, 5)
    task = jn.iris_task(jax.random.key(0), net, n_train=120)
    assert task.x_train.shape == (120, 4) and task.x_test.shape == (30, 4)
    k = jnp.ones(net.n_edges)
    result = jn.train(net, task, jn.rules.coupled_learning(alpha=0.1, eta=0.1), k, key=jax.random.key(0), steps=1)
    V = jn.solve(net, k, task.fixed_nodes, jnp.concatenate([task.x_train, jnp.zeros((120, 1))], 1))
    expected = np.mean(np.argmax(np.asarray(V)[:, np.asarray(task.outputs)], 1) == np.argmax(task.y_train, 1))
    np.testing.assert_allclose(result.accuracy[0], expected)


def test_logged_steps_and_normalized_loss(setup):
    net, task, _ = setup
    rule = jn.rules.coupled_learning(alpha=0.1, eta=0.1)
    result = jn.train(net, task, rule, jnp.ones(net.n_edges), key=jax.random.key(0), steps=25, log_every=10)
    np.testing.assert_array_equal(result.steps, [0, 10, 20, 25])
    assert result.loss.shape == result.test_loss.shape == (4,)
    np.testing.assert_allclose(result.normalized_loss, result.loss / result.loss[0])


def test_traced_steps_share_one_program_and_log_as_int_steps(setup):
    """`intervals=`: steps and log_every traced, one program for several step counts, and the
    numbers of the same call with int steps; a traced schedule that does not fit fails the run."""
    net, task, _ = setup
    rule = jn.rules.coupled_learning(alpha=0.1, eta=0.1)
    k0, key = jnp.ones(net.n_edges), jax.random.key(0)
    traced = jax.jit(lambda steps, log_every: jn.train(net, task, rule, k0, key=key, steps=steps, log_every=log_every,
                                                       intervals=3))
    for steps, log_every in ((25, 10), (12, 4)):
        ref = jax.jit(lambda: jn.train(net, task, rule, k0, key=key, steps=steps, log_every=log_every))()
        got = traced(jnp.int32(steps), jnp.int32(log_every))
        for field in ("steps", "loss", "test_loss", "conductances"):
            np.testing.assert_array_equal(getattr(got, field), getattr(ref, field))
    assert traced._cache_size() == 1
    bad = traced(jnp.int32(40), jnp.int32(10))  # four intervals, not three
    assert bool(bad.failure.result == jn.RESULTS.bad_hyperparameter) and np.isnan(bad.loss).all()
    with pytest.raises(jn.SolverError, match=r"out of its range: train's traced steps and log_every must satisfy"):
        jn.check(bad)


def test_minibatch(setup):
    net, task, _ = setup
    rule = jn.rules.coupled_learning(alpha=0.2, eta=0.1)
    k0 = jnp.ones(net.n_edges)
    a = jn.train(net, task, rule, k0, key=jax.random.key(0), steps=200, batch_size=3, log_every=50)
    b = jn.train(net, task, rule, k0, key=jax.random.key(1), steps=200, batch_size=3, log_every=50)
    assert a.loss[-1] < a.loss[0]
    assert not np.array_equal(a.conductances, b.conductances)  # different keys, different batches


# ---------------------------------------------------------------- desync


def test_desync_p1_is_synchronous_exactly(setup):
    net, task, _ = setup
    k0 = jnp.ones(net.n_edges)
    for rule in (jn.rules.coupled_learning(alpha=0.2, eta=0.1),
                 jn.rules.discrete(0.5, 16, 0.5, 1.5, noise_std=1e-4)):
        if isinstance(rule, jn.rules.Discrete):
            k0 = rule.levels[jnp.full(net.n_edges, 8)]
        sync = jn.train(net, task, rule, k0, key=jax.random.key(9), steps=30)
        desync = jn.train(net, task, jn.rules.desync(rule, 1.0), k0, key=jax.random.key(9), steps=30)
        np.testing.assert_array_equal(sync.conductances, desync.conductances)
        np.testing.assert_array_equal(sync.loss, desync.loss)


def test_desync_updates_fraction_p():
    net = jn.disordered_network(jax.random.key(0), 1000, 4.0)  # 2000 edges
    task = jn.regression_task(jax.random.key(1), net)
    physics = physics_for(net, task)
    k = jnp.ones(net.n_edges)
    sync_rule = jn.rules.coupled_learning(alpha=0.1, eta=0.1)
    k_sync = np.asarray(jax.jit(lambda: sync_rule.update(jax.random.key(0), k, physics, None)[0])())
    movable = k_sync != 1.0  # dead-end edges carry no current and never move
    assert movable.mean() > 0.8
    # one program for every p and key (p traced)
    update = jax.jit(lambda key, p: jn.rules.desync(sync_rule, p).update(key, k, physics, None)[0])
    for p in (0.1, 0.5, 0.9):
        fractions = []
        for i in range(5):
            k_new = np.asarray(update(jax.random.key(i), jnp.float32(p)))
            changed = k_new != 1.0
            np.testing.assert_array_equal(k_new[changed], k_sync[changed])  # same update where applied
            fractions.append(changed[movable].mean())
        sigma = np.sqrt(p * (1 - p) / movable.sum() / 5)
        assert abs(np.mean(fractions) - p) < 4 * sigma, (p, np.mean(fractions))


def test_vmap_over_hyperparameters(setup):
    net, task, _ = setup
    k0 = jnp.ones(net.n_edges)

    def run(alpha, eta, p):
        rule = jn.rules.desync(jn.rules.coupled_learning(alpha=alpha, eta=eta), p)
        return jn.train(net, task, rule, k0, key=jax.random.key(0), steps=20, log_every=20).loss

    ps = jnp.array([0.2, 0.6, 1.0])
    losses = jax.jit(jax.vmap(run))(jnp.array([0.1, 0.2, 0.3]), jnp.array([0.05, 0.1, 0.2]), ps)
    single = jax.jit(run)  # one unbatched program for the three (an eager train compiles on every call)
    for i in range(3):
        np.testing.assert_allclose(losses[i], single(*(a[i] for a in (jnp.array([0.1, 0.2, 0.3]), jnp.array([0.05, 0.1, 0.2]), ps))), rtol=1e-10)


# ---------------------------------------------------------------- batching, reproducibility


def test_vmap_over_instances_equals_loop(setup):
    net, task, _ = setup
    rule = jn.rules.desync(jn.rules.coupled_learning(alpha=0.2, eta=0.1), 0.5)
    k0s = jax.random.uniform(jax.random.key(0), (4, net.n_edges), minval=0.5, maxval=1.5)
    keys = jax.random.split(jax.random.key(1), 4)
    run = lambda k0, key: jn.train(net, task, rule, k0, key=key, steps=30, log_every=10)  # noqa: E731
    batched = jax.jit(jax.vmap(run))(k0s, keys)
    unbatched = jax.jit(run)  # one unbatched program for the four (an eager train compiles on every call)
    for i in range(4):
        single = unbatched(k0s[i], keys[i])
        jn.check(single)  # raises on a failed run, as the eager call did
        np.testing.assert_allclose(batched.conductances[i], single.conductances, rtol=1e-12)
        np.testing.assert_allclose(batched.loss[i], single.loss, rtol=1e-12)


def test_same_key_same_result_bit_for_bit(setup):
    net, task, _ = setup
    rule = jn.rules.desync(jn.rules.gradient_descent(optax.adam(0.01)), 0.3)
    run = jax.jit(lambda key: jn.train(net, task, rule, jnp.ones(net.n_edges), key=key, steps=20, batch_size=4))
    a, b, c = run(jax.random.key(5)), run(jax.random.key(5)), run(jax.random.key(6))  # one program, three calls
    for result in (a, b, c):
        jn.check(result)
    np.testing.assert_array_equal(a.conductances, b.conductances)
    assert not np.array_equal(a.conductances, c.conductances)


def test_cg_training_agrees_with_dense(setup):
    net, task, _ = setup
    rule = jn.rules.coupled_learning(alpha=0.2, eta=0.1)
    k0 = jnp.ones(net.n_edges)
    dense = jn.train(net, task, rule, k0, key=jax.random.key(0), steps=50, solver=jn.Dense())
    cg = jn.train(net, task, rule, k0, key=jax.random.key(0), steps=50, solver=jn.CG())
    np.testing.assert_allclose(cg.conductances, dense.conductances, rtol=1e-7)


# ---------------------------------------------------------------- bad arguments


def test_rules_refuse_bad_arguments():
    cl = jn.rules.coupled_learning(alpha=0.1, eta=0.1)
    for make, match in [
        (lambda: jn.rules.desync(cl, 1.5), r"p must lie in \[0, 1\]"),
        (lambda: jn.rules.desync(cl, -0.1), r"p must lie in \[0, 1\]"),
        (lambda: jn.rules.coupled_learning(alpha=0.1, eta=0.0), "eta must be > 0"),
        (lambda: jn.rules.coupled_learning(alpha=-1.0, eta=0.1), "alpha must be > 0"),
        (lambda: jn.rules.coupled_learning(alpha=0.1, eta=0.1, k_min=2.0, k_max=1.0), "k_min must be < k_max"),
        (lambda: jn.rules.discrete(0.1, 1, 0.1, 1.0), "n_states must be an int >= 2; got 1"),
        (lambda: jn.rules.discrete(0.1, 2.5, 0.1, 1.0), "n_states must be an int >= 2; got 2.5"),
        (lambda: jn.rules.discrete(0.1, 8, 1.0, 1.0), "k_min must be < k_max"),
        (lambda: jn.rules.discrete(-0.1, 8, 0.1, 1.0), "eta must be > 0"),
        (lambda: jn.rules.discrete(0.1, 8, 0.1, 1.0, spacing="log"), "spacing must be"),
        (lambda: jn.rules.gradient_descent(0.1), "optax.GradientTransformation"),
        (lambda: jn.rules.desync("sgd", 0.5), "wraps a jaxnet rule"),
    ]:
        with pytest.raises(ValueError, match=match):
            make()
    # an integer of NumPy's is an int (it is a static field: a Python int, equal and hashing alike)
    assert jn.rules.discrete(0.1, np.int64(16), 0.1, 1.0) == jn.rules.discrete(0.1, 16, 0.1, 1.0)


def test_tasks_refuse_bad_arguments(setup):
    net, task, _ = setup
    x, y = jnp.zeros((5, 2)), jnp.zeros((5, 1))
    for kwargs, match in [
        (dict(inputs=[0, 1], outputs=[1], ground=[2], x_train=x, y_train=y), "node 1 is used twice"),
        (dict(inputs=[0, 1], outputs=[3], ground=[3], x_train=x, y_train=y), "node 3 is used twice"),
        (dict(inputs=[0, 1, 2], outputs=[3], ground=[4], x_train=x, y_train=y), r"x_train must have shape \(examples, 3\)"),
        (dict(inputs=[0, 1], outputs=[3, 5], ground=[4], x_train=x, y_train=y), r"y_train must have shape \(examples, 2\)"),
        (dict(inputs=[0, 1], outputs=[3], ground=[4], x_train=x, y_train=y[:3]), "same, non-zero number"),
        (dict(inputs=[0, 1], outputs=[3], ground=[4], x_train=x, y_train=y, x_test=x), "give both x_test and y_test"),
    ]:
        with pytest.raises(ValueError, match=match):
            jn.Task(**kwargs)
    far = jn.Task(inputs=[0, 1], outputs=[net.n_nodes + 3], ground=[4], x_train=x, y_train=y)
    rule = jn.rules.coupled_learning(alpha=0.1, eta=0.1)
    k0 = jnp.ones(net.n_edges)
    with pytest.raises(ValueError, match="task outputs holds node 51, out of range"):
        jn.train(net, far, rule, k0, key=jax.random.key(0), steps=2)
    for kwargs, match in [
        (dict(k0=jnp.ones(3)), r"k0 must have shape"),
        (dict(k0=k0.at[2].set(-1.0)), "edge 2 is negative"),
        (dict(k0=k0.at[2].set(0.0)), "k0 must be > 0; edge 2"),
        (dict(batch_size=50), "batch_size must be None or between 1 and 10"),
        (dict(steps=0), "steps and log_every must be >= 1"),
        (dict(steps=5, log_every=2, intervals=2), r"steps \(5\) must lie in \(\(intervals - 1\) \* log_every"),
        (dict(intervals=0), "intervals must be None or an int >= 1"),
        (dict(key=None), "train needs key="),
    ]:
        args = dict(k0=k0, key=jax.random.key(0), steps=2) | kwargs
        with pytest.raises(ValueError, match=match):
            jn.train(net, task, rule, args.pop("k0"), **args)
    state = jn.train(net, task, rule, k0, key=jax.random.key(0), steps=2).state
    with pytest.raises(ValueError, match="a TrainState carries its own key"):
        jn.train(net, task, rule, state, key=jax.random.key(0), steps=2)


def test_non_finite_examples_are_refused(setup):
    """NaN examples: a ValueError when built eagerly; inside jit, NaN results whose check names them."""
    net, task, _ = setup
    x_bad = task.x_train.at[0, 0].set(jnp.nan)
    with pytest.raises(ValueError, match="x_train or y_train holds a non-finite value"):
        jn.Task(inputs=task.inputs, outputs=task.outputs, ground=task.ground, x_train=x_bad, y_train=task.y_train)
    rule = jn.rules.coupled_learning(alpha=0.1, eta=0.1)

    @jax.jit
    def run(x):  # the task is built from traced examples, so only the in-jit check can see them
        bad = jn.Task(inputs=task.inputs, outputs=task.outputs, ground=task.ground, x_train=x, y_train=task.y_train)
        return jn.train(net, bad, rule, jnp.ones(net.n_edges), key=jax.random.key(0), steps=3)

    assert np.all(np.isfinite(run(task.x_train).loss))
    result = run(x_bad)
    assert np.all(np.isnan(result.loss))
    with pytest.raises(jn.SolverError, match="the task's examples hold a non-finite value"):
        result.check()


def test_cg_that_cannot_converge_is_an_error_not_a_wrong_answer():
    net = jn.square_lattice(12, 12)
    task = jn.regression_task(jax.random.key(0), net)
    k0 = 10.0 ** jax.random.uniform(jax.random.key(1), (net.n_edges,), minval=-6, maxval=6)  # 12 decades
    rule = jn.rules.coupled_learning(alpha=0.01, eta=0.1)
    with pytest.raises(jn.SolverError, match=r"step 0: CG did not reach the tolerance.*backward error reached"):
        jn.train(net, task, rule, k0.astype(jnp.float32), key=jax.random.key(0), steps=2, solver=jn.CG())


def test_eager_physics_methods_compile_once_for_every_eta(setup, caplog):
    """Called outside jit, a Physics method is one compiled program per shapes: a new eta (or
    beta) is a new value, not a new program, and the answer is the jitted one's."""
    net, task, _ = setup
    physics = physics_for(net, task)
    k = jnp.ones(net.n_edges)
    physics.coupled_contrast(k, 0.1)
    physics.equilibrium_contrast(k, 0.1, centered=True)
    with jax.log_compiles(True), caplog.at_level("WARNING"):
        contrast, _ = physics.coupled_contrast(k, 0.2)
        physics.equilibrium_contrast(k, beta=0.3, centered=True)
    assert not [r for r in caplog.records if "Compiling" in r.getMessage()], caplog.text
    np.testing.assert_array_equal(contrast, jax.jit(lambda k: physics.coupled_contrast(k, 0.2)[0])(k))


def test_nudge_drops_equal_drops_of_the_states(setup):
    net, task, _ = setup
    k = jax.random.uniform(jax.random.key(3), (net.n_edges,), minval=0.5, maxval=2.0)
    physics = physics_for(net, task)
    free, delta, drop_free, drop_delta = jax.jit(
        lambda k: physics.free_and_nudge(k, 0.2)[:2] + physics.free_and_nudge_drops(k, 0.2)[:2])(k)
    np.testing.assert_allclose(drop_free, jn.edge_drops(net, free), atol=1e-12)
    np.testing.assert_allclose(drop_delta, jn.edge_drops(net, delta), atol=1e-12)


def test_physics_is_the_class_of_the_network_kind(setup):
    """`jn.Physics(...)` is a `LinearPhysics` or an `ElementPhysics` by the network; each refuses
    the other kind, copies and pickles as itself, and `method=` is `solver`'s deprecated name."""
    import copy
    import pickle

    net, task, _ = setup
    args = (task.inputs, task.outputs, task.ground, task.x_train, task.y_train)
    physics = jn.Physics(net, *args)
    assert type(physics) is jn.LinearPhysics and isinstance(physics, jn.Physics)
    for twin in (copy.copy(physics), copy.deepcopy(physics), pickle.loads(pickle.dumps(physics))):
        assert type(twin) is jn.LinearPhysics
    mixed = net.with_elements(jn.Elements.from_kinds(["diode"] + ["resistor"] * (net.n_edges - 1)))
    assert type(jn.Physics(mixed, *args)) is jn.ElementPhysics
    with pytest.raises(ValueError, match="LinearPhysics is for a network without nonlinear elements"):
        dataclasses.replace(physics, net=mixed)
    with pytest.raises(ValueError, match="ElementPhysics is for a network with nonlinear elements"):
        jn.ElementPhysics(net, *args)
    k = jnp.linspace(0.5, 1.5, net.n_edges)
    with pytest.warns(DeprecationWarning, match="method= is deprecated"):
        old = jn.Physics(net, *args, method="cg")
    np.testing.assert_array_equal(old.free_outputs(k), jn.Physics(net, *args, jn.CG()).free_outputs(k))
