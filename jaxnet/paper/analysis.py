"""The reproduction's numbers: what each claim measures, computed from its sweeps' tables.

Nothing here draws or writes: `figures` draws, `report` writes the prose, `reproduction` runs
the sweeps and hands their tables (and, for the stuck-state measures, a way to rebuild a run)
to these functions.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .. import rules as rules_module
from .._measures import spread_over_keys, stuck_measures
from .._trajectory import conductance_trajectory


def quartiles(values) -> dict[str, float]:
    """Median and quartiles of the finite `values`, and how many there are."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if not len(values):
        return dict(median=float("nan"), q25=float("nan"), q75=float("nan"), n=0)
    q25, median, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    return dict(median=float(median), q25=float(q25), q75=float(q75), n=int(len(values)))


def final(table):
    """The final rows of the runs that completed (a failed run has no row at the last step)."""
    return table[(table.status == "ok") & (table.step == table.steps)]


def counts(part) -> dict[str, int]:
    """How many runs `part` of a table holds, and how many of them failed: a median of its
    final rows is over `runs - failed_runs` of them."""
    status = part.groupby("run").status.first()
    return dict(runs=int(len(status)), failed_runs=int((status == "failed").sum()))


def plain(value):
    """NumPy scalars as Python numbers (dict keys, JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def _at_step(table, step):
    """Rows at the logged step closest to `step` (per run), with the step used."""
    steps = np.sort(table.step.unique())
    used = int(steps[np.argmin(np.abs(steps - step))])
    return table[table.step == used], used


# ------------------------------------------------------------------ claim 1


def _desync_rows(part, sync_steps: int, **labels) -> list[dict]:
    """One row per p of `part` (one group of runs that differ in p, paired by network seed):
    C/C0 at equal updates per edge (the runs' ends) and at equal steps (`sync_steps`, where
    p = 1 ends), each also as the paired ratio to p = 1's; Iris accuracies at both."""
    done = final(part)
    sync = done[done.p == 1].set_index("network_seed").normalized_loss
    at_steps, used = _at_step(part[(part.step <= sync_steps) & (part.status == "ok")], sync_steps)
    sync_at_steps = at_steps[at_steps.p == 1].set_index("network_seed").normalized_loss
    rows = []
    for p, everyone in sorted(part.groupby("p"), key=lambda g: -g[0]):
        runs, then = done[done.p == p], at_steps[at_steps.p == p]
        row = dict(labels, p=float(p), edge_updates=float((everyone.p * everyone.steps).max()), **counts(everyone),
                   loss_ratio=quartiles(runs.normalized_loss),
                   vs_sync=quartiles(runs.set_index("network_seed").normalized_loss / sync),
                   loss_ratio_equal_steps=quartiles(then.normalized_loss),
                   vs_sync_equal_steps=quartiles(then.set_index("network_seed").normalized_loss / sync_at_steps),
                   equal_steps=used, at_bound=quartiles(runs.at_bound))
        if labels["task"] == "iris":
            row["test_accuracy"] = quartiles(runs.test_accuracy)
            row["accuracy"] = quartiles(runs.accuracy)
            row["test_accuracy_equal_steps"] = quartiles(then.test_accuracy)
        rows.append(row)
    return rows


def claim1(table) -> dict:
    """C/C0 (and Iris accuracy) per task, size and p, at equal edge updates and equal steps:
    `rows`, `edge_updates` (every run's updates per edge), `sync_steps` (where p = 1 ends)."""
    sync_steps = int(table[table.p == 1].steps.max())
    rows = [row for (n_nodes, task), part in table.groupby(["n_nodes", "task"], sort=True)
            for row in _desync_rows(part, sync_steps, task=task, n_nodes=int(n_nodes))]
    return dict(rows=rows, edge_updates=float((table.p * table.steps).max()), sync_steps=sync_steps)


def ceiling(table) -> list[dict]:
    """What the network can learn at all: per network size (if it varies), the final Iris
    accuracies of gradient descent's restart with the lowest final *training loss* on each
    network (split), never the best test accuracy; quartiles over networks."""
    done = final(table)
    sizes = done.groupby("n_nodes") if done.n_nodes.notna().any() else [(None, done)]
    rows = []
    for n_nodes, part in sizes:
        best = part.loc[part.groupby("network_seed").loss.idxmin()]
        rows.append(dict(n_nodes=None if n_nodes is None else int(n_nodes), networks=int(len(best)),
                         restarts=int(part.groupby("network_seed").run.nunique().max()), **counts(table),
                         test_accuracy=quartiles(best.test_accuracy), accuracy=quartiles(best.accuracy),
                         loss_ratio=quartiles(best.normalized_loss)))
    return rows


