"""A rule's bounds: declared by `jn.rules.Rule`, held as fields `k_min`, `k_max` by each rule that
has them, checked once (eager, traced, config), and applied once, by `Rule.step`: the clip of
`update`'s conductances that `train` takes each step. No rule clips in its own `update`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn
from helpers import Unclipped  # a custom rule without bounds that returns non-positive conductances


@pytest.fixture(scope="module")
def small():
    net = jn.square_lattice(3, 3)
    task = jn.regression_task(jax.random.key(1), net, n_train=4, n_test=2)
    return net, task


def physics_for(net, task):
    return jn.Physics(net, task.inputs, task.outputs, task.ground, task.x_train, task.y_train)


class Overshoot(jn.rules.Rule):
    """A custom rule that declares bounds and moves edges far past both: it does not clip."""

    k_min: float = 0.5
    k_max: float = 2.0

    def init(self, key, k):
        return None

    def update(self, key, k, physics, state):
        d, meas = physics.coupled_contrast(k, 1e-3)
        push = jnp.where(jnp.arange(k.shape[0]) % 2 == 0, -10.0, 10.0)  # below k_min, above k_max
        return k + push + 0 * d, state, meas

def test_the_base_class_declares_the_bounds():
    """`bounds`, the clip (`step`), the checks and the config keys come from `Rule`: a rule
    declares only the two fields."""
    rule = Overshoot()
    assert rule.bounds == (0.5, 2.0) and Overshoot(k_min=0.1, k_max=3.0).bounds == (0.1, 3.0)
    assert Overshoot.field_constraints() == {"k_min": "positive", "k_max": "positive"}
    assert "step" not in vars(Overshoot) and "bounds" not in vars(Overshoot)
    assert Unclipped().bounds == (0.0, float("inf")) and Unclipped.field_constraints() == {}
    cl = jn.rules.coupled_learning(alpha=1.0, eta=1e-3, k_min=0.2, k_max=3.0)
    assert cl.bounds == (0.2, 3.0) and jn.rules.desync(cl, 0.5).bounds == (0.2, 3.0)
    for cls in (jn.rules.CoupledLearning, jn.rules.EquilibriumPropagation, jn.rules.GradientDescent,
                jn.rules.Discrete):
        assert "step" not in vars(cls) and "bounds" not in vars(cls)
        assert {"k_min": "positive", "k_max": "positive"}.items() <= cls.field_constraints().items()
    assert "step" not in vars(jn.rules.Desync)  # its bounds are the wrapped rule's


def clip_ops(f, k) -> int:
    """Max, min and clamp operations at the top level of `f`'s program."""
    return sum(e.primitive.name in ("max", "min", "clamp") for e in jax.make_jaxpr(f)(k).jaxpr.eqns)


def test_the_clip_happens_once_in_step(small):
    net, task = small
    physics = physics_for(net, task)
    k = jnp.ones(net.n_edges)
    rule = Overshoot()
    cl = jn.rules.coupled_learning(alpha=1e3, eta=1e-3, k_min=0.9, k_max=1.1)
    # one program: each rule's update (raw) and step
    (raw, stepped), (cl_raw, cl_stepped) = jax.jit(lambda k: [
        (r.update(jax.random.key(0), k, physics, None)[0], r.step(jax.random.key(0), k, physics, None)[0])
        for r in (rule, cl)])(k)
    assert float(raw.min()) < 0.5 and float(raw.max()) > 2.0  # update does not clip
    np.testing.assert_array_equal(stepped, jnp.clip(raw, 0.5, 2.0))
    result = jn.train(net, task, rule, k, key=jax.random.key(0), steps=3)
    assert int(result.failure.result._value) == 0
    np.testing.assert_array_equal(np.unique(result.conductances), [0.5, 2.0])
    # `step` adds one clip to `update`; desync's `step` adds none to its own update (which
    # steps the wrapped rule, clipped once).
    one_clip = clip_ops(lambda k: jnp.clip(k, 0.5, 2.0), k)
    for r in (rule, jn.rules.coupled_learning(1.0, 1e-3)):
        ops = {m: clip_ops(lambda k: getattr(r, m)(jax.random.key(0), k, physics, None)[0], k) for m in ("update", "step")}
        assert ops["step"] - ops["update"] == one_clip, ops
    slow = jn.rules.desync(rule, 0.5)
    ops = {m: clip_ops(lambda k: getattr(slow, m)(jax.random.key(0), k, physics, None)[0], k) for m in ("update", "step")}
    assert ops["step"] == ops["update"], ops
    assert float(cl_raw.min()) < 0.9 and float(cl_raw.max()) > 1.1
    np.testing.assert_array_equal(cl_stepped, jnp.clip(cl_raw, 0.9, 1.1))


