"""The reproduction's report: the prose of `report.md`, assembled from `claims.json`'s numbers.

One section per claim (`claim1`, `claim2`, `claim3`, `cl_vs_gd`: the paper's statement, the
setup, the tables, what the numbers find), the failed runs, where this simulation and the paper
differ; `markdown` puts them together. Pure text: it reads only the document it is given.
"""

from __future__ import annotations

from . import keff
from .differences import differences
from .words import RULE, by_word, compare, count as _count, fmt as _fmt, listing


def _runs_cell(row: dict) -> str:
    """`n` of a report row: completed runs, and the failed ones if any."""
    done = row["runs"] - row["failed_runs"]
    return f"{done}" + (f" ({row['failed_runs']} failed)" if row["failed_runs"] else "")


_MEDIANS = ("*n* counts the completed runs, over which the medians are taken; failed runs (a solve that missed its "
            "tolerance, ...; see *Failed runs*) are counted there, never silently dropped.")
_WORDS = f"Words (*in words* and every comparison below): {RULE}."
#: How each comparison of final errors (desync against sync) reads.
_ERROR_WORDS = {"lower": "lower for", "the same": "the same for", "higher": "higher for",
                "not measured": "not measured for"}


def _in_words(row: dict, name: str = "vs_sync") -> str:
    """The *in words* cell of a row compared with sync (empty for sync itself)."""
    return "" if row["p"] == 1 else compare(row[name])


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _setup(numbers: dict) -> str:
    parts = []
    for name, s in numbers["sweeps"].items():
        c = s["config"]
        parts.append(f"`{name}` ({s['runs']} runs, {s['wall_s']:.0f} s): {c['sweep']['steps']} "
                     f"{'updates per edge' if c['sweep']['clock'] == 'edge_updates' else 'steps'}, "
                     f"{_count(c['sweep']['networks'], 'network')} x {_count(c['sweep']['seeds'], 'seed')}, {c['sweep']['dtype']}, "
                     f"network {c['network']['kind']}, task {c['task']['kind']}")
    return "**Setup** (every key: `claims.json`; configs: `jaxnet/configs/reproduce/`): " + "; ".join(parts) + ".\n"


def _figures(numbers: dict) -> str:
    return "\n".join(f"![{f}]({f})" for f in numbers["figures"]) + "\n"


def claim1(n: dict) -> str:
    """Claim 1 (idealized simulation): the section of the report, from the claim's numbers."""
    step = n["rows"][0]["equal_steps"]
    out = ["## Claim 1: idealized simulation\n",
           "**The paper:** desynchronizing the learning process does not degrade performance, for a variety "
           "of tasks, in an idealized simulation.\n", _setup(n),
           f"**Measured:** C/C0 (training error relative to the start) after {n['edge_updates']:g} updates per "
           f"edge, median [quartiles] over networks; *vs sync* is the paired ratio (desync / sync, same "
           f"network) of final C/C0; *equal steps* is C/C0 at step {step} (where the p = 1 run ends). "
           + _WORDS + " " + _MEDIANS + "\n"]
    rows = []
    for r in n["rows"]:
        acc = _fmt(r["test_accuracy"], 2) if "test_accuracy" in r else ""
        rows.append([r["task"], r["n_nodes"], f"{r['p']:g}", _runs_cell(r), _fmt(r["loss_ratio"]), _fmt(r["vs_sync"]),
                     _in_words(r), _fmt(r["loss_ratio_equal_steps"]), acc])
    out.append(_table(["task", "nodes", "p", "n", "C/C0, equal edge updates", "vs sync", "in words",
                       "C/C0, equal steps", "test accuracy (Iris)"], rows))
    desync = [r for r in n["rows"] if r["p"] < 1]
    label = (lambda r: f"{r['task']} {r['n_nodes']} nodes p = {r['p']:g}")
    said = by_word([(label(r), compare(r["vs_sync"])) for r in desync], _ERROR_WORDS)
    worse = [r for r in desync if compare(r["vs_sync"]) == "higher"]
    verdict = (f"desync degrades performance in {len(worse)} of {len(desync)} cases: the claim fails there."
               if worse else "in no case is it higher: the claim holds here.")
    out.append(f"**Finds:** at equal updates per edge, desync's final C/C0 against sync's (paired) is {said}; "
               f"{verdict}\n")
    behind = by_word([(label(r), compare(r["vs_sync_equal_steps"])) for r in desync], _ERROR_WORDS)
    out.append(f"At equal *steps* (step {step}) desync's C/C0 against sync's (paired) is {behind}. Desync is "
               "expected to be behind there: after t steps an edge has been updated about p t times, not t.\n")
    out.append(_ceiling(n.get("ceiling", []), "claim 1's networks"))
    out.append(_figures(n))
    return "\n".join(out)


