"""The report's words follow its numbers: perturb the numbers, the sentences flip.

Pure text on hand-made numbers (the shape of `claims.json`): nothing runs or compiles here.
"""

import numpy as np
import pytest

from jaxnet import spread_over_keys
from jaxnet.paper import analysis, keff, report
from jaxnet.paper.differences import differences
from jaxnet.paper.words import MARGIN, RULE, compare, fmt


def q(median, spread=0.0, n=4):
    """Quartiles around `median`, `spread` either side."""
    return dict(median=median, q25=median - spread, q75=median + spread, n=n)


def test_compare_is_the_stated_rule():
    assert compare(q(1.0)) == "the same"
    assert compare(q(1 - 2 * MARGIN, MARGIN / 2)) == "lower"  # the whole range below 1 - margin
    assert compare(q(1 - 2 * MARGIN, 2 * MARGIN)) == "the same"  # it reaches 1
    assert compare(q(1 - MARGIN / 2)) == "the same"  # below 1, within the margin: 0.602 against 0.603
    assert compare(q(1.5, 0.2)) == "higher"
    assert compare(q(0.1), at=0) == "higher" and compare(q(-0.1), at=0) == "lower"
    assert compare(dict(median=np.nan, q25=np.nan, q75=np.nan, n=0)) == "not measured"
    assert f"{MARGIN:g}" in RULE


def test_identical_runs_spread_exactly_zero_and_print_as_zero():
    k = np.random.default_rng(1).uniform(0.1, 2, size=(1, 300))
    spread = [spread_over_keys(np.repeat(k, keys, axis=0))["spread"] for keys in (2, 3, 5, 7)]
    assert spread == [0, 0, 0, 0]
    assert fmt(analysis.quartiles(spread)) == "0 [0, 0]"


def _sweeps(name, **network):
    config = dict(sweep=dict(steps=20, clock="edge_updates", networks=2, seeds=3, dtype="float32"),
                  network=dict(dict(kind="disordered", n_nodes=16), **network), task=dict(kind="regression"),
                  rule=[dict(kind="coupled_learning", alpha=1.0, eta=1e-3)])
    return {name: dict(config=config, runs=6, wall_s=1.0)}


def _claim1(vs_sync, equal_steps=q(1.3, 0.1)):
    row = dict(task="regression", n_nodes=16, runs=2, failed_runs=0, loss_ratio=q(0.5), equal_steps=20,
               loss_ratio_equal_steps=q(0.6))
    sync = dict(row, p=1.0, vs_sync=q(1.0), vs_sync_equal_steps=q(1.0))
    return dict(rows=[sync, dict(row, p=0.5, vs_sync=vs_sync, vs_sync_equal_steps=equal_steps)], edge_updates=20.0,
                sync_steps=20, figures=[], sweeps=_sweeps("claim1"))


def test_claim1_words_flip_with_the_paired_ratio():
    same = report.claim1(_claim1(q(0.995, 0.004)))  # 0.99x: the same, not "better"
    assert "is the same for regression 16 nodes p = 0.5; in no case is it higher: the claim holds here" in same
    assert "| the same |" in same
    worse = report.claim1(_claim1(q(1.4, 0.1)))
    assert "is higher for regression 16 nodes p = 0.5; desync degrades performance in 1 of 1 cases" in worse
    assert "claim holds" not in worse and "| higher |" in worse
    better = report.claim1(_claim1(q(0.8, 0.05)))
    assert "is lower for regression 16 nodes p = 0.5; in no case is it higher" in better
    # equal steps: desync behind, or not, as the numbers say
    assert "(paired) is higher for regression 16 nodes p = 0.5. Desync is expected" in same
    level = report.claim1(_claim1(q(1.0), equal_steps=q(1.0, 0.005)))
    assert "(paired) is the same for regression 16 nodes p = 0.5. Desync is expected" in level


def _stuck(p, distinct, vs_sync):
    return dict(task="iris", p=p, runs=2, window_steps=int(10 / p), distinct_states=q(distinct),
                distinct_per_step=q(distinct * p / 10), distinct_states_vs_sync=vs_sync,
                undo_fraction=q(0.8), move_rate=q(0.3), periodic_fraction=0.0, cycle_length=q(0.0),
                trajectory_matches_sweep=1.0)