def test_a_rule_without_bounds_is_not_clipped_and_its_run_is_refused(small):
    net, task = small
    k = jnp.ones(net.n_edges)
    stepped, _, _ = Unclipped().step(jax.random.key(0), k, physics_for(net, task), None)
    np.testing.assert_array_equal(stepped, k - 5.0)
    with pytest.raises(jn.SolverError, match="the rule returned conductances that are not finite and positive"):
        jn.train(net, task, Unclipped(), k, key=jax.random.key(0), steps=2)


def test_discrete_and_desync_are_not_clipped_again(small):
    """Discrete keeps its levels (the top one rounds past k_max here, in float32); desync keeps
    an edge it does not draw as it is, even outside the bounds."""
    net, task = small
    lab = jn.rules.discrete(eta=0.1, n_states=128, k_min=0.05, k_max=7.3, spacing="resistance")
    levels = lab.levels.astype(jnp.float32)
    assert float(levels[-1]) > np.float32(7.3)
    k_top = jnp.full(net.n_edges, levels[-1])
    k_new, _, _ = lab.step(jax.random.key(0), k_top, physics_for(net, task), lab.init(jax.random.key(1), k_top))
    assert bool(jnp.all(jnp.isin(k_new, levels))) and bool(jnp.any(k_new == levels[-1]))
    cl = jn.rules.coupled_learning(alpha=1.0, eta=1e-3, k_min=0.5, k_max=1.5)
    k = jnp.full(net.n_edges, 3.0)  # above k_max
    k_new, _, _ = jn.rules.desync(cl, 0.5).step(jax.random.key(0), k, physics_for(net, task), None)
    drawn = k_new != 3.0
    assert 0 < drawn.sum() < net.n_edges and bool(jnp.all(k_new[drawn] <= 1.5))


def test_k_min_below_k_max_is_checked_eager_and_traced(small):
    net, task = small
    for build in (lambda lo, hi: Overshoot(k_min=lo, k_max=hi),
                  lambda lo, hi: jn.rules.coupled_learning(1.0, 1e-3, k_min=lo, k_max=hi)):
        with pytest.raises(ValueError, match="k_min must be < k_max"):
            build(2.0, 1.0)
        with pytest.raises(ValueError, match="k_min"):
            build(0.0, 1.0)

        def run(lo, key, build=build):
            return jn.train(net, task, build(lo, 1.0), jnp.full(net.n_edges, 0.8), key=key, steps=2)

        result = jax.jit(jax.vmap(run))(jnp.array([2.0, 0.1, 0.0]), jax.random.split(jax.random.key(0), 3))
        codes = np.asarray(result.failure.result._value).tolist()
        bad = int(jn.RESULTS.bad_hyperparameter._value)
        assert codes == [bad, 0, bad]
        with pytest.raises(jn.SolverError, match="instance 0: step 0: a hyperparameter is out of its range: "
                                                 "k_min must be < k_max") as error:
            jn.check(result)
        assert ("instance 2: step 0: a hyperparameter is out of its range: k_min must be > 0 (in float32 a k_min "
                "below 1.2e-38 flushes to 0)") in str(error.value)
        assert bool(jax.jit(lambda lo, build=build: build(lo, 1.0).invalid())(2.0))
        assert not bool(jax.jit(lambda lo, build=build: build(lo, 1.0).invalid())(0.1))
