"""The sweep engine: config errors, the tidy table, resume after SIGKILL, two processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pandas as pd
import pytest

import jaxnet as jn
from jaxnet.sweep import Key, columns, register_rule

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
    config_keys = {"steps", "log_every", "batch_size", "dtype", "solver", "network", "n_nodes", "coordination",
                   "k0_low", "task", "n_train", "rule", "p", "alpha", "eta", "k_min", "k_max", "optimizer",
                   "learning_rate"}
    assert config_keys <= set(table.columns)
    for column in ("run", "point", "network_seed", "init_seed", "instance", "step", "edge_updates", "loss",
                   "normalized_loss", "test_loss", "at_bound", "status", "failure", "failed_step"):
        assert column in table.columns
    # Every column that is not a config key is a name a registered kind's key may not take.
    for own in set(table.columns) - set(columns()):
        with pytest.raises(ValueError, match=f"key '{own}' is the name of a results column"):
            register_rule(f"with_{own}", jn.rules.CoupledLearning, keys={own: Key(1.0, lambda v: None, "")})
    assert (table.status == "ok").all() and (table.failure == "").all() and (table.failed_step == -1).all()
    assert table.attrs["failed_runs"] == []
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
    invocation = meta["invocations"][0]
    assert meta["status"] == "complete" and invocation["programs"] == 4  # start and segment of 2 groups
    # (compiled in this process before, by another test of this worker, they compile in no time)
    assert (invocation["compile_s"] > 0) == (invocation["programs_compiled"] > 0)


def test_a_second_sweep_of_the_same_structure_compiles_nothing(small_sweep, tmp_path):
    """Another output directory, another grid of the traced keys: the process's programs serve,
    and the table is the one a fresh compile gives."""
    out, table = small_sweep
    again = jn.sweep(SMALL, str(tmp_path / "again"), quiet=True)
    pd.testing.assert_frame_equal(again, table)
    invocation = json.load(open(tmp_path / "again" / "metadata.json"))["invocations"][0]
    assert invocation["programs"] == 4 and invocation["programs_compiled"] == 0 and invocation["compile_s"] == 0
    # fewer steps (traced) run the same segment program; another seed's start program is new
    other = jn.sweep(SMALL, str(tmp_path / "other"), overrides={"sweep.steps": 30, "sweep.seed": 7}, quiet=True)
    invocation = json.load(open(tmp_path / "other" / "metadata.json"))["invocations"][0]
    assert invocation["programs"] == 4 and invocation["programs_compiled"] == 2 and other.step.max() == 30
    # another JAX setting that changes the draws (the programs were compiled under the other)
    partitionable = jax.config.jax_threefry_partitionable
    try:
        jax.config.update("jax_threefry_partitionable", not partitionable)
        flipped = jn.sweep(SMALL, str(tmp_path / "flipped"), quiet=True)
    finally:
        jax.config.update("jax_threefry_partitionable", partitionable)
    invocation = json.load(open(tmp_path / "flipped" / "metadata.json"))["invocations"][0]
    assert invocation["programs_compiled"] == 4
    assert not np.array_equal(flipped.loss, table.loss)  # the p = 0.5 runs draw other masks


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
    ({"swep.steps": 3}, r"override 'swep.steps' must be 'section.key' .* Did you mean 'sweep.steps'\?"),
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
    """sweep.solver, rtol, atol and max_steps become the solver object each run trains with."""
    config = jn.load_config(SMALL, {"sweep.solver": "cg", "sweep.rtol": 1e-6, "sweep.max_steps": 50})
    assert jn.rebuild_run(config, 0).train_kwargs["solver"] == jn.CG(rtol=1e-6, max_steps=50)
    assert jn.rebuild_run(SMALL, 0).train_kwargs["solver"] == jn.Auto()
    config = jn.load_config(SMALL, {"sweep.solver": "cg_then_dense", "sweep.atol": 1e-9})
    assert jn.rebuild_run(config, 0).train_kwargs["solver"] == jn.CGThenDense(jn.CG(atol=1e-9), jn.Dense(atol=1e-9))
    with pytest.raises(jn.ConfigError, match="the key 'method' in \\[sweep\\] is now 'solver'"):
        jn.load_config(SMALL, {"sweep.method": "cg"})
    with pytest.raises(jn.ConfigError, match=r"sweep.max_steps \(50\) caps CG's iterations, and sweep.solver = 'dense'"):
        jn.load_config(SMALL, {"sweep.solver": "dense", "sweep.max_steps": 50})
    mixed = jn.load_config(SMALL, {"sweep.solver": ["dense", "cg"], "sweep.max_steps": 50})  # cg uses it
    assert {p["solver"] for p in mixed.points()} == {"dense", "cg"}


def test_edge_update_clock_runs_each_p_for_steps_over_p():
    points = jn.load_config(SMALL, {"sweep.clock": "edge_updates", "rule.p": [1.0, 0.5, 0.05]}).points()
    runs = {(pt["rule"], pt["p"]): (pt["steps"], pt["log_every"]) for pt in points}
    assert runs[("coupled_learning", 1.0)] == (40, 10)
    assert runs[("coupled_learning", 0.5)] == (80, 20)
    assert runs[("gradient_descent", 0.05)] == (800, 200)


def test_a_p_grid_on_the_edge_update_clock_is_one_program(tmp_path, monkeypatch):
    """Each p runs steps / p steps, in chunks of one p: they share one start and one segment
    program; a run's rows are `train`'s by hand, and an interrupted sweep resumes to them."""
    from jaxnet.sweep._runner import Runner

    one_group = SMALL[: SMALL.index("[[rule]]\nkind = \"gradient_descent\"")]
    config = jn.load_config(one_group, {"sweep.clock": "edge_updates", "sweep.steps": 8, "sweep.log_every": 4,
                                        "sweep.seeds": 1, "rule.p": [1.0, 0.25]})
    table = jn.sweep(config, str(tmp_path / "whole"), quiet=True)
    meta = json.load(open(tmp_path / "whole" / "metadata.json"))
    assert len(meta["groups"]) == 1 and meta["groups"][0]["chunks"] == 2  # 3 runs per p, a chunk of one p each
    assert meta["invocations"][0]["programs"] == 2  # start and segment (every segment holds one interval)
    for run in (0, 5):  # p = 1 (8 steps) and 0.25 (32 steps)
        r = jn.rebuild_run(config, run)
        result = jn.train(r.net, r.task, r.rule, r.k0, key=r.key, **r.train_kwargs)
        rows = table[table.run == run].sort_values("step")
        np.testing.assert_array_equal(rows.step, result.steps)
        np.testing.assert_array_equal(rows.edge_updates, [0, 4, 8])
        np.testing.assert_allclose(rows.loss, result.loss, rtol=2e-5)

    segment, calls = Runner.segment, []

    def interrupted(self, *args):
        calls.append(args[2:])
        if len(calls) == 4:  # chunk 1 (p = 0.25), its second segment: progress.npz holds its first
            raise KeyboardInterrupt
        return segment(self, *args)

    monkeypatch.setattr(Runner, "segment", interrupted)
    with pytest.raises(KeyboardInterrupt):
        jn.sweep(config, str(tmp_path / "resumed"), quiet=True)
    assert calls == [(4, 4), (4, 4), (16, 16), (16, 16)]  # segments of one interval: 4 / p steps
    monkeypatch.setattr(Runner, "segment", segment)
    pd.testing.assert_frame_equal(jn.sweep(config, str(tmp_path / "resumed"), quiet=True), table)
    resumed = json.load(open(tmp_path / "resumed" / "metadata.json"))["invocations"]
    assert [i["network_steps"] for i in resumed] == [3 * 16]  # only the segment that was not saved


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
    """The console script's sweep command and its environment (with the test run's compile
    cache, as the console script's users have theirs)."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", PYTHONUNBUFFERED="1")
    env.pop("JAX_ENABLE_X64", None)
    return [sys.executable, "-m", "jaxnet.cli", "sweep", str(config), "--out", str(out), "--quiet", *extra], env