def _claim2(vs_sync, distinct_vs_sync, accuracy=0.5, ceiling=0.5):
    row = dict(rule="discrete", task="iris", runs=3, failed_runs=0, loss_ratio=q(0.6), at_bound=q(0.8),
               test_accuracy=q(accuracy), accuracy=q(accuracy), loss_ratio_equal_steps=q(0.7), test_accuracy_equal_steps=q(0.4), edge_updates=40.0,
               equal_steps=40)
    sweeps = _sweeps("claim2", kind="lab", n_nodes=None)
    sweeps["claim2"]["config"]["sweep"]["batch_size"] = 1
    sweeps["claim2"]["config"]["task"].update(kind="iris", encoding="levels", readout="nearest", bias=1.0)
    sweeps["claim2"]["config"]["rule"] = [
        dict(kind="discrete", eta=0.5, n_states=16, spacing="resistance", k_min=0.1, k_max=12.8, offset_std=1e-5,
             noise_std=1e-5),
        dict(kind="coupled_learning", alpha=1.0, eta=0.5)]
    return dict(rows=[dict(row, p=1.0, vs_sync=q(1.0), vs_sync_equal_steps=q(1.0)),
                      dict(row, p=0.5, vs_sync=vs_sync, vs_sync_equal_steps=q(1.5, 0.1))],
                stuck=[_stuck(1.0, 8.5, q(1.0)), _stuck(0.5, 18, distinct_vs_sync)],
                ceiling=[dict(n_nodes=None, networks=3, restarts=2, runs=6, failed_runs=0,
                              test_accuracy=q(ceiling, 0.02), accuracy=q(0.9), loss_ratio=q(0.1))],
                n_edges=16, sync_steps=40, edge_updates=40.0, figures=[], sweeps=sweeps)


def test_claim2_words_flip_with_the_paired_ratios():
    same = report.claim2(_claim2(q(0.998, 0.002), q(2.1, 0.1)))  # 0.602 against 0.603
    assert "lowest median" not in same
    assert "is the same for p = 0.5: desync does not improve on sync here. At equal steps it is higher" in same
    assert "desync visits, per step and paired with sync on the same network, more at p = 0.5 (0.90)" in same
    better = report.claim2(_claim2(q(0.8, 0.05), q(0.5, 0.1)))
    assert "is lower for p = 0.5: desync improves on sync here (p = 0.5)" in better
    assert "fewer at p = 0.5 (0.90)" in better


def _with_goals(numbers):
    return dict(numbers, iris_goals=analysis.iris_goals(numbers))


def test_claim2_iris_goals_follow_the_medians():
    short = report.claim2(_with_goals(_claim2(q(1.0), q(1.0), accuracy=0.88, ceiling=0.94)))
    assert "gradient descent does not reach its goal of 0.95 (median 0.940)" in short
    assert ("the discrete rule does not reach its goal of 0.90 (median 0.880) at p = 1 (the p of the highest median "
            "training accuracy)") in short
    met = report.claim2(_with_goals(_claim2(q(1.0), q(1.0), accuracy=0.91, ceiling=0.96)))
    assert "gradient descent reaches its goal of 0.95 (median 0.960)" in met
    assert "the discrete rule reaches its goal of 0.90 (median 0.910)" in met
    assert "best of 2 restarts by training loss" in met
    text = differences(dict(scale="smoke", claims={"2": _claim2(q(1.0), q(1.0), ceiling=0.96)}))
    assert "a bias input at 1.0 V" in text and "128x conductance range" in text
    assert "gradient descent reaches test accuracy 0.96 [0.94, 0.98], above chance" in text


def test_the_discrete_rules_p_for_the_goal_is_picked_by_training_accuracy():
    """Never by test accuracy: p = 1 trains best (0.95) and tests worse (0.85) than p = 0.5."""
    numbers = _claim2(q(1.0), q(1.0), ceiling=0.96)
    numbers["rows"][0].update(accuracy=q(0.95), test_accuracy=q(0.85))
    numbers["rows"][1].update(accuracy=q(0.90), test_accuracy=q(0.92))
    goals = analysis.iris_goals(numbers)
    assert goals["discrete"]["best_p"] == 1.0 and goals["discrete"]["median"] == 0.85
    assert "does not reach its goal of 0.90 (median 0.850) at p = 1" in report.claim2(dict(numbers, iris_goals=goals))


