"""A run continued from its TrainState is the uninterrupted run, bit for bit (float32)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnet as jn

NET = jn.disordered_network(jax.random.key(0), 24, 4.0)
TASK = jn.regression_task(jax.random.key(1), NET, n_train=8, n_test=4)
DISCRETE = jn.rules.discrete(eta=0.1, n_states=32, k_min=0.2, k_max=2.0, offset_std=1e-3, noise_std=1e-3)
RULES = {
    "coupled": jn.rules.coupled_learning(alpha=0.5, eta=0.1),
    "adam": jn.rules.gradient_descent(optax.adam(0.05)),
    "desync(adam)": jn.rules.desync(jn.rules.gradient_descent(optax.adam(0.05)), 0.5),
    "desync(discrete)": jn.rules.desync(DISCRETE, 0.3),
}


def k_start(name):
    if "discrete" in name:
        return DISCRETE.levels[jnp.arange(NET.n_edges) % 32].astype(jnp.float32)
    return jnp.ones(NET.n_edges, jnp.float32)


def assert_continuation_exact(one, first, second):
    np.testing.assert_array_equal(second.conductances, one.conductances)
    for name in ("loss", "test_loss", "at_bound", "steps"):
        joined = np.concatenate([getattr(first, name), getattr(second, name)[..., 1:]], axis=-1)
        np.testing.assert_array_equal(joined, getattr(one, name), err_msg=name)
    for a, b in zip(jax.tree.leaves(one.state.rule_state), jax.tree.leaves(second.state.rule_state)):
        np.testing.assert_array_equal(a, b)


# desync(adam) and desync(discrete) cover adam's moments, the comparator offsets, the
# per-update noise and the desync mask together; cg covers the warm-start buffers.
@pytest.mark.parametrize("name,method", [("coupled", "dense"), ("desync(adam)", "dense"),
                                         ("desync(discrete)", "dense"), ("adam", "cg")])
def test_two_calls_equal_one(name, method):
    rule, kw = RULES[name], dict(log_every=5, solver={"dense": jn.Dense(), "cg": jn.CG()}[method], batch_size=4)
    start = jax.jit(lambda k, key: jn.train(NET, TASK, rule, k, key=key, steps=15, **kw))
    go_on = jax.jit(lambda state: jn.train(NET, TASK, rule, state, steps=15, **kw))
    whole = jax.jit(lambda k, key: jn.train(NET, TASK, rule, k, key=key, steps=30, **kw))
    k0, key = k_start(name), jax.random.key(7)
    first = start(k0, key)
    second = go_on(first.state)
    assert int(second.state.step) == 30 and list(np.asarray(second.steps)) == [15, 20, 25, 30]
    assert (int(second.solver_iterations) > 0) == (method == "cg")
    assert_continuation_exact(whole(k0, key), first, second)


def test_continuation_under_vmap_and_initial_state():
    rule = RULES["desync(adam)"]
    keys = jax.random.split(jax.random.key(3), 4)
    k0 = jnp.ones((4, NET.n_edges), jnp.float32) * jnp.linspace(0.5, 2.0, 4)[:, None]
    run = jax.jit(jax.vmap(lambda k, key: jn.train(NET, TASK, rule, k, key=key, steps=12, log_every=4)))
    go_on = jax.jit(jax.vmap(lambda s: jn.train(NET, TASK, rule, s, steps=12, log_every=4)))
    whole = jax.jit(jax.vmap(lambda k, key: jn.train(NET, TASK, rule, k, key=key, steps=24, log_every=4)))
    first = run(k0, keys)
    assert_continuation_exact(whole(k0, keys), first, go_on(first.state))
    # starting from an explicit initial state is starting from (k0, key)
    states = jax.vmap(lambda k, key: jn.initial_state(NET, TASK, rule, k, key))(k0, keys)
    np.testing.assert_array_equal(go_on(states).loss, first.loss)