def test_sigkill_then_resume_and_two_processes_give_the_one_table(tmp_path):
    """Uninterrupted (1 process, 2 devices) == killed and resumed == 2 processes x 1 device.

    The processes share the run's compile cache, as the console script's users share theirs:
    the killed and the resumed process load the uninterrupted one's programs."""
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


def test_plot(small_sweep, tmp_path, monkeypatch, capsys):
    out, table = small_sweep
    path = str(tmp_path / "curves.png")
    jn.plot_sweep(table, path, x="edge_updates", hue="p", col="rule")
    assert os.path.getsize(path) > 10_000
    with pytest.raises(ValueError, match="'accuracy' holds no values"):
        jn.plot_sweep(table, path, y="accuracy")
    with pytest.raises(ValueError, match="'colour' is not a column"):
        jn.plot_sweep(table, path, hue="colour")
    with pytest.raises(ValueError, match="'normalised_loss' is not a column of the results. Did you mean 'normalized_loss'"):
        jn.plot_sweep(table, path, y="normalised_loss")  # what `jaxnet plot --y` passes
    # a sweep's directory works too; the default hue is every grid column that varies: one curve per point
    labels = jn.plot_sweep(out, path).axes[0].get_legend_handles_labels()[1]
    assert len(labels) == 4 and all(label.startswith("rule=") for label in labels), labels
    # the command line, every plot_sweep option: coupled learning and Adam facets, each its own y range
    from jaxnet import cli

    figures = []
    real = jn.plot_sweep
    monkeypatch.setattr(jn, "plot_sweep", lambda *args, **kwargs: figures.append(real(*args, **kwargs)))
    assert cli.main(["plot", out, "--x", "edge_updates", "--hue", "p", "--col", "rule", "--no-sharey", "--logx",
                     "--title", "Two rules", "--out", path]) == 0
    assert capsys.readouterr().out.strip() == path and os.path.getsize(path) > 10_000
    fig = figures[-1]
    assert fig.get_suptitle() == "Two rules" and all(ax.get_xscale() == "log" for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes] == ["rule=coupled_learning\nn = 6 runs per curve",
                                                   "rule=gradient_descent\nn = 12 runs"]
    assert fig.axes[0].get_ylim() != fig.axes[1].get_ylim()