def _ceiling(rows: list[dict], where: str) -> str:
    """The Iris ceiling sentence: gradient descent's accuracy on the same networks and splits."""
    parts = [f"{_fmt(r['test_accuracy'], 2)}" + (f" at {r['n_nodes']} nodes" if r["n_nodes"] else "")
             + f" (n = {r['networks']} networks, best of {r['restarts']} restarts by training loss)" for r in rows]
    return (f"**Iris ceiling ({where}):** gradient descent (Adam, full batch, continuous conductances) on the same "
            f"networks, splits and encoding reaches test accuracy {listing(parts)}; each split keeps the restart "
            "with the lowest training loss, never the best test accuracy.\n") if rows else ""


def claim2(n: dict) -> str:
    """Claim 2 (the laboratory network): the section of the report, from the claim's numbers."""
    step = n["sync_steps"]
    out = ["## Claim 2: the laboratory network\n",
           "**The paper:** in the experiment (discrete conductances), desynchronization *improves* performance, "
           "by letting the system explore the discretized state space instead of getting stuck.\n", _setup(n),
           f"**Measured:** on the lab stand-in ({n['n_edges']} edges), one example per update as the hardware "
           f"does, the discrete rule and coupled learning (continuous conductances in the same range): final C/C0 "
           f"and Iris test accuracy after {n['edge_updates']:g} updates per edge, and at equal steps (step {step}, "
           "where p = 1 ends), median [quartiles] over instances (Iris: random 30/120 splits); *vs sync* paired as "
           "in claim 1. " + _WORDS + " " + _MEDIANS + "\n"]
    acc = (lambda r, name: _fmt(r[name], 2) if name in r else "")
    rows = [[r["rule"], r["task"], f"{r['p']:g}", _runs_cell(r), _fmt(r["loss_ratio"]), _fmt(r["vs_sync"]),
             _in_words(r), acc(r, "test_accuracy"), _fmt(r["loss_ratio_equal_steps"]),
             f"{_fmt(r['vs_sync_equal_steps'])} ({_in_words(r, 'vs_sync_equal_steps')})",
             acc(r, "test_accuracy_equal_steps"), _fmt(r["at_bound"], 2)] for r in n["rows"]]
    out.append(_table(["rule", "task", "p", "n", "C/C0, equal edge updates", "vs sync", "in words",
                       "test accuracy (Iris)", "C/C0, equal steps", "vs sync, equal steps",
                       "test accuracy, equal steps", "fraction of edges at a bound"], rows))
    out.append("**Getting stuck** (discrete rule), measured on whole recorded trajectories (the sweep's runs repeated "
               "by hand) over the last quarter of each run (equal updates per edge, so desync's window holds 1/p as "
               "many steps): distinct network states visited, and per step of the window (a state not seen before "
               "at every step: 1), with its paired ratio to sync's (same network), the fraction of an edge's moves "
               "that undo its "
               "previous move, the fraction of (edge, step) that move, and the share of runs that end in an exact "
               "cycle (median cycle length); completed runs only.\n")
    rows = [[s["task"], f"{s['p']:g}", s["runs"], s["window_steps"], _fmt(s["distinct_states"]),
             _fmt(s["distinct_per_step"], 2), _fmt(s["distinct_states_vs_sync"]),
             _in_words(s, "distinct_states_vs_sync"), _fmt(s["undo_fraction"], 2), _fmt(s["move_rate"], 2),
             f"{s['periodic_fraction']:.0%}", f"{s['cycle_length']['median']:g}" if s["periodic_fraction"] else "-",
             f"{s['trajectory_matches_sweep']:.0%}"] for s in n["stuck"]]
    out.append(_table(["task", "p", "runs", "window (steps)", "distinct states", "per step", "vs sync", "in words",
                       "undo fraction", "move rate", "periodic", "cycle length", "same end as sweep"], rows))
    out.append(_ceiling(n["ceiling"], "the lab stand-in"))
    goals = n.get("iris_goals") or {}
    if goals:
        said = {name: f"{'reaches' if g['reached'] else 'does not reach'} its goal of {g['goal']:.2f} (median "
                      f"{g['median']:.3f})" for name, g in goals.items()}
        out.append("**Against the lab's figure** (above 95% with 30 training examples; the goals: gradient descent at "
                   "that figure, the lab's discrete rule at 0.90): gradient descent "
                   f"{said['gradient_descent']}; the discrete rule {said['discrete']} at p = "
                   f"{goals['discrete']['best_p']:g} (the p of the highest median training accuracy).\n")
    for rule, task in sorted({(r["rule"], r["task"]) for r in n["rows"]}):
        out.append(_claim2_finds(rule, task, [r for r in n["rows"] if (r["rule"], r["task"]) == (rule, task)
                                              and r["p"] < 1],
                                 [s for s in n["stuck"] if s["task"] == task] if rule == "discrete" else None))
    out.append(_figures(n))
    return "\n".join(out)


