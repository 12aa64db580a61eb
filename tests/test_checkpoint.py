import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn


class Interrupted(Exception):
    pass


def make_segment(net, task, rule, stop_at=None):
    @jax.jit
    def train_segment(k, i):
        run = lambda k0, key: jn.train(net, task, rule, k0, key=jax.random.fold_in(key, i), steps=10, log_every=10)  # noqa: E731
        r = jax.vmap(run)(k, jax.random.split(jax.random.key(0), k.shape[0]))
        return r.conductances, r.loss

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
    init = {"k": jnp.ones((3, net.n_edges))}
    path = str(tmp_path / "run.npz")
    with pytest.raises(Interrupted):
        jn.run_resumable(make_segment(net, task, rule, stop_at=3), init, 5, path, progress=False)
    state, records = jn.run_resumable(make_segment(net, task, rule), init, 5, path, progress=False)
    ref_state, ref_records = jn.run_resumable(make_segment(net, task, rule), init, 5, str(tmp_path / "ref.npz"), progress=False)
    np.testing.assert_array_equal(state["k"], ref_state["k"])
    assert records["loss_last"].shape == (5, 3)
    for name in ref_records:
        np.testing.assert_array_equal(records[name], ref_records[name])
    # a finished run returns its results without running anything
    done = jn.run_resumable(make_segment(net, task, rule, stop_at=0), init, 5, path, progress=False)
    np.testing.assert_array_equal(done[0]["k"], ref_state["k"])


def test_checkpoint_of_another_run_is_refused(tmp_path):
    net = jn.square_lattice(4, 4)
    task = jn.regression_task(jax.random.key(1), net)
    rule = jn.rules.coupled_learning(alpha=0.5, eta=0.1)
    path = str(tmp_path / "run.npz")
    jn.run_resumable(make_segment(net, task, rule), {"k": jnp.ones((2, net.n_edges))}, 2, path, progress=False)
    with pytest.raises(ValueError, match="different run"):
        jn.run_resumable(make_segment(net, task, rule), {"k": jnp.ones((4, net.n_edges))}, 2, path, progress=False)
    with pytest.raises(ValueError, match="different run"):
        jn.run_resumable(make_segment(net, task, rule), {"k": jnp.ones((2, net.n_edges))}, 3, path, progress=False)