def test_demo_runs_on_the_engine(tmp_path, capsys):
    from jaxnet import demo

    out = str(tmp_path / "demo")
    argv = ["--out", out, "--set", "sweep.steps=20", "--set", "sweep.log_every=10", "--set", "sweep.networks=2",
            "--set", "network.n_nodes=16"]
    demo.main(argv)
    printed = capsys.readouterr().out
    assert "coupled_learning    0.5" in printed and "gradient_descent" in printed
    assert os.path.getsize(os.path.join(out, "learning_curves.png")) > 10_000
    assert os.path.getsize(os.path.join(out, "network_before_after.png")) > 10_000
    table = jn.load_sweep(out)
    assert len(table) == 4 * 2 * 3
    # `make demo` again after an upgrade: the earlier version's run is run again, not refused
    path = os.path.join(out, "config.json")
    json.dump(dict(json.load(open(path)), jaxnet_version="0.0.1"), open(path, "w"))
    demo.main(argv)
    assert "holds a demo run of another jaxnet version: starting over" in capsys.readouterr().out
    pd.testing.assert_frame_equal(jn.load_sweep(out), table)


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
    # a sweep's directory with a file beside its own (the demo's pictures): fresh starts the sweep
    # over and keeps the file (it deleted the sweep, then refused the directory as foreign)
    tiny = {"sweep": {"steps": 2, "log_every": 2, "networks": 1}, "network": {"kind": "disordered", "n_nodes": 16},
            "task": {"kind": "regression"}, "rule": {"kind": "coupled_learning", "alpha": 0.1, "eta": 0.1}}
    out = tmp_path / "swept"
    first = jn.sweep(tiny, str(out), quiet=True)
    (out / "curves.png").write_bytes(b"a picture")
    pd.testing.assert_frame_equal(jn.sweep(tiny, str(out), fresh=True, quiet=True), first)
    assert (out / "curves.png").read_bytes() == b"a picture"