def _claim2_finds(rule: str, task: str, desync: list[dict], stuck: list[dict] | None) -> str:
    """Claim 2's finding for one rule and task: desync's error against sync's, and (discrete
    rule) the states it visits."""
    label = (lambda r: f"p = {r['p']:g}")
    said = by_word([(label(r), compare(r["vs_sync"])) for r in desync], _ERROR_WORDS)
    better = [r for r in desync if compare(r["vs_sync"]) == "lower"]
    verdict = (f"desync improves on sync here ({listing([label(r) for r in better])})" if better
               else "desync does not improve on sync here")
    steps = by_word([(label(r), compare(r["vs_sync_equal_steps"])) for r in desync], _ERROR_WORDS)
    text = (f"**Finds ({rule}, {task}):** at equal updates per edge, desync's final C/C0 against sync's (paired) is "
            f"{said}: {verdict}. At equal steps it is {steps}.")
    if stuck is None:
        return text + "\n"
    sync = next((s for s in stuck if s["p"] == 1), None)
    visits = [s for s in stuck if s["p"] < 1]
    if sync is None or not visits:
        return text + " Distinct states: not measured (no completed run of p = 1, or of any p < 1).\n"
    states = {"higher": "more at", "the same": "as many at", "lower": "fewer at", "not measured": "not measured at"}
    explores = by_word([(f"{label(s)} ({s['distinct_per_step']['median']:.2f})",
                         compare(s["distinct_states_vs_sync"])) for s in visits], states)
    return (text + f" Sync visits {sync['distinct_per_step']['median']:.2f} new states per step in its last quarter "
            f"({sync['distinct_states']['median']:g} in {sync['window_steps']} steps; undo "
            f"fraction {sync['undo_fraction']['median']:.2f}, {sync['periodic_fraction']:.0%} of runs in an exact "
            f"cycle); desync visits, per step and paired with sync on the same network, {explores}.\n")


