"""The sweep engine: config errors, the tidy table, resume after SIGKILL, two processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import jaxnet as jn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SMALL = """
[sweep]
steps = 40
log_every = 10
networks = 3
seeds = 2
checkpoint_every = 10
chunk_size = 4
dtype = "float32"

[network]
kind = "disordered"
n_nodes = 20

[task]
kind = "regression"
n_train = 8
n_test = 4

[[rule]]
kind = "coupled_learning"
alpha = 0.5
eta = 0.1
p = [1.0, 0.5]

[[rule]]
kind = "gradient_descent"
optimizer = "adam"
learning_rate = [0.01, 0.05]
"""


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sweep") / "small")
    return out, jn.sweep(SMALL, out, quiet=True)


def test_table_is_tidy(small_sweep):
    out, table = small_sweep
    points, instances, logged = 4, 6, 5
    assert len(table) == points * instances * logged
    assert not table.duplicated(["run", "step"]).any()
    config_keys = {"steps", "log_every", "batch_size", "dtype", "method", "network", "n_nodes", "coordination",
                   "k0_low", "task", "n_train", "rule", "p", "alpha", "eta", "k_min", "k_max", "optimizer",
                   "learning_rate"}
    assert config_keys <= set(table.columns)
    for column in ("run", "point", "network_seed", "init_seed", "instance", "step", "edge_updates", "loss",
                   "normalized_loss", "test_loss", "at_bound"):
        assert column in table.columns
    np.testing.assert_allclose(table["edge_updates"], table["p"] * table["step"])
    assert (table.loc[table.step == 0, "normalized_loss"] == 1).all()
    assert table.loc[table.rule == "gradient_descent", "alpha"].isna().all()
    assert set(table.learning_rate.dropna()) == {0.01, 0.05}
    final = table[table.step == 40]
    assert (final.normalized_loss < 1).mean() > 0.9  # learning happened
    assert set(table.network_seed) == {0, 1, 2} and set(table.init_seed) == {0, 1}
    k = jn.load_conductances(out)
    assert sorted(k) == sorted(table.run.unique())
    assert all(v.shape == (jn.rebuild_run(SMALL, 0).net.n_edges,) for v in k.values())
    meta = json.load(open(os.path.join(out, "metadata.json")))
    assert meta["status"] == "complete" and meta["invocations"][0]["compile_s"] > 0


def test_a_run_of_the_table_is_train_by_hand(small_sweep):
    out, table = small_sweep
    for run in (13, 20):  # coupled p=0.5, adam
        r = jn.rebuild_run(SMALL, run)
        result = jn.train(r.net, r.task, r.rule, r.k0, key=r.key, **r.train_kwargs)
        rows = table[table.run == run].sort_values("step")
        np.testing.assert_allclose(rows.loss, result.loss, rtol=2e-5)
        np.testing.assert_allclose(jn.load_conductances(out)[run], result.conductances, rtol=2e-5)


def test_same_networks_for_every_rule(small_sweep):
    _, table = small_sweep
    start = table[table.step == 0]
    # k0 = 1 everywhere: at step 0 every grid point and seed of a network seed sees the same
    # network and task, hence the same loss (to the float32 solver tolerance: coupled learning
    # measures by warm-started CG, gradient descent by Cholesky); different network seeds differ
    by_network = start.groupby("network_seed").loss
    assert ((by_network.max() - by_network.min()) / by_network.max() < 1e-3).all()
    assert start.groupby("network_seed").loss.first().round(4).nunique() == 3


def test_finished_sweep_does_nothing_and_changed_config_is_refused(small_sweep, capsys):
    out, table = small_sweep
    again = jn.sweep(SMALL, out)
    assert "already complete" in capsys.readouterr().out
    pd.testing.assert_frame_equal(again, table)
    with pytest.raises(jn.SweepError, match=r"sweep.steps \(40 -> 50\)"):
        jn.sweep(SMALL, out, overrides={"sweep.steps": 50})
    with pytest.raises(jn.SweepError, match=r"rule\[0\].alpha"):
        jn.sweep(SMALL, out, overrides={"rule.alpha": 0.7})


BAD = [
    ({"sweep.stesp": 3}, r"unknown key 'stesp' in \[sweep\]. Did you mean 'steps'\?"),
    ({"rule.alpah": 3}, r"unknown key 'alpah' in \[\[rule\]\] table 0. Did you mean 'alpha'\?"),
    ({"rule.p": 1.5}, r"rule.p in \[\[rule\]\] table 0 is 1.5; allowed: a finite number in \[0, 1\]"),
    ({"rule.eta": 0.0}, r"rule.eta .* is 0.0; allowed: a finite number in \(0, inf\)"),
    ({"rule.eta": []}, r"rule.eta .* is an empty list"),
    ({"rule.kind": "hebbian"}, r"rule.kind .* 'hebbian'; allowed: one of 'coupled_learning'"),
    ({"task.kind": "mnist"}, r"task.kind in \[task\] is 'mnist'; allowed: one of 'regression'"),
    ({"network.kind": "cube"}, r"network.kind in \[network\] is 'cube'"),
    ({"sweep.batch_size": 9}, r"sweep.batch_size \(9\) is larger than the training set \(8 examples"),
    ({"sweep.networks": [1, 2]}, r"sweep.networks .* cannot be a list"),
    ({"network.rows": 3}, r"network.rows in \[network\] is not used by kind 'disordered'"),
    ({"sweep.dtype": "float16"}, r"sweep.dtype .* allowed: one of 'float32', 'float64'"),
    ({"sweep.rtol": -1.0}, r"sweep.rtol .* allowed: 'auto' or a finite number > 0"),
    ({"sweep.clock": "edge_updates", "rule.p": 0.3},
     r"sweep.steps = 40 updates per edge \(clock = 'edge_updates'\) is not a whole number of steps at rule.p = 0.3"),
]


def test_solver_keys_reach_train():
    """sweep.method, rtol, atol and max_steps become the jn.Solver each run trains with."""
    config = jn.load_config(SMALL, {"sweep.method": "cg", "sweep.rtol": 1e-6, "sweep.max_steps": 50})
    assert jn.rebuild_run(config, 0).train_kwargs["method"] == jn.Solver("cg", rtol=1e-6, max_steps=50)
    assert jn.rebuild_run(SMALL, 0).train_kwargs["method"] == jn.Solver()


def test_edge_update_clock_runs_each_p_for_steps_over_p():
    points = jn.load_config(SMALL, {"sweep.clock": "edge_updates", "rule.p": [1.0, 0.5, 0.05]}).points()
    runs = {(pt["rule"], pt["p"]): (pt["steps"], pt["log_every"]) for pt in points}
    assert runs[("coupled_learning", 1.0)] == (40, 10)
    assert runs[("coupled_learning", 0.5)] == (80, 20)
    assert runs[("gradient_descent", 0.05)] == (800, 200)


@pytest.mark.parametrize("overrides,match", BAD)
def test_bad_config_names_the_key_and_writes_nothing(tmp_path, overrides, match):
    out = tmp_path / "never"
    with pytest.raises(jn.ConfigError, match=match):
        jn.sweep(SMALL, str(out), overrides=overrides)
    assert not out.exists()


def test_bad_config_from_the_command_line(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(SMALL.replace("[network]", "[netwrk]"))
    out = subprocess.run([sys.executable, "-m", "jaxnet.cli", "sweep", str(config), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2
    assert "unknown section [netwrk]. Did you mean [network]?" in out.stderr
    assert not (tmp_path / "o").exists()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(config, out, *extra, devices=2):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", PYTHONUNBUFFERED="1")
    env.pop("JAX_ENABLE_X64", None)
    return [sys.executable, "-m", "jaxnet.cli", "sweep", str(config), "--out", str(out), "--quiet", *extra], env


def test_sigkill_then_resume_and_two_processes_give_the_one_table(tmp_path):
    """Uninterrupted (1 process, 2 devices) == killed and resumed == 2 processes x 1 device."""
    config = tmp_path / "c.toml"
    one_group = SMALL[: SMALL.index("[[rule]]\nkind = \"gradient_descent\"")]
    config.write_text(one_group.replace("steps = 40", "steps = 120"))
    cmd, env = _cli(config, tmp_path / "whole")
    subprocess.run(cmd, env=env, check=True, cwd=ROOT)
    whole = jn.load_sweep(str(tmp_path / "whole"))

    cmd, env = _cli(config, tmp_path / "killed")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    deadline = time.time() + 120
    while not os.path.exists(tmp_path / "killed" / "progress.npz") and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not os.path.exists(tmp_path / "killed" / "results.parquet")
    subprocess.run(cmd, env=env, check=True, cwd=ROOT)
    pd.testing.assert_frame_equal(jn.load_sweep(str(tmp_path / "killed")), whole)
    resumed = json.load(open(tmp_path / "killed" / "metadata.json"))["invocations"]
    assert len(resumed) == 1 and resumed[0]["network_steps"] < 12 * 120  # it went on, not over

    port = _free_port()
    procs = []
    for i in range(2):
        cmd, env = _cli(config, tmp_path / "two", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                        "--process-id", str(i), devices=1)
        procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for p in procs:
        log = p.communicate(timeout=240)[0].decode()
        assert p.returncode == 0, log[-3000:]
    pd.testing.assert_frame_equal(jn.load_sweep(str(tmp_path / "two")), whole)


def test_plot(small_sweep, tmp_path):
    out, table = small_sweep
    path = str(tmp_path / "curves.png")
    jn.plot_sweep(table, path, x="edge_updates", hue="p", col="rule")
    assert os.path.getsize(path) > 10_000
    with pytest.raises(ValueError, match="'accuracy' holds no values"):
        jn.plot_sweep(table, path, y="accuracy")
    with pytest.raises(ValueError, match="'colour' is not a column"):
        jn.plot_sweep(table, path, hue="colour")


def test_demo_runs_on_the_engine(tmp_path, capsys):
    from jaxnet import demo

    out = str(tmp_path / "demo")
    demo.main(["--out", out, "--set", "sweep.steps=20", "--set", "sweep.log_every=10", "--set", "sweep.networks=2",
               "--set", "network.n_nodes=16"])
    printed = capsys.readouterr().out
    assert "coupled_learning    0.5" in printed and "gradient_descent" in printed
    assert os.path.getsize(os.path.join(out, "learning_curves.png")) > 10_000
    assert os.path.getsize(os.path.join(out, "network_before_after.png")) > 10_000
    assert len(jn.load_sweep(out)) == 4 * 2 * 3


def test_example_configs_are_valid():
    examples = os.path.join(ROOT, "examples")
    names = sorted(f for f in os.listdir(examples) if f.endswith(".toml"))
    assert len(names) >= 4
    for name in names:
        assert jn.load_config(os.path.join(examples, name)).points()


def test_out_dir_that_is_a_file_or_holds_other_files_is_refused(tmp_path):
    a_file = tmp_path / "results"
    a_file.write_text("not a sweep")
    with pytest.raises(jn.SweepError, match="is a file, not a directory"):
        jn.sweep(SMALL, str(a_file))
    with pytest.raises(jn.SweepError, match="is not empty and holds no sweep"):
        jn.sweep(SMALL, str(tmp_path))


def test_equilibrium_propagation_is_a_sweep_rule():
    config = jn.load_config(os.path.join(ROOT, "examples", "cl_vs_gd.toml"), {"network.n_nodes": 16})
    runs = [jn.rebuild_run(config, run) for run in range(0, len(config.points()) * 64, 64)]
    ep = [r.rule for r in runs if isinstance(r.rule, jn.rules.EquilibriumPropagation)]
    assert len(ep) == 1 and ep[0].centered and ep[0].beta == np.float32(1e-3) and ep[0].alpha == 0.5
    with pytest.raises(jn.ConfigError, match="beta"):
        jn.load_config({"network": {"kind": "square", "rows": 3, "cols": 3}, "task": {"kind": "allostery"},
                        "rule": {"kind": "equilibrium_propagation", "alpha": 1.0}})
