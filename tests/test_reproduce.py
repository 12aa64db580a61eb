"""The paper's reproduction: its measures on cases with known answers, and the pipeline end to end."""

import json
import os
import re
import shlex
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import jaxnet as jn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The session's smoke reproduction (about 20 compiled programs) runs in the setup of the first
# test that asks for it: more than the default per-test limit on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(900)

# ---------------------------------------------------------------- stuck-state measures


def test_stuck_measures_on_hand_made_cycles():
    period2 = np.array([[0, 5], [1, 5]] * 20)  # edge 0 goes up, down, up, ...; edge 1 never moves
    m = jn.stuck_measures(period2, window=20)
    assert m == dict(distinct_states=2.0, distinct_per_step=0.1, move_rate=0.5, undo_fraction=1.0, cycle_length=2.0)

    # a 3-cycle: (0,0) -> (1,0) -> (1,1) -> (0,0): each edge's moves alternate up and down
    period3 = np.array([[0, 0], [1, 0], [1, 1]] * 20)
    m = jn.stuck_measures(period3, window=30)
    assert m["cycle_length"] == 3 and m["distinct_states"] == 3 and m["undo_fraction"] == 1.0
    assert m["move_rate"] == pytest.approx(4 / 6)

    frozen = np.full((40, 3), 7)
    m = jn.stuck_measures(frozen)
    assert m["cycle_length"] == 1 and m["distinct_states"] == 1 and m["move_rate"] == 0
    assert np.isnan(m["undo_fraction"])

    walk = np.stack([np.arange(40), np.arange(40) // 2], axis=1)  # keeps going one way: never stuck
    m = jn.stuck_measures(walk, window=20)
    assert m["cycle_length"] == 0 and m["distinct_states"] == 20 and m["undo_fraction"] == 0
    assert m["move_rate"] == pytest.approx(0.75)

    with pytest.raises(ValueError, match="window must lie in"):
        jn.stuck_measures(walk, window=40)


def test_spread_over_keys_known_answer():
    reference = np.array([0.5, 1.0, 2.0, 4.0])
    sigma = 0.3
    finals = np.stack([reference * np.exp(sigma), reference * np.exp(-sigma)])  # ln k = ln ref +- sigma
    m = jn.spread_over_keys(finals, reference)
    assert m["spread"] == pytest.approx(sigma) and m["deviation"] == pytest.approx(sigma)
    shifted = jn.spread_over_keys(finals * np.exp(0.4), reference)  # same spread, farther away
    assert shifted["spread"] == pytest.approx(sigma)
    assert shifted["deviation"] == pytest.approx(np.sqrt(sigma**2 + 0.4**2))
    same = jn.spread_over_keys(np.stack([reference] * 3))
    assert same["spread"] == 0 and np.isnan(same["deviation"])
    # identical runs spread exactly 0, even where the mean of three equal logs rounds (a one-pass
    # variance gave 3.8e-17 here)
    k = np.random.default_rng(0).uniform(0.1, 2, size=200)
    assert jn.spread_over_keys(np.stack([k] * 3))["spread"] == 0


# ---------------------------------------------------------------- trajectories and desync at p = 1


def test_conductance_trajectory_is_the_trained_run():
    net = jn.triangular_lattice(3, 3)
    task = jn.iris_task(jax.random.key(1), net, n_train=30)
    rule = jn.rules.desync(jn.rules.discrete(0.5, 32, 0.1, 1.0, spacing="resistance", noise_std=1e-5), 0.5)
    k0 = rule.rule.levels[jnp.full(net.n_edges, 16)].astype(jnp.float32)
    key = jax.random.key(2)
    state, ks = jn.conductance_trajectory(net, task, rule, k0, key=key, steps=30, every=3)
    assert ks.shape == (11, net.n_edges)
    np.testing.assert_array_equal(ks[0], k0)
    # the runs by hand: one program for both step counts (traced steps, as test_learning checks,
    # give int steps' numbers bit for bit; two eager calls compiled the run twice)
    by_hand = jax.jit(lambda steps: jn.train(net, task, rule, k0, key=key, steps=steps, log_every=steps, intervals=1))
    for steps in (9, 30):
        result = by_hand(jnp.int32(steps))
        jn.check(result)
        np.testing.assert_array_equal(ks[steps // 3], result.conductances)
    np.testing.assert_array_equal(state.conductances, ks[-1])
    with pytest.raises(ValueError, match="multiple of every"):
        jn.conductance_trajectory(net, task, rule, k0, key=key, steps=10, every=3)


PIPELINE = """
[sweep]
steps = 30
log_every = 10
networks = 2
seeds = 2

[network]
kind = "triangular"
rows = 3
cols = 3
k0_low = 0.2
k0_high = 0.5

[task]
kind = "iris"
n_train = 30

[[rule]]
kind = "discrete"
eta = 0.5
n_states = 32
spacing = "resistance"
k_min = 0.1
k_max = 1.0
noise_std = 1e-5
p = [1.0, 0.5]
"""


def test_desync_at_p1_is_sync_in_the_pipeline(tmp_path):
    """p = 1 inside a desync group (wrapped, masks drawn) equals the unwrapped synchronous group."""
    wrapped = jn.sweep(PIPELINE, str(tmp_path / "wrapped"), quiet=True)
    alone = jn.sweep(PIPELINE.replace("p = [1.0, 0.5]", "p = 1.0"), str(tmp_path / "alone"), quiet=True)
    sync = wrapped[wrapped.p == 1].reset_index(drop=True)
    columns = ["run", "step", "loss", "test_loss", "accuracy", "test_accuracy", "at_bound"]
    pd.testing.assert_frame_equal(sync[columns], alone[columns])
    k_wrapped, k_alone = jn.load_conductances(str(tmp_path / "wrapped")), jn.load_conductances(str(tmp_path / "alone"))
    for run in k_alone:
        np.testing.assert_array_equal(k_wrapped[run], k_alone[run])
    assert not np.array_equal(k_wrapped[4], k_wrapped[0])  # and p = 0.5 is another run


# ---------------------------------------------------------------- the whole reproduction, smoke scale


def test_every_scale_of_every_claim_is_a_valid_config():
    from jaxnet.paper import CLAIMS, SCALES, config_path

    for scale, overrides in SCALES.items():
        for names in CLAIMS.values():
            for name in names:
                points = jn.load_config(config_path(name), overrides[name]).points()
                assert points and all(p["steps"] >= 1 for p in points), (scale, name)


def test_reproduction_writes_report_numbers_and_figures(smoke_reproduction):
    out, document = smoke_reproduction
    on_disk = json.load(open(os.path.join(out, "claims.json")))
    assert on_disk["scale"] == "smoke" and set(on_disk["claims"]) == {"1", "2", "3", "gd"}
    report = open(os.path.join(out, "report.md")).read()
    for heading in ("## Claim 1", "## Claim 2", "## Claim 3", "## Coupled learning against gradient descent",
                    "## Failed runs", "None: every run of every sweep completed",
                    "## Where this simulation and the paper differ", "numbers mean nothing"):
        assert heading in report
    claims = on_disk["claims"]
    for claim in claims.values():
        for figure in claim["figures"]:
            assert os.path.getsize(os.path.join(out, figure)) > 10_000
            assert f"]({figure})" in report
        for sweep in claim["sweeps"].values():
            assert sweep["config"]["sweep"] and sweep["runs"] > 0
            assert sweep["failed_run_count"] == 0 and sweep["failed_runs"] == []
    # every row of claim 1 compares a p with the same networks' p = 1 runs
    sync = [r for r in claims["1"]["rows"] if r["p"] == 1]
    assert sync and all(r["vs_sync"]["median"] == 1 for r in sync)
    # trajectories repeated by hand end where the sweep's runs ended
    assert all(s["trajectory_matches_sweep"] == 1 for s in claims["2"]["stuck"])
    assert {s["p"] for s in claims["2"]["stuck"]} == {1.0, 0.5}
    # claim 3: p = 1 full batch has no noise: zero spread and zero deviation from itself
    assert claims["3"]["summary"]["desync:1.0"]["deviation"]["median"] == 0
    assert claims["3"]["summary"]["desync:1.0"]["spread"]["median"] == 0  # identical runs: exactly 0
    assert "| desync | 1.0 | 6 | 0 [0, 0] | 0 [0, 0] |" in report
    # the differences quote the smoke scale that ran, not the shipped configs
    assert "(16 nodes)" in report and "potentiometers of 16 taps" in report and "128 taps" not in report
    assert claims["3"]["matches"] and all(m["b_by_spread"] == 2 for m in claims["3"]["matches"])
    # cosines are cosines, in both precisions
    assert {c["dtype"] for c in claims["gd"]["cosine"]} == {"float32", "float64"}
    assert all(-1 <= c["cosine"]["median"] <= 1 for c in claims["gd"]["cosine"])


def test_reproduction_refuses_another_scale_and_unknown_claims(smoke_reproduction):
    out, _ = smoke_reproduction
    with pytest.raises(ValueError, match="holds a reproduction at scale 'smoke', not 'quick'"):
        jn.reproduce(out, scale="quick")
    with pytest.raises(ValueError, match="unknown claim '4'"):
        jn.reproduce(out, scale="smoke", claims="4")
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        jn.reproduce(out, scale="huge")
    a_file = os.path.join(out, "report.md")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        jn.reproduce(a_file, scale="smoke")


def test_float64_sweep_without_x64_is_an_error_not_float32(tmp_path):
    with jax.enable_x64(False):
        with pytest.raises(jn.ConfigError, match="needs 64-bit JAX"):
            jn.sweep(PIPELINE.replace("seeds = 2", "seeds = 2\ndtype = \"float64\""), str(tmp_path / "x"))


def test_readme_reproduce_command_runs(smoke_reproduction, capsys):
    """README's `jaxnet reproduce` lines, at smoke scale on the session's reproduction."""
    from jaxnet import cli

    out, _ = smoke_reproduction
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    lines = [line.split("#")[0].strip() for block in re.findall(r"```bash\n(.*?)```", readme, re.S)
             for line in block.splitlines()]
    commands = [line for line in lines if line.startswith("jaxnet reproduce")]
    assert commands
    for command in commands:
        argv = [out if a.startswith("out/") else "--smoke" if a in ("--quick", "--full") else a
                for a in shlex.split(command)[1:]]
        assert cli.main(argv) == 0, command
    assert "report:" in capsys.readouterr().out


def test_notebook_runs(smoke_reproduction, monkeypatch):
    """The notebook executes top to bottom (at smoke scale, on the session's reproduction)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    out, _ = smoke_reproduction
    monkeypatch.setenv("JAXNET_REPRODUCE_SCALE", "smoke")
    monkeypatch.setenv("JAXNET_REPRODUCE_OUT", out)
    notebooks = os.path.join(ROOT, "notebooks")
    names = sorted(n for n in os.listdir(notebooks) if n.endswith(".ipynb"))
    assert names
    for name in names:
        notebook = nbformat.read(os.path.join(notebooks, name), as_version=4)
        nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": notebooks}}).execute()
        shown = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
        assert any("image/png" in o.get("data", {}) for o in shown), name
        assert not any(o.get("output_type") == "error" for o in shown), name


# ---------------------------------------------------------------- failed runs in the analyses


def _fail(table, run, step):
    """`table` with `run` marked failed at `step`: its rows after it gone, that step's NaN."""
    table = table[(table.run != run) | (table.step <= step)].copy()
    mine = table.run == run
    table.loc[mine, ["status", "failure", "failed_step"]] = ["failed", "cg_residual", step]
    table.loc[mine & (table.step == step), ["loss", "normalized_loss", "test_loss", "accuracy", "test_accuracy"]] = np.nan
    return table.reset_index(drop=True)


def test_analyses_count_failed_runs_and_take_medians_over_the_completed(smoke_reproduction, tmp_path):
    from jaxnet.paper import analyze_claim1, analyze_claim3
    from jaxnet.paper.report import claim1 as report_claim1, failed_runs

    out, document = smoke_reproduction
    assert document["failed_runs"] == 0
    rows = document["claims"]["1"]["rows"]
    assert all(r["failed_runs"] == 0 and r["runs"] == r["loss_ratio"]["n"] for r in rows)
    sweeps = os.path.join(out, "sweeps")
    table = jn.load_sweep(os.path.join(sweeps, "claim1"))
    desync = table[table.p == 0.5]
    sync_run, desync_run = int(table[table.p == 1].run.max()), int(desync.run.min())  # two networks
    failed = _fail(_fail(table, desync_run, 5), sync_run, 0)
    numbers = analyze_claim1(failed, jn.load_sweep(os.path.join(sweeps, "claim1_ceiling")), str(tmp_path))
    for row in numbers["rows"]:
        assert row["failed_runs"] == 1 and row["loss_ratio"]["n"] == row["runs"] - 1
    by_p = {r["p"]: r for r in numbers["rows"]}
    assert by_p[0.5]["vs_sync"]["n"] == by_p[0.5]["runs"] - 2  # its own failure and its network's sync run
    numbers["sweeps"] = {"claim1": dict(document["claims"]["1"]["sweeps"]["claim1"], failed_runs=[
        dict(run=desync_run, point=1, grid={"p": 0.5}, failure="cg_residual", failed_step=5, message="step 5: CG ...")])}
    report = report_claim1(numbers)
    assert "*n* counts the completed runs" in report and "(1 failed)" in report
    listing = failed_runs({"1": numbers})
    assert f"`claim1`, grid point 1 (p=0.5): 1 run(s) failed (cg_residual at step 5): runs {desync_run}" in listing
    # claim 3: a failed run (NaN conductances) is counted, not measured
    d, m = (jn.load_sweep(os.path.join(sweeps, name)) for name in ("claim3_desync", "claim3_minibatch"))
    k = {name: jn.load_conductances(os.path.join(sweeps, "claim3_" + name)) for name in ("desync", "minibatch")}
    run = int(d[d.p == 0.5].run.min())
    k["desync"][run] = np.full_like(k["desync"][run], np.nan)
    three = analyze_claim3(_fail(d, run, 5), m, k, str(tmp_path))
    assert three["counts"]["desync:0.5"]["failed_runs"] == 1 and three["counts"]["desync:1.0"]["failed_runs"] == 0
    assert all(np.isfinite(v["spread"]["median"]) for v in three["summary"].values())


def test_a_second_reproduce_reuses_the_analysis_unless_a_sweep_changed(smoke_reproduction, tmp_path):
    """Rerunning `reproduce` on a complete directory reads each claim's analysis back (same
    claims.json, same report); a sweep whose files changed is analysed again."""
    shared, first = smoke_reproduction
    out = str(tmp_path / "paper")
    shutil.copytree(shared, out)
    assert jn.reproduce(out, scale="smoke", quiet=True) == first  # (whatever the shared copy's history)
    kept = {name: os.stat(os.path.join(out, "analysis", name)).st_mtime_ns
            for name in os.listdir(os.path.join(out, "analysis"))}
    assert sorted(kept) == sorted(f"claim_{c}.json" for c in first["claims"])
    again = jn.reproduce(out, scale="smoke", quiet=True)
    assert again == first
    assert all(os.stat(os.path.join(out, "analysis", n)).st_mtime_ns == t for n, t in kept.items())
    results = os.path.join(out, "sweeps", "cl_vs_gd", "config.json")
    os.utime(results, ns=(os.stat(results).st_atime_ns, os.stat(results).st_mtime_ns + 10**9))
    jn.reproduce(out, scale="smoke", quiet=True)
    changed = [n for n, t in kept.items() if os.stat(os.path.join(out, "analysis", n)).st_mtime_ns != t]
    assert changed == ["claim_gd.json"]