def claim3(n: dict) -> str:
    """Claim 3 (desync and mini-batching): the section of the report, from the claim's numbers."""
    out = ["## Claim 3: desync and mini-batching\n",
           "**The paper:** desynchronization acts like mini-batching in stochastic gradient descent, with similar "
           "effects on the learning degrees of freedom.\n", _setup(n),
           "**Measured:** per network, over the noise keys (same network, same k0): the *spread* of the final "
           "conductances (RMS over edges of the std over keys of ln k), their *deviation* from the synchronous "
           "full-batch run (RMS of Δ ln k), and the final C/C0; median [quartiles] over networks, each network's "
           "measures over its completed runs. " + _WORDS + " " + _MEDIANS + "\n"]
    rows = [[key.split(":")[0], key.split(":")[1], _runs_cell(n["counts"][key]), _fmt(v["spread"]),
             _fmt(v["deviation"]), _fmt(v["loss_ratio"]), _fmt(v["loss_vs_sync"]),
             "" if key == "desync:1.0" else compare(v["loss_vs_sync"])] for key, v in n["summary"].items()]
    out.append(_table(["family", "p or b", "n (runs)", "spread", "deviation", "final C/C0", "C/C0 vs sync full batch",
                       "in words"], rows))
    rows = [[f"{m['p']:g}", m["b_by_spread"], f"{m['spread_ratio']:.2g}", m["b_by_deviation"],
             f"{m['deviation_ratio']:.2g}", f"{m['loss_desync']:.3g}", f"{m['loss_minibatch']:.3g}",
             f"{_fmt(m['spread_ratio_by_network'], 2)}, {compare(m['spread_ratio_by_network'])}",
             f"{_fmt(m['loss_ratio_by_network'], 2)}, {compare(m['loss_ratio_by_network'])}"] for m in n["matches"]]
    out.append("**Which b matches each p** (the b whose median is closest in log; *ratio* is b's median over p's; "
               "*paired* is b's value over p's on the same network, median [quartiles] over networks, in words):\n")
    out.append(_table(["p", "b by spread", "ratio", "b by deviation", "ratio", "C/C0 desync", "C/C0 matched b",
                       "spread, paired", "C/C0, paired"], rows))
    agree = [m for m in n["matches"] if m["b_by_spread"] == m["b_by_deviation"]
             and compare(m["spread_ratio_by_network"]) == compare(m["loss_ratio_by_network"]) == "the same"]
    held = ", ".join(f"p={m['p']:g}" for m in agree) or "none"
    out.append(f"**Finds:** criteria: the same b matches both the spread and the deviation, and, paired per "
               f"network, the matched b's spread and final C/C0 are the same as p's. They hold for {len(agree)} of "
               f"{_count(len(n['matches']), 'value')} of p ({held}). Where they fail the analogy breaks; the table says by "
               "how much. Desync noise also differs in kind: a masked edge does not move at all, while a mini-batch "
               "moves every edge along a noisy direction.\n")
    smallest = min(int(k.split(":")[1]) for k in n["summary"] if k.startswith("minibatch:"))
    beyond = [m for m in n["matches"] if m["b_by_spread"] == smallest
              and compare(m["spread_ratio_by_network"]) == "lower"]
    if beyond:
        listed = listing([f"{m['p']:g}" for m in beyond])
        out.append(f"For p = {listed} desync spreads the conductances more than "
                   f"even the smallest mini-batch measured (b = {smallest}; paired per network): there, desync is the "
                   "noisier of the two, beyond the range mini-batching reaches.\n")
    noisy = {k: v for k, v in n["summary"].items() if k != "desync:1.0"}
    said = by_word([(k.replace("desync:", "p = ").replace("minibatch:", "b = "), compare(v["loss_vs_sync"]))
                    for k, v in noisy.items()], _ERROR_WORDS)
    moved = all(compare(v["loss_vs_sync"]) == "the same" for v in noisy.values())
    losses = [v["loss_ratio"]["median"] for v in n["summary"].values()]
    out.append(f"Against the sync full-batch run (paired per network) the final C/C0 is {said} (all medians within "
               f"{max(losses) / min(losses) - 1:.1%} of each other): "
               + ("the noise moves the conductances, not the error reached.\n" if moved
                  else "the noise changes the error reached, not only the conductances.\n"))
    if n.get("discrete"):
        out.append(_claim3_discrete(n["discrete"]))
    out.append(_figures(n))
    return "\n".join(out)