# ------------------------------------------------------------------ claim 2


def trajectory_measures(rebuild: Callable, table, final_k: dict, n_runs: int, reference: dict | None = None,
                        sync_batch="full") -> tuple[list[dict], dict]:
    """Record whole trajectories of the first `n_runs` runs of each grid point; stuck measures.

    Each trajectory is the sweep's run repeated by hand (`rebuild(run)`, the sweep's
    `rebuild_run`); `trajectory_matches_sweep` is the fraction whose final levels equal the
    sweep's (vmapped float rounding may differ). `distinct_states_vs_sync`: the paired ratio
    (same network) of distinct states *per step of the window* (windows differ in length: at
    equal updates per edge desync's last quarter holds 1/p as many steps) over the same task's
    synchronous run's (p = 1 at batch size `sync_batch`), found in this table or in `reference`
    (another sweep's second return).

    **Returns:** `(rows, distinct)`: a row per grid point, and the distinct states per step per
    network by `(task, p, batch_size)`.
    """
    out, distinct = [], {}
    for _, everyone in table.groupby("point", sort=True):
        runs = everyone[everyone.status == "ok"]  # a failed run has no whole trajectory
        run_ids = np.sort(runs.run.unique())[:n_runs]
        if not len(run_ids):
            continue
        inputs = [rebuild(int(r)) for r in run_ids]
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *inputs)
        kw = inputs[0].train_kwargs
        rule = inputs[0].rule
        levels = rule.rule if isinstance(rule, rules_module.Desync) else rule

        def record(r):
            _, k = conductance_trajectory(r.net, r.task, r.rule, r.k0, key=r.key, steps=kw["steps"],
                                          batch_size=kw["batch_size"], solver=kw["solver"])
            return levels.state_index(k)

        states = np.asarray(jax.jit(jax.vmap(record))(stacked))
        same_end = [bool(np.array_equal(levels.state_index(jnp.asarray(final_k[int(r)])), s[-1]))
                    for r, s in zip(run_ids, states)]
        measures = [stuck_measures(s) for s in states]
        first = runs.iloc[0]
        network = runs.groupby("run").network_seed.first()
        distinct[(first.task, float(first.p), first.batch_size)] = pd.Series(
            [m["distinct_per_step"] for m in measures], index=[network[r] for r in run_ids])
        out.append(dict(task=first.task, p=float(first.p), batch_size=plain(first.batch_size), runs=len(run_ids),
                        steps=int(first.steps),
                        failed_runs=counts(everyone)["failed_runs"],
                        window_steps=int(states.shape[1] - 1) // 4,
                        trajectory_matches_sweep=float(np.mean(same_end)),
                        **{name: quartiles([m[name] for m in measures]) for name in measures[0]},
                        periodic_fraction=float(np.mean([m["cycle_length"] > 0 for m in measures]))))
    reference = distinct if reference is None else reference
    for row in out:
        sync = reference.get((row["task"], 1.0, sync_batch))
        row["distinct_states_vs_sync"] = quartiles(
            [] if sync is None else distinct[(row["task"], row["p"], row["batch_size"])] / sync)
    return out, distinct


def claim2(table, conductances: dict, rebuild: Callable, n_runs: int, ceiling_table=None) -> dict:
    """Lab network: error and accuracy per local rule, task and p, at equal updates per edge
    and at equal steps (`rows`); getting stuck, measured on the discrete rule's trajectories
    (`stuck`); the Iris ceiling (`ceiling`, from gradient descent's sweep); `n_edges`, the
    lab stand-in's edges."""
    sync_steps = int(table[table.p == 1].steps.max())
    rows = [row for (rule, task), part in table.groupby(["rule", "task"], sort=True)
            for row in _desync_rows(part, sync_steps, rule=rule, task=task)]
    discrete = table[table.rule == "discrete"]
    stuck, _ = trajectory_measures(rebuild, discrete, conductances, n_runs, sync_batch=discrete.batch_size.iloc[0])
    n_edges = int(len(next(iter(conductances.values()))))  # of the lab stand-in
    numbers = dict(rows=rows, stuck=stuck, ceiling=[] if ceiling_table is None else ceiling(ceiling_table),
                   n_edges=n_edges, sync_steps=sync_steps, edge_updates=float((table.p * table.steps).max()))
    numbers["iris_goals"] = iris_goals(numbers)
    return numbers