def test_the_clock_sentence_follows_the_medians():
    for full, updates, word in ((0.93, 40.0, "costs it accuracy"), (0.85, 40.0, "does not cost it accuracy"),
                                (0.93, 10.0, "different budgets, so no comparison is drawn")):
        discrete = [dict(family="desync", value=1.0, edge_updates=updates, test_accuracy=q(full))]
        text = differences(dict(scale="quick", claims={"2": _claim2(q(1.0), q(1.0), accuracy=0.89, ceiling=0.96),
                                                      "3": dict(discrete=discrete, sweeps=_sweeps("claim3_desync"))}))
        assert "reaches 0.89 [0.89, 0.89] on the hardware's one-example clock" in text and word in text


def _claim3(loss_vs_sync, spread_ratio, loss_ratio):
    summary = {"desync:0.5": dict(spread=q(0.07, 0.02), deviation=q(0.08), loss_ratio=q(0.17),
                                  loss_vs_sync=loss_vs_sync),
               "desync:1.0": dict(spread=q(0.0), deviation=q(0.0), loss_ratio=q(0.17), loss_vs_sync=q(1.0)),
               "minibatch:2": dict(spread=q(0.05), deviation=q(0.08), loss_ratio=q(0.17), loss_vs_sync=q(1.0))}
    matches = [dict(p=0.5, b_by_spread=2, b_by_deviation=2, spread_ratio=spread_ratio["median"], deviation_ratio=1.0,
                    loss_desync=0.17, loss_minibatch=0.17 * loss_ratio["median"], spread_ratio_by_network=spread_ratio,
                    loss_ratio_by_network=loss_ratio)]
    counts = {k: dict(runs=6, failed_runs=0) for k in summary}
    sweeps = dict(_sweeps("claim3_desync"), **_sweeps("claim3_minibatch"))
    return dict(summary=summary, counts=counts, matches=matches, figures=[], sweeps=sweeps)


def test_claim3_words_flip_with_the_paired_ratios():
    analogy = report.claim3(_claim3(q(1.0, 0.005), q(1.0, 0.05), q(1.0, 0.005)))
    assert "They hold for 1 of 1 value of p (p=0.5)" in analogy
    assert "final C/C0 is the same for p = 0.5 and b = 2" in analogy
    assert "the noise moves the conductances, not the error reached" in analogy
    assert "even the smallest mini-batch" not in analogy
    broken = report.claim3(_claim3(q(0.95, 0.005), q(0.6, 0.1), q(1.3, 0.05)))
    assert "They hold for 0 of 1 value of p (none)" in broken
    assert "final C/C0 is lower for p = 0.5; the same for b = 2" in broken
    assert "the noise changes the error reached" in broken
    assert "For p = 0.5 desync spreads the conductances more than even the smallest mini-batch" in broken


def _cl_vs_gd(change, difference, cosine=q(0.98, 0.005)):
    rows = [dict(dtype=dtype, eta=eta, runs=2, failed_runs=0, cosine=cosine, cosine_at_start=q(0.98),
                 cosine_minus_start=change) for dtype in ("float32", "float64") for eta in (1e-3, 0.1)]
    return dict(cosine=rows, curves=[], figures=[], sweeps=_sweeps("cl_vs_gd"),
                float32_minus_float64=[dict(eta=eta, difference=difference) for eta in (1e-3, 0.1)])


def test_cl_vs_gd_words_flip_with_the_paired_changes():
    level = report.cl_vs_gd(_cl_vs_gd(q(0.0003, 0.003), q(3e-8, 2e-8)))
    assert "best at the start" not in level
    assert "the agreement stays the same at eta = 0.001 and eta = 0.1" in level
    assert "is the same at eta = 0.001 and eta = 0.1 (interquartile ranges within" in level
    assert "does not limit the agreement here" in level
    assert "coupled learning is not gradient descent on C" in level and "Two candidate reasons" not in level
    falls = report.cl_vs_gd(_cl_vs_gd(q(-0.05, 0.01), q(0.05, 0.01)))
    assert "the agreement falls at eta = 0.001 and eta = 0.1" in falls and "Two candidate reasons" in falls
    assert "is higher at eta = 0.001 and eta = 0.1" in falls and "float32 rounding matters there" in falls
    rises = report.cl_vs_gd(_cl_vs_gd(q(0.05, 0.01), q(0.0), cosine=q(0.998, 0.001)))
    assert "the agreement rises at" in rises and "not gradient descent" not in rises


