"""The registry of sweep kinds: a new rule kind registered in one call runs in a sweep, its keys
derived from its class (traced fields, defaults, declared constraints)."""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet as jn
from jaxnet.sweep import Key, _registry, register_network, register_rule
from jaxnet.sweep._plan import plan
from jaxnet.sweep._runner import Runner


class PowerEfficientCoupledLearning(jn.rules.Rule):
    """Power-efficient coupled learning: `dk = (alpha / eta) mean[(1 - lam) dV_F^2 - dV_C^2]`,
    clipped to `[k_min, k_max]` (`lam = 0`: coupled learning)."""

    alpha: float
    eta: float
    lam: float = 0.0
    k_min: float = 1e-6
    k_max: float = 1e6

    constraints = {"alpha": "positive", "eta": "positive", "lam": "fraction"}

    def init(self, key, k):
        return None

    def update(self, key, k, physics, state):
        contrast, measurement = physics.coupled_contrast(k, self.eta)
        drop_free, _, _ = physics.free_and_nudge_drops(k, self.eta)
        d = contrast - self.lam * jnp.mean(drop_free**2, axis=0)
        return jnp.clip(k + (self.alpha / self.eta) * d, self.k_min, self.k_max), state, measurement


CONFIG = {
    # two runs per chunk in every group, so both rules run the same compiled shapes
    "sweep": {"steps": 20, "log_every": 10, "networks": 2, "seeds": 1, "chunk_size": 2, "dtype": "float32"},
    "network": {"kind": "disordered", "n_nodes": 16},
    "task": {"kind": "regression", "n_train": 4, "n_test": 2},
    "rule": [{"kind": "coupled_learning", "alpha": 0.5, "eta": 0.1},
             {"kind": "power_efficient", "alpha": 0.5, "eta": 0.1, "lam": [0.0, 0.5]}],
}


@pytest.fixture
def power_efficient(monkeypatch):
    """The rule kind registered for one test (the registry is restored after it)."""
    monkeypatch.setitem(_registry.KINDS, "rule", dict(_registry.KINDS["rule"]))
    return register_rule("power_efficient", PowerEfficientCoupledLearning)


def test_a_rule_kind_registered_in_one_call_runs_in_a_sweep(power_efficient, tmp_path):
    lam = power_efficient.keys["lam"]
    assert (lam.default, lam.static) == (0.0, False)  # a traced field, its default the class's
    table = jn.sweep(CONFIG, str(tmp_path / "sweep"), quiet=True)
    assert np.isfinite(table.loss).all() and (table.status == "ok").all()
    k = jn.load_conductances(str(tmp_path / "sweep"))
    plain, zero, half = (table[pick].sort_values(["network_seed", "step"]) for pick in (
        table.rule == "coupled_learning", table.lam == 0.0, table.lam == 0.5))
    # lam = 0 is coupled learning, bit for bit (same networks, tasks, seeds and compiled shapes)
    np.testing.assert_array_equal(zero.loss.to_numpy(), plain.loss.to_numpy())
    for a, b in zip(zero.run.unique(), plain.run.unique()):
        np.testing.assert_array_equal(k[a], k[b])
    assert not np.array_equal(half.loss.to_numpy(), plain.loss.to_numpy())  # lam weighs the free power
    assert np.isfinite(np.stack([k[r] for r in half.run.unique()])).all()


@pytest.mark.parametrize("rule,match", [
    ({"lam": 1.0}, r"rule.lam in \[\[rule\]\] table 1 is 1.0; allowed: a finite number in \[0, 1\)"),
    ({"lam": -0.5}, r"rule.lam .* is -0.5; allowed: a finite number in \[0, 1\)"),
    ({"lamb": 0.1}, r"unknown key 'lamb' in \[\[rule\]\] table 1. Did you mean 'lam'\?"),
    ({"k_min": 2.0, "k_max": 1.0}, r"\[\[rule\]\] kind 'power_efficient': k_min must be < k_max"),
])
def test_a_registered_kind_refuses_bad_values_naming_the_key(power_efficient, rule, match):
    config = {**CONFIG, "rule": [CONFIG["rule"][0], {**CONFIG["rule"][1], **rule}]}
    with pytest.raises(jn.ConfigError, match=match):
        jn.load_config(config)


def test_a_taken_name_or_a_clashing_key_is_refused(power_efficient):
    with pytest.raises(ValueError, match="'power_efficient' is already registered"):
        register_rule("power_efficient", PowerEfficientCoupledLearning)
    static_alpha = {"alpha": Key(1.0, lambda v: None, static=True)}  # one column, static for one kind only
    with pytest.raises(ValueError, match="key 'alpha' is static but traced for kind 'coupled_learning'"):
        register_rule("static_alpha", PowerEfficientCoupledLearning, keys=static_alpha)
    # A grid point holds every section's keys in one dict, and the table has a column for each:
    # a key named like another section's key, or like a results column, is refused.
    for taken, section in (("encoding", "task"), ("steps", "sweep"), ("n_nodes", "network")):
        with pytest.raises(ValueError, match=f"key '{taken}' is taken by the \\[{section}\\] section"):
            register_rule(f"with_{taken}", PowerEfficientCoupledLearning, keys={taken: Key(1.0, lambda v: None)})
    with pytest.raises(ValueError, match="key 'eta' is taken by the \\[rule\\] section"):
        register_network("ring_eta", lambda point, key: None, {"eta": Key(7, lambda v: None)})
    for column in ("step", "loss", "rule"):
        with pytest.raises(ValueError, match=f"key '{column}' is the name of a results column"):
            register_rule(f"with_{column}", PowerEfficientCoupledLearning, keys={column: Key(1.0, lambda v: None)})
    # a kind's keys are read per grid point: grid=False (a KeyError in the sweep before) is refused
    with pytest.raises(ValueError, match="key 'flip' has grid=False"):
        register_rule("with_flip", PowerEfficientCoupledLearning, keys={"flip": Key(False, lambda v: None, grid=False)})


def test_groups_share_networks_and_tasks_only_when_every_key_of_their_kinds_agrees():
    """Each kind's keys decide its networks and tasks: two groups that differ only in the Iris
    encoding get tasks of their own (one output per class, or one output)."""
    config = jn.load_config({"sweep": {"networks": 1}, "network": {"kind": "disordered", "n_nodes": 16},
                             "task": {"kind": "iris", "n_train": 20, "encoding": ["one_hot", "levels"],
                                      "readout": "nearest"},
                             "rule": {"kind": "coupled_learning", "alpha": 0.1, "eta": 0.1}})
    points, groups = plan(config)
    shared = {}
    outputs = [Runner(config, points, g, shared).network_and_task(0)[1].y_train.shape[1] for g in groups]
    assert outputs == [3, 1]


def test_a_kind_not_registered_is_named_before_its_keys():
    """A config (or a sweep directory being resumed) naming a kind this process has not
    registered: the error names the kind, not its keys as unknown."""
    config = {"network": {"kind": "ring", "ring_nodes": 5}, "rule": {"kind": "coupled_learning", "alpha": 1.0, "eta": 0.1}}
    with pytest.raises(jn.ConfigError, match=r"network.kind in \[network\] is 'ring'.*registered in this process"):
        jn.load_config(config)
    config["network"] = {"kind": "disordred"}
    with pytest.raises(jn.ConfigError, match="Did you mean 'disordered'"):
        jn.load_config(config)