#: The Iris goals of the lab stand-in (median test accuracy over 30/120 splits): gradient
#: descent at the lab's own figure (above 95% with 30 training examples, Dillavou et al. 2022),
#: the discrete rule at 90%, what the lab's discrete network was asked to reach here.
IRIS_GOALS = {"gradient_descent": 0.95, "discrete": 0.90}


def iris_goals(claim2_numbers: dict) -> dict:
    """Each Iris goal against the median test accuracy reached: gradient descent's ceiling, and
    the discrete rule at the p of the highest median *training* accuracy (equal updates per
    edge; the test set never picks a hyperparameter); `{}` without Iris runs."""
    discrete = [r for r in claim2_numbers["rows"] if r["rule"] == "discrete" and "test_accuracy" in r]
    if not claim2_numbers["ceiling"] or not discrete:
        return {}
    best = max(discrete, key=lambda r: r["accuracy"]["median"])
    reached = {"gradient_descent": claim2_numbers["ceiling"][0]["test_accuracy"]["median"],
               "discrete": best["test_accuracy"]["median"]}
    return {name: dict(goal=goal, median=reached[name], reached=bool(reached[name] >= goal),
                       **({"best_p": best["p"]} if name == "discrete" else {}))
            for name, goal in IRIS_GOALS.items()}


# ------------------------------------------------------------------ claim 3


def claim3_summary(desync, minibatch, conductances: dict):
    """Spread over keys, deviation from the sync full-batch run, final loss, per network, of
    desync p and mini-batch b: `(summary, counts, ps, bs, by_network)`, `ps` the p < 1
    measured and `bs` the batch sizes, both in decreasing order, `by_network` each network's
    measures (`{"desync:0.5": {network: measures}}`, for `claim3_matches`).

    `summary[...]["loss_vs_sync"]`: the paired ratio (same network) of final C/C0 over the
    sync full-batch run's. `conductances`: `{"desync": {run: k}, "minibatch": {run: k}}`
    final conductances.
    """
    by_network, numbers = {}, {}
    sync = final(desync)[lambda t: t.p == 1].groupby("network_seed").run.first()  # the reference run per network
    nan = dict(spread=float("nan"), deviation=float("nan"), loss_ratio=float("nan"))
    for family, table in (("desync", desync), ("minibatch", minibatch)):
        k = conductances[family]
        done = final(table)
        knob = "p" if family == "desync" else "batch_size"
        for value, everyone in table.groupby(knob, sort=True):
            numbers[f"{family}:{plain(value)}"] = counts(everyone)
        for (value, net), runs in table.groupby([knob, "network_seed"], sort=True):
            runs = done[(done[knob] == value) & (done.network_seed == net)]  # completed runs only
            reference = conductances["desync"][int(sync[net])] if net in sync.index else None
            m = (spread_over_keys(np.stack([k[int(r)] for r in runs.run]), reference) if len(runs) >= 2
                 else dict(nan))  # fewer than two completed keys: no spread (NaN, left out of the medians)
            m["loss_ratio"] = float(runs.normalized_loss.median()) if len(runs) else float("nan")
            by_network.setdefault(f"{family}:{plain(value)}", {})[plain(net)] = m
    summary = {}
    for key, nets in by_network.items():
        summary[key] = {name: quartiles([m[name] for m in nets.values()]) for name in nan}
        summary[key]["loss_vs_sync"] = quartiles(_paired(nets, by_network.get("desync:1.0", {}), "loss_ratio"))
    ps = sorted((float(key.split(":")[1]) for key in by_network if key.startswith("desync:")), reverse=True)
    bs = sorted((int(key.split(":")[1]) for key in by_network if key.startswith("minibatch:")), reverse=True)
    return summary, numbers, [p for p in ps if p != 1], bs, by_network


def _paired(these: dict, those: dict, name: str) -> list[float]:
    """`name` of each network in `these` over the same network's in `those`."""
    return [m[name] / those[net][name] for net, m in these.items() if net in those]