def _claim3_discrete(rows: list[dict]) -> str:
    """Claim 3 on the discrete lab network: does a mini-batch unstick it as desync does?"""
    out = ["### On the discrete lab network\n",
           "The discrete rule of claim 2 on the lab stand-in (Iris): desync at p with the full batch, against "
           "synchronous mini-batches of b examples, at equal updates per edge. Final C/C0 and distinct states per "
           "step of the last quarter, each also as the paired ratio (same network) to the synchronous full-batch "
           "run's; median [quartiles] over networks.\n"]
    label = (lambda r: f"p = {r['value']:g}" if r["family"] == "desync" else f"b = {r['value']}")
    sync = (lambda r: r["family"] == "desync" and r["value"] == 1)
    out.append(_table(["family", "p or b", "n", "final C/C0", "vs sync full batch", "in words", "test accuracy",
                       "distinct states per step", "vs sync full batch", "in words", "undo fraction", "move rate"],
                      [[r["family"], label(r).split(" = ")[1], _runs_cell(r), _fmt(r["loss_ratio"]), _fmt(r["vs_sync"]),
                        "" if sync(r) else compare(r["vs_sync"]), _fmt(r["test_accuracy"], 2),
                        _fmt(r["distinct_per_step"], 2), _fmt(r["distinct_states_vs_sync"]),
                        "" if sync(r) else compare(r["distinct_states_vs_sync"]), _fmt(r["undo_fraction"], 2),
                        _fmt(r["move_rate"], 2)] for r in rows]))
    states = {"higher": "more at", "the same": "as many at", "lower": "fewer at", "not measured": "not measured at"}
    said = {}
    for family in ("desync", "minibatch"):
        noisy = [r for r in rows if r["family"] == family and not sync(r)]
        error = by_word([(label(r), compare(r["vs_sync"])) for r in noisy], _ERROR_WORDS)
        explores = by_word([(label(r), compare(r["distinct_states_vs_sync"])) for r in noisy], states)
        said[family] = (error, explores, any(compare(r["distinct_states_vs_sync"]) == "higher" for r in noisy),
                        {compare(r["vs_sync"]) for r in noisy})
    same_error = said["desync"][3] == said["minibatch"][3] and len(said["desync"][3]) == 1
    verdict = {(True, True): "both noises make the network visit more new states per step"
               + (" and leave the same final error: mini-batching does what desync does here" if same_error else
                  ", but their final errors do not compare alike: the analogy holds for exploring, not for the error"),
               (True, False): "desync makes the network visit more new states per step and mini-batching does not: "
                              "the analogy breaks here",
               (False, True): "mini-batching makes the network visit more new states per step and desync does not: "
                              "the analogy breaks here",
               (False, False): "neither noise makes the network visit more new states per step than sync full batch"}
    out.append(f"**Finds (discrete):** against the synchronous full-batch runs (paired per network), desync's final "
               f"C/C0 is {said['desync'][0]}, and it visits, per step, {said['desync'][1]}; mini-batches' final C/C0 is "
               f"{said['minibatch'][0]}, and they visit, per step, {said['minibatch'][1]}: "
               f"{verdict[(said['desync'][2], said['minibatch'][2])]}.\n")
    return "\n".join(out)


def cl_vs_gd(n: dict) -> str:
    """Coupled learning against gradient descent: the section of the report, from the claim's numbers."""
    out = ["## Coupled learning against gradient descent\n", _setup(n),
           "**Measured:** the cosine between each logged coupled-learning update and -grad C (the exact gradient "
           "through the same solver), median over each run's logged steps, then median [quartiles] over runs; "
           "*change* is each run's median minus its cosine at step 0; and final C/C0 of both rules on the same "
           "networks. " + _WORDS + " " + _MEDIANS + "\n"]
    rows = [[c["dtype"], f"{c['eta']:g}", _runs_cell(c), _fmt(c["cosine"], 4), _fmt(c["cosine_at_start"], 4),
             _fmt(c["cosine_minus_start"], 2), compare(c["cosine_minus_start"], at=0)] for c in n["cosine"]]
    out.append(_table(["dtype", "eta", "n", "cosine (run median)", "cosine at step 0", "change", "in words"], rows))
    rows = [[c["dtype"], c["rule"], "" if c["eta"] is None else f"{c['eta']:g}",
             "" if c["learning_rate"] is None else f"{c['learning_rate']:g}", _runs_cell(c), _fmt(c["loss_ratio"])]
            for c in n["curves"]]
    out.append(_table(["dtype", "rule", "eta", "learning rate", "n", "final C/C0"], rows))
    trend = {"lower": "falls at", "the same": "stays the same at", "higher": "rises at",
             "not measured": "is not measured at"}
    for dtype in sorted({c["dtype"] for c in n["cosine"]}):
        part = [c for c in n["cosine"] if c["dtype"] == dtype]
        said = by_word([(f"eta = {c['eta']:g}", compare(c["cosine_minus_start"], at=0)) for c in part], trend)
        out.append(f"**Finds ({dtype}):** at the start of training the cosine is "
                   f"{listing([format(c['cosine_at_start']['median'], '.4f') for c in part])} at eta = "
                   f"{listing([format(c['eta'], 'g') for c in part])}; over whole runs (median of each run's logged "
                   f"steps) it is {listing([format(c['cosine']['median'], '.4f') for c in part])}. From step 0 to "
                   f"the whole run the agreement {said} (paired per run).\n")
    out.append(_precision(n.get("float32_minus_float64", [])))
    falls = any(compare(c["cosine_minus_start"], at=0) == "lower" for c in n["cosine"])
    below = [c for c in n["cosine"] if compare(c["cosine"]) == "lower"]
    if below and len(below) == len(n["cosine"]):
        small = min(below, key=lambda c: c["eta"])
        out.append(f"The cosine is below 1 by the rule at every eta and dtype (at the smallest, eta = "
                   f"{small['eta']:g}, {_fmt(small['cosine'], 4)}): coupled learning is not gradient descent on C, even at small eta."
                   + (" Two candidate reasons for the fall during training: edges that reach the conductance bound "
                      "stop following the gradient (the sweep's `at_bound` column), and a voltage clamp weights the "
                      "output errors by the network's own output conductances, a weighting that changes as the "
                      "network learns" + (" (separated below)." if "keff_vs_gradient" in n else ".") if falls else "")
                   + "\n")
    if "keff_vs_gradient" in n:
        out += ["### Why: the clamp's K_eff weighting, and the bounds\n", keff.markdown(n), keff.findings(n)]
    out.append(_figures(n))
    return "\n".join(out)


