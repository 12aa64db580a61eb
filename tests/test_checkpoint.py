import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnet as jn


class Interrupted(Exception):
    pass


def segment_program(net, task, rule):
    """The jitted segment: ten steps of every instance. Made once per test and shared by its
    runs (a program per `make_segment` call compiled the same segment again)."""
    @jax.jit
    def train_segment(k, i):
        run = lambda k0, key: jn.train(net, task, rule, k0, key=jax.random.fold_in(key, i), steps=10, log_every=10)  # noqa: E731
        r = jax.vmap(run)(k, jax.random.split(jax.random.key(0), k.shape[0]))
        return r.conductances, r.loss

    return train_segment


def make_segment(train_segment, stop_at=None):
    def segment(state, i):
        if i == stop_at:
            raise Interrupted
        k, loss = train_segment(state["k"], i)
        return {"k": k}, {"loss_first": loss[:, 0], "loss_last": loss[:, -1]}

    return segment


def test_interrupted_run_resumes_and_loses_nothing(tmp_path):
    net = jn.square_lattice(4, 4)
    task = jn.regression_task(jax.random.key(1), net)
    rule = jn.rules.desync(jn.rules.coupled_learning(alpha=0.5, eta=0.1), 0.5)
    program = segment_program(net, task, rule)
    init = {"k": jnp.ones((3, net.n_edges))}
    path = str(tmp_path / "run.npz")
    with pytest.raises(Interrupted):
        jn.run_resumable(make_segment(program, stop_at=3), init, 5, path, progress=False)
    state, records = jn.run_resumable(make_segment(program), init, 5, path, progress=False)
    ref_state, ref_records = jn.run_resumable(make_segment(program), init, 5, str(tmp_path / "ref.npz"), progress=False)
    np.testing.assert_array_equal(state["k"], ref_state["k"])
    assert records["loss_last"].shape == (5, 3)
    for name in ref_records:
        np.testing.assert_array_equal(records[name], ref_records[name])
    # a finished run returns its results without running anything
    done = jn.run_resumable(make_segment(program, stop_at=0), init, 5, path, progress=False)
    np.testing.assert_array_equal(done[0]["k"], ref_state["k"])


def test_train_state_with_typed_key_round_trips_and_config_is_fingerprinted(tmp_path):
    net = jn.square_lattice(3, 3)
    task = jn.regression_task(jax.random.key(1), net, n_train=4)
    rule = jn.rules.gradient_descent(optax.adam(0.1))
    go = jax.jit(lambda s: jn.train(net, task, rule, s, steps=5))

    def segment(state, i):
        r = go(state)
        return r.state, {"loss": r.loss[-1]}

    start = jn.initial_state(net, task, rule, jnp.ones(net.n_edges), jax.random.key(5))
    path = str(tmp_path / "run.npz")
    config = dict(rule=rule, task=task, net=net, steps=5)
    with pytest.raises(Interrupted):
        jn.run_resumable(lambda s, i: segment(s, i) if i < 2 else (_ for _ in ()).throw(Interrupted()),
                         start, 4, path, config=config, progress=False)
    state, records = jn.run_resumable(segment, start, 4, path, config=config, progress=False)
    ref, ref_records = jn.run_resumable(segment, start, 4, str(tmp_path / "ref.npz"), config=config, progress=False)
    assert jax.dtypes.issubdtype(state.key.dtype, jax.dtypes.prng_key)
    def plain(tree):
        is_key = lambda x: jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)  # noqa: E731
        return [np.asarray(jax.random.key_data(x) if is_key(x) else x) for x in jax.tree.leaves(tree)]

    for a, b in zip(plain(state), plain(ref)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(records["loss"], ref_records["loss"])
    other = dict(config, rule=jn.rules.gradient_descent(optax.adam(0.2)))
    with pytest.raises(ValueError, match=r"different run \(rule differ\)"):
        jn.run_resumable(segment, start, 4, path, config=other, progress=False)
    assert jn.fingerprint(r=optax.sgd(0.1)) != jn.fingerprint(r=optax.sgd(0.2))
    assert jn.fingerprint(r=optax.sgd(0.1)) == jn.fingerprint(r=optax.sgd(0.1))


def test_checkpoint_of_another_run_is_refused(tmp_path):
    net = jn.square_lattice(4, 4)
    task = jn.regression_task(jax.random.key(1), net)
    rule = jn.rules.coupled_learning(alpha=0.5, eta=0.1)
    program = segment_program(net, task, rule)
    path = str(tmp_path / "run.npz")
    jn.run_resumable(make_segment(program), {"k": jnp.ones((2, net.n_edges))}, 2, path, progress=False)
    with pytest.raises(ValueError, match="different run"):
        jn.run_resumable(make_segment(program), {"k": jnp.ones((4, net.n_edges))}, 2, path, progress=False)
    with pytest.raises(ValueError, match="different run"):
        jn.run_resumable(make_segment(program), {"k": jnp.ones((2, net.n_edges))}, 3, path, progress=False)


def test_checkpoint_of_another_jaxnet_version_is_refused(tmp_path, monkeypatch):
    import jaxnet._checkpoint as checkpoint

    net = jn.square_lattice(3, 3)
    task = jn.regression_task(jax.random.key(1), net, n_train=4)
    rule = jn.rules.coupled_learning(alpha=0.5, eta=0.1)
    program = segment_program(net, task, rule)
    path = str(tmp_path / "run.npz")
    init = {"k": jnp.ones((2, net.n_edges))}
    jn.run_resumable(make_segment(program), init, 2, path, progress=False)
    installed = checkpoint.jaxnet_version()
    assert jn.fingerprint(a=1)["jaxnet_version"] == installed
    monkeypatch.setattr(checkpoint, "jaxnet_version", lambda: "99.0.0")
    with pytest.raises(jn.SweepError, match=rf"written by jaxnet {installed}; this is jaxnet 99.0.0.*Delete it, "
                                            r"or give another path"):
        jn.run_resumable(make_segment(program), init, 2, path, progress=False)