def claim3_matches(summary: dict, by_network: dict, ps: list, bs: list) -> list[dict]:
    """For each p, the b whose median spread (and deviation) is closest in log, and the
    ratio of b's value over p's; the final errors of p and of the b matched by spread.
    `spread_ratio_by_network`, `loss_ratio_by_network`: the same ratios (matched b over p)
    paired per network, median [quartiles] over networks."""
    matches = []
    for p in ps:
        row = dict(p=p)
        for name in ("spread", "deviation"):
            target = summary[f"desync:{p}"][name]["median"]
            best = min(bs, key=lambda b: abs(math.log(summary[f"minibatch:{b}"][name]["median"] / target)))
            row[f"b_by_{name}"] = best
            row[f"{name}_ratio"] = summary[f"minibatch:{best}"][name]["median"] / target
        best = row["b_by_spread"]
        row["loss_desync"] = summary[f"desync:{p}"]["loss_ratio"]["median"]
        row["loss_minibatch"] = summary[f"minibatch:{best}"]["loss_ratio"]["median"]
        for name in ("spread", "loss_ratio"):
            row[f"{name.split('_')[0]}_ratio_by_network"] = quartiles(
                _paired(by_network[f"minibatch:{best}"], by_network[f"desync:{p}"], name))
        matches.append(row)
    return matches


def claim3_discrete(desync, minibatch, stuck_desync: list[dict], stuck_minibatch: list[dict]) -> list[dict]:
    """The discrete lab network under both noises: a row per desync p (full batch) and per
    mini-batch b (p = 1): final C/C0 and its paired ratio (same network) to the synchronous
    full-batch run's, Iris test accuracy, and the stuck measures of `trajectory_measures`
    (`stuck_*`, distinct states paired with the same synchronous full-batch runs)."""
    sync = final(desync[desync.p == 1]).set_index("network_seed").normalized_loss
    rows = []
    for family, table, knob, stuck in (("desync", desync, "p", stuck_desync),
                                       ("minibatch", minibatch, "batch_size", stuck_minibatch)):
        for value, everyone in sorted(table.groupby(knob), key=lambda g: -float(g[0])):
            runs = final(everyone)
            measured = next(s for s in stuck if s[knob] == plain(value))
            rows.append(dict(family=family, value=plain(value), **counts(everyone),
                             edge_updates=float((everyone.p * everyone.steps).max()),
                             loss_ratio=quartiles(runs.normalized_loss),
                             vs_sync=quartiles(runs.set_index("network_seed").normalized_loss / sync),
                             test_accuracy=quartiles(runs.test_accuracy),
                             **{name: measured[name] for name in ("distinct_states", "distinct_per_step",
                                                                  "distinct_states_vs_sync", "undo_fraction", "move_rate",
                                                                  "periodic_fraction", "window_steps")}))
    return rows


# ------------------------------------------------------------------ local rule vs gradient descent


def cl_vs_gd(table) -> dict:
    """Cosine between the coupled-learning update and -grad per dtype and eta (`cosine`; its
    `cosine_minus_start`: each run's median cosine minus its cosine at step 0); each run's
    median cosine in float32 minus the same instance's in float64, per eta
    (`float32_minus_float64`); final C/C0 of both rules (`curves`)."""
    cl = table[table.rule == "coupled_learning"]
    done = cl[cl.status == "ok"]  # completed runs: a failed run's cosines stop early
    per_run = done.dropna(subset=["cosine"]).groupby(["dtype", "eta", "instance"]).cosine.median()
    first = done[done.step == 0].dropna(subset=["cosine"]).set_index(["dtype", "eta", "instance"]).cosine
    cosine = [dict(dtype=dtype, eta=float(eta), **counts(everyone),
                   cosine=quartiles(per_run.loc[dtype, eta] if (dtype, eta) in per_run else []),
                   cosine_at_start=quartiles(first.loc[dtype, eta] if (dtype, eta) in first else []),
                   cosine_minus_start=quartiles((per_run - first).loc[dtype, eta]
                                                if (dtype, eta) in per_run and (dtype, eta) in first else []))
              for (dtype, eta), everyone in cl.groupby(["dtype", "eta"], sort=True)]
    precision = [dict(eta=float(eta), difference=quartiles(per_run.loc["float32", eta] - per_run.loc["float64", eta]))
                 for eta in sorted(cl.eta.unique())
                 if ("float32", eta) in per_run and ("float64", eta) in per_run]
    ended = final(table)
    curves = [dict(dtype=dtype, rule=rule, eta=None if eta != eta else float(eta),
                   learning_rate=None if lr != lr else float(lr), **counts(everyone),
                   loss_ratio=quartiles(ended[ended.run.isin(everyone.run)].normalized_loss))
              for (dtype, rule, eta, lr), everyone in table.groupby(["dtype", "rule", "eta", "learning_rate"],
                                                                   dropna=False, sort=True)]
    return dict(cosine=cosine, curves=curves, float32_minus_float64=precision)