def test_a_grid_of_words_and_numbers_is_saved_as_words(tmp_path):
    """`bias = ["none", 1.0]`: the column one type (words), so the table is saved and loads (a
    column of both could not be written, at the end of the sweep). Every such axis takes this
    path (`batch_size = ["full", 1]` too); each of its values is a compiled group of its own."""
    config = {"sweep": {"steps": 4, "log_every": 2, "networks": 1, "batch_size": 1},
              "network": {"kind": "lab"},
              "task": {"kind": "iris", "encoding": "levels", "n_train": 30, "bias": ["none", 1.0]},  # readout: auto
              "rule": {"kind": "coupled_learning", "alpha": 1.0, "eta": 0.1}}
    table = jn.sweep(config, str(tmp_path / "out"), quiet=True)
    assert sorted(table.bias.unique()) == ["1.0", "none"] and table.batch_size.unique().tolist() == [1]
    assert table.groupby("bias").run.nunique().tolist() == [1, 1]
    assert jn.load_sweep(str(tmp_path / "out")).equals(table)
    assert jn.rebuild_run(jn.load_config(config), 0).task.readout == "nearest"  # levels' readout, as jn.iris_task


def test_equilibrium_propagation_is_a_sweep_rule():
    config = jn.load_config(os.path.join(ROOT, "examples", "cl_vs_gd.toml"), {"network.n_nodes": 16})
    runs = [jn.rebuild_run(config, run) for run in range(0, len(config.points()) * 64, 64)]
    ep = [r.rule for r in runs if isinstance(r.rule, jn.rules.EquilibriumPropagation)]
    assert len(ep) == 1 and ep[0].centered and ep[0].beta == np.float32(1e-3) and ep[0].alpha == 0.5
    with pytest.raises(jn.ConfigError, match="beta"):
        jn.load_config({"network": {"kind": "square", "rows": 3, "cols": 3}, "task": {"kind": "allostery"},
                        "rule": {"kind": "equilibrium_propagation", "alpha": 1.0}})


# ---------------------------------------------------------------- failed runs

# CG capped at 6 iterations: from a cold start at step 0 the networks of network seed 0 need
# more (they fail, cg_residual), the others converge. Chunks of 4 runs: chunk 0 holds runs 0-3,
# failed (0, 1) and completed (2, 3) runs in one compiled call; chunk 2 (runs 8-11) has none.
FAIL = """
[sweep]
steps = 20
log_every = 5
networks = 3
seeds = 2
solver = "cg"
max_steps = 6
checkpoint_every = 10
chunk_size = 4

[network]
kind = "square"
rows = 3
cols = 3

[task]
kind = "regression"
n_train = 4
n_test = 2

[[rule]]
kind = "coupled_learning"
alpha = [0.5, 1.0]
eta = 0.1
"""
FAILING = [0, 1, 6, 7]