def _document(scale, n_nodes, n_states, networks):
    claims = {"1": _claim1(q(1.0)), "2": _claim2(q(1.0), q(1.0))}
    claims["1"]["sweeps"]["claim1"]["config"]["network"]["n_nodes"] = n_nodes
    claims["1"]["sweeps"]["claim1"]["config"]["sweep"]["networks"] = networks  # x 3 seeds; claim 2's: 2 x 3
    claims["2"]["sweeps"]["claim2"]["config"]["rule"][0]["n_states"] = n_states
    return dict(scale=scale, claims=claims)


@pytest.mark.parametrize("scale, n_nodes, sizes, n_states, networks, instances", [
    ("smoke", 16, "16", 16, 2, "6"),
    ("full", [64, 128, 256], "64, 128 and 256", 128, 256, "6 to 768"),
])
def test_differences_quote_the_scale_that_ran(scale, n_nodes, sizes, n_states, networks, instances):
    text = differences(_document(scale, n_nodes, n_states, networks))
    assert f"disordered networks generated here ({sizes} nodes)" in text
    assert f"potentiometers of {n_states} taps" in text and "16 edges, randomly wired with three hidden nodes" in text
    assert f"{128 if n_states == 16 else 16} taps" not in text
    assert f"This run (`--{scale}`) has {instances} instances (networks x seeds) per grid point" in text


def _keff_runs(several, at_bound_free):
    def run(outputs, bounds, cos_c, edges_at_bound, free):
        median = dict(cos_cl_limit_vs_neg_grad_keff_weighted_error_all_edges=1.0,
                      cos_cl_limit_vs_neg_grad_loss_all_edges=cos_c,
                      cos_cl_step_vs_neg_grad_loss_all_edges=0.2 if edges_at_bound else cos_c,
                      cos_cl_step_vs_neg_grad_loss_free_edges=free)
        return dict(outputs=outputs, bounds=bounds, max_edges_at_bound=edges_at_bound, median=median)
    return {"keff_vs_gradient": dict(runs=[run(2, "wide", several, 0, several), run(1, "wide", 1.0, 0, 1.0),
                                           run(2, "tight", 0.99, 40, at_bound_free)])}


def test_keff_findings_follow_the_cosines():
    weighted = keff.findings(_keff_runs(0.6, 0.99))
    assert "against -∇C it is 0.6 [0.6, 0.6] with several outputs, below 1" in weighted
    assert "is what separates it from gradient descent" in weighted
    assert "0.2 [0.2, 0.2] over all edges, below 1, and 0.99 [0.99, 0.99] over the edges the clip leaves alone (not at a bound, not clipped by the step), the same" in weighted
    parallel = keff.findings(_keff_runs(0.999, 0.5))
    assert "with several outputs, the same as 1" in parallel and "separates it" not in parallel
    assert "0.5 [0.5, 0.5] over the edges the clip leaves alone (not at a bound, not clipped by the step), below 1" in parallel


def _discrete_row(family, value, vs_sync, per_step_vs_sync):
    return dict(family=family, value=value, runs=4, failed_runs=0, loss_ratio=q(0.2), vs_sync=vs_sync,
                test_accuracy=q(0.9), distinct_states=q(100), distinct_per_step=q(0.4),
                distinct_states_vs_sync=per_step_vs_sync, undo_fraction=q(0.6), move_rate=q(0.5))


def test_claim3_discrete_verdict_needs_states_and_error():
    sync = _discrete_row("desync", 1.0, q(1.0), q(1.0))
    alike = report._claim3_discrete([sync, _discrete_row("desync", 0.5, q(1.0), q(2.0)),
                                     _discrete_row("minibatch", 2, q(1.0), q(1.8))])
    assert "mini-batching does what desync does here" in alike
    unlike = report._claim3_discrete([sync, _discrete_row("desync", 0.5, q(1.0), q(2.0)),
                                      _discrete_row("minibatch", 2, q(1.3, 0.05), q(1.8))])
    assert "the analogy holds for exploring, not for the error" in unlike
    assert "mini-batching does what desync does" not in unlike
    stuck = report._claim3_discrete([sync, _discrete_row("desync", 0.5, q(1.0), q(2.0)),
                                     _discrete_row("minibatch", 2, q(1.0), q(1.0))])
    assert "desync makes the network visit more new states per step and mini-batching does not" in stuck