def _precision(pairs: list[dict]) -> str:
    """float32 against float64 cosines, in words."""
    if not pairs:
        return ""
    said = by_word([(f"eta = {d['eta']:g}", compare(d["difference"], at=0)) for d in pairs],
                   {"lower": "lower at", "the same": "the same at", "higher": "higher at"})
    gap = max(max(abs(d["difference"]["q25"]), abs(d["difference"]["q75"])) for d in pairs)
    same = all(compare(d["difference"], at=0) == "the same" for d in pairs)
    return (f"float32's run-median cosine against float64's (paired per run) is {said} (interquartile ranges "
            f"within {gap:.1e} of 0)" + (", so rounding of (dV_F)^2 - (dV_C)^2 does not limit the agreement here "
                                        "(jaxnet computes the clamped-minus-free difference directly).\n"
                                        if same else ": float32 rounding matters there.\n"))


def failed_runs(claims: dict) -> str:
    """Every failed run of the report's sweeps, per sweep and grid point, with its reason."""
    out = ["## Failed runs\n"]
    lines = []
    for claim in claims.values():
        for name, facts in claim["sweeps"].items():
            by_point: dict[int, list] = {}
            for f in facts.get("failed_runs", []):
                by_point.setdefault(f["point"], []).append(f)
            for point, failed in sorted(by_point.items()):
                grid = ", ".join(f"{k}={v}" for k, v in failed[0]["grid"].items())
                reasons = sorted({f"{f['failure']} at step {f['failed_step']}" for f in failed})
                lines.append(f"- `{name}`, grid point {point}{' (' + grid + ')' if grid else ''}: {len(failed)} run(s) "
                             f"failed ({'; '.join(reasons)}): runs {', '.join(str(f['run']) for f in failed)}. "
                             f"First: {failed[0]['message']}")
    if not lines:
        out.append("None: every run of every sweep completed.\n")
    else:
        out.append("A failed run stopped at its failed step; it counts in the tables' *n* and is left out of the "
                   "medians. `jn.rebuild_run(SWEEP_DIR, run)` rebuilds one to inspect it; "
                   "`jaxnet sweep CONFIG --out SWEEP_DIR --retry-failed` reruns them.\n")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def markdown(document: dict) -> str:
    """`report.md` of a reproduction's document (the contents of `claims.json`): its claims in
    the order of the paper, then the failed runs and the differences from the paper."""
    claims = document["claims"]
    head = [f"# Reproducing {document['paper']}\n",
            f"Scale `{document['scale']}`; jaxnet {document['jaxnet']}, JAX {document['jax']}; the sweeps ran on "
            f"{', '.join(document['devices'])}. Every number here is in `claims.json` with its configuration; "
            "rerun with `jaxnet reproduce --out DIR --" + document["scale"] + "`.\n"]
    if document["scale"] == "smoke":
        head.append("**Smoke scale: this run only checks the pipeline. Its numbers mean nothing.**\n")
    if not claims:
        head.append("No claim's sweeps are complete yet.\n")
    writers = {"1": claim1, "2": claim2, "3": claim3, "gd": cl_vs_gd}
    failures = [failed_runs(claims)] if claims else []
    return "\n".join(head + [writers[c](claims[c]) for c in writers if c in claims] + failures + [differences(document)])