@pytest.fixture(scope="module")
def failing_sweep(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sweep") / "failing")
    return out, jn.sweep(FAIL, out, quiet=True)


def _copy(out, tmp_path):
    import shutil

    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    return copy


def test_a_failed_run_is_recorded_and_every_other_run_completes(failing_sweep):
    out, table = failing_sweep
    runs = table.groupby("run").first()
    assert sorted(runs.index[runs.status == "failed"]) == FAILING
    assert set(runs.status) == {"ok", "failed"} and set(runs.network_seed[runs.status == "failed"]) == {0}
    failed = table[table.status == "failed"]
    assert (failed.failure == "cg_residual").all() and (failed.failed_step == 0).all()
    # rows up to the failed step, whose own measurement failed (NaN); nothing after it
    assert (failed.step <= failed.failed_step).all() and failed.loss.isna().all()
    assert len(failed) == len(FAILING)
    ok = table[table.status == "ok"]
    assert (ok.failure == "").all() and (ok.failed_step == -1).all()
    assert len(ok) == 8 * 5 and np.isfinite(ok.loss).all()
    assert (ok.groupby("run").step.max() == 20).all()
    pd.testing.assert_frame_equal(jn.load_sweep(out), table)
    k = jn.load_conductances(out)
    assert all(np.isnan(k[r]).all() for r in FAILING) and np.isfinite(k[2]).all()
    meta = json.load(open(os.path.join(out, "metadata.json")))
    assert meta["status"] == "complete" and meta["runs"] == 12
    records = meta["failed_runs"]
    assert table.attrs["failed_runs"] == records
    assert [f["run"] for f in records] == FAILING
    first = records[0]
    assert first["grid"] == {"alpha": 0.5} and (first["network_seed"], first["init_seed"]) == (0, 0)
    assert first["failure"] == "cg_residual" and first["failed_step"] == 0
    assert first["residual"] > first["tolerance"] == pytest.approx(2.0**-20)
    assert "CG did not reach the tolerance" in first["message"] and "raise jn.CG(max_steps" in first["message"]
    # the summary's rebuild recipe repeats the failed run by hand, and train raises there
    r = jn.rebuild_run(out, 0)
    assert r.train_kwargs == jn.rebuild_run(FAIL, 0).train_kwargs
    np.testing.assert_array_equal(r.k0, jn.rebuild_run(FAIL, 0).k0)
    with pytest.raises(jn.SolverError, match="CG did not reach the tolerance"):
        jn.train(r.net, r.task, r.rule, r.k0, key=r.key, **r.train_kwargs)


def test_rows_of_a_failed_run_end_at_its_failed_step():
    """A run failed at step 15 (segments of 10, logged every 5) keeps rows 0-15; 15 is the failed one."""
    from jaxnet.sweep._plan import logged_steps as _logged_steps
    from jaxnet.sweep._store import rows as _rows

    steps = _logged_steps([10, 10, 5], 5)
    np.testing.assert_array_equal(steps, [0, 5, 10, 15, 20, 25])
    np.testing.assert_array_equal(_logged_steps([10, 3], 4), [0, 4, 8, 10, 13])
    points = jn.load_config(FAIL).points()
    units = np.array([[0, 0, 0], [0, 0, 1]])
    loss = np.array([[1.0, 0.9, 0.8, np.nan, np.nan, np.nan], [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]])
    logs = {"step": np.stack([steps, steps]), "loss": loss, "at_bound": np.zeros_like(loss)}
    rows = _rows(points, units, np.array([0, 1]), logs, 6, np.array([jn.RESULTS.cg_residual._value, 0]),
                 np.array([15, -1]))
    failed, ok = rows[rows.run == 0], rows[rows.run == 1]
    assert list(failed.step) == [0, 5, 10, 15] and list(ok.step) == list(steps)
    assert set(failed.status) == {"failed"} and set(failed.failure) == {"cg_residual"} and set(failed.failed_step) == {15}
    assert set(ok.status) == {"ok"} and set(ok.failure) == {""} and set(ok.failed_step) == {-1}


def test_rerun_does_not_retry_and_retry_reruns_only_the_failed_runs(failing_sweep, tmp_path, capsys):
    out, table = failing_sweep
    copy = _copy(out, tmp_path)
    again = jn.sweep(FAIL, copy)
    printed = capsys.readouterr().out
    assert "already complete, 4 failed runs: nothing to do" in printed
    assert "run 6 (grid point 1: alpha=1.0; network seed 0, init seed 0): step 0: CG did not reach" in printed
    assert f"jn.rebuild_run({copy!r}, 0)" in printed and "--retry-failed" in printed
    pd.testing.assert_frame_equal(again, table)
    # mark a completed run's rows in the failed run's chunk: a retry keeps them as they are
    results = os.path.join(copy, "results.parquet")
    marked = pd.read_parquet(results)
    marked.loc[marked.run == 2, "loss"] = 123.0
    marked.to_parquet(results, index=False)
    retried = jn.sweep(FAIL, copy, retry_failed=True, quiet=True)
    assert (retried[retried.run == 2].loss == 123.0).all()
    others = retried.run != 2
    pd.testing.assert_frame_equal(retried[others].reset_index(drop=True), table[table.run != 2].reset_index(drop=True))
    invocations = json.load(open(os.path.join(copy, "metadata.json")))["invocations"]
    assert len(invocations) == 2 and invocations[1]["retried_runs"] == 4
    assert invocations[1]["network_steps"] == 2 * 4 * 20  # chunks 0 and 1, not chunk 2
    for run, k in jn.load_conductances(out).items():
        np.testing.assert_array_equal(jn.load_conductances(copy)[run], k)


def test_resume_with_a_failed_run_gives_the_uninterrupted_table(failing_sweep, tmp_path, monkeypatch):
    from jaxnet.sweep._runner import Runner as _Runner

    out, table = failing_sweep
    segment, calls = _Runner.segment, []

    def interrupted(self, inputs, state, steps, log_every):
        calls.append(steps)
        if len(calls) == 4:  # chunk 1 (failed runs 6, 7), its second segment: progress.npz holds its first
            raise KeyboardInterrupt
        return segment(self, inputs, state, steps, log_every)

    monkeypatch.setattr(_Runner, "segment", interrupted)
    with pytest.raises(KeyboardInterrupt):
        jn.sweep(FAIL, str(tmp_path / "r"), quiet=True)
    assert os.path.exists(tmp_path / "r" / "progress.npz")
    monkeypatch.setattr(_Runner, "segment", segment)
    resumed = jn.sweep(FAIL, str(tmp_path / "r"), quiet=True)
    pd.testing.assert_frame_equal(resumed, table)
    assert resumed.attrs["failed_runs"] == table.attrs["failed_runs"]
    k, k_ref = jn.load_conductances(str(tmp_path / "r")), jn.load_conductances(out)
    for run in k_ref:
        np.testing.assert_array_equal(k[run], k_ref[run])


def test_cli_exit_status_and_summary_with_failed_runs_on_two_devices(failing_sweep, tmp_path, capsys):
    """Sharded over 2 devices a failed run stops nobody; `jaxnet sweep` exits 3 and names it."""
    from jaxnet import cli

    out, table = failing_sweep
    config = tmp_path / "fail.toml"
    config.write_text(FAIL)
    cmd, env = _cli(config, tmp_path / "cli")
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == cli.FAILED_RUNS == 3, done.stderr[-3000:]
    assert "4 of 12 runs failed" in done.stderr
    assert "run 0 (grid point 0: alpha=0.5; network seed 0, init seed 0): step 0: CG did not reach" in done.stderr
    assert f"jn.rebuild_run({str(tmp_path / 'cli')!r}, 0)" in done.stderr
    two = jn.load_sweep(str(tmp_path / "cli"))
    assert len(json.load(open(tmp_path / "cli" / "metadata.json"))["devices"]) == 2
    pd.testing.assert_frame_equal(two, table)
    # run again: complete, nothing to do, the same exit status and summary
    assert cli.main(["sweep", str(config), "--out", str(tmp_path / "cli"), "--quiet"]) == 3
    assert "--retry-failed" in capsys.readouterr().err


def test_sweep_of_another_jaxnet_version_is_refused(failing_sweep, tmp_path):
    from jaxnet._checkpoint import jaxnet_version

    out, _ = failing_sweep
    copy = _copy(out, tmp_path)
    path = os.path.join(copy, "config.json")
    saved = json.load(open(path))
    assert saved["jaxnet_version"] == jaxnet_version()
    json.dump(dict(saved, jaxnet_version="0.0.1"), open(path, "w"))
    with pytest.raises(jn.SweepError, match=rf"written by jaxnet 0.0.1; this is jaxnet {jaxnet_version()}.*"
                                            r"another directory, or --fresh"):
        jn.sweep(FAIL, copy, quiet=True)
    saved.pop("jaxnet_version")
    json.dump(saved, open(path, "w"))
    with pytest.raises(jn.SweepError, match="written by a jaxnet from before version stamps"):
        jn.sweep(FAIL, copy, quiet=True)
    # A directory of jaxnet 0.2 (the key sweep.method, now sweep.solver) names the rename, at any
    # version it claims.
    sweep_section = {("method" if key == "solver" else key): value for key, value in saved["sweep"].items()}
    for version in ("0.2.0", jaxnet_version()):
        json.dump(dict(saved, sweep=sweep_section, jaxnet_version=version), open(path, "w"))
        with pytest.raises(jn.SweepError, match=rf"written by jaxnet {version}, whose config uses keys renamed in "
                                                r"jaxnet 0.3 \(sweep.method is now sweep.solver\)"):
            jn.sweep(FAIL, copy, quiet=True)


def test_plot_draws_completed_runs_and_counts_the_failed(failing_sweep, tmp_path):
    _, table = failing_sweep
    fig = jn.plot_sweep(table, str(tmp_path / "curves.png"), hue="alpha")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert len(labels) == 2 and all(label.endswith("(2 failed runs not drawn)") for label in labels), labels


def test_an_interrupted_command_says_how_to_resume(tmp_path, monkeypatch, capsys):
    """Ctrl-C in `jaxnet sweep`: no traceback, exit status 130, and the way to resume."""
    from jaxnet import cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(jn, "sweep", interrupted)
    out = str(tmp_path / "out")
    assert cli.main(["sweep", os.path.join(ROOT, "examples", "quick.toml"), "--out", out, "--no-compile-cache"]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
