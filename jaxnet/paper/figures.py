"""The reproduction's figures: each claim's learning curves (`plot_sweep`) and the plots of
its measures, written as PNG files into the output directory.

Every import from plotting (`jaxnet._plot`) in the reproduction is here. Each function
returns the file names it wrote, in the order the report shows them.
"""

from __future__ import annotations

import os
import textwrap

import numpy as np

from .._plot import pyplot
from ..sweep import plot_run_network, plot_sweep


def _log_x(ax, values) -> None:
    """A log x axis ticked at the values measured (p, b, eta), and only there."""
    import matplotlib.ticker

    ax.set_xscale("log")
    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def _linear_x(ax, values) -> None:
    """A linear x axis ticked at the values measured: for small integer counts (mini-batch sizes)."""
    ax.set_xticks(values, [f"{v:g}" for v in values])


def _title(text: str) -> str:
    """A title wrapped to fit a one-panel figure (smoke scale draws one panel)."""
    return textwrap.fill(text, 50)


def _spans_decades(steps) -> bool:
    """Whether the positive logged steps span more than two decades: a log axis only then."""
    steps = np.asarray(steps, float)
    steps = steps[steps > 0]
    return len(steps) > 1 and steps.max() / steps.min() > 100


def _save(fig, plt, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


# ------------------------------------------------------------------ claim 1


def claim1(table, out_dir: str) -> list[str]:
    """Learning curves at equal updates per edge and at equal steps; Iris accuracy if measured."""
    figures = ["claim1_edge_updates.png", "claim1_steps.png"]
    multi_size = table.n_nodes.nunique() > 1
    plot_sweep(table, os.path.join(out_dir, figures[0]), x="edge_updates", hue="p", col="task", sharey=False,
               row="n_nodes" if multi_size else None,
               title=_title("Claim 1: continuous coupled learning at equal updates per edge"))
    plot_sweep(table, os.path.join(out_dir, figures[1]), x="step", hue="p", col="task", sharey=False,
               row="n_nodes" if multi_size else None, logx=_spans_decades(table.step.unique()),
               title=_title("Claim 1: the same runs at equal steps (desync: p updates per edge per step)"))
    if (table.task == "iris").any():
        figures.append("claim1_iris_accuracy.png")
        plot_sweep(table[table.task == "iris"], os.path.join(out_dir, figures[-1]), x="edge_updates",
                   y="test_accuracy", hue="p", col="n_nodes" if multi_size else None,
                   title=_title("Claim 1: Iris, accuracy on the held-out examples"))
    return figures


def claim1_network(config, sweep_dir: str, run: int, out_dir: str) -> str:
    """One run of claim 1's sweep drawn as a network (`plot_run_network`)."""
    figure = "claim1_network.png"
    plot_run_network(config, sweep_dir, run, os.path.join(out_dir, figure))
    return figure


# ------------------------------------------------------------------ claim 2


def claim2(table, rows: list[dict], stuck: list[dict], out_dir: str) -> list[str]:
    """Curves of the discrete rule and coupled learning, the discrete rule's stuck measures
    against p, and Iris accuracy if measured. `rows`, `stuck`: `analysis.claim2`'s."""
    figures = ["claim2_curves.png", "claim2_stuck.png"]
    plot_sweep(table, os.path.join(out_dir, figures[0]), x="edge_updates", hue=["rule", "p"], col="task",
               sharey=False,
               title=_title("Claim 2: lab stand-in, one example per update: discrete rule (taps even in "
                            "resistance) and coupled learning"))
    if (table[table.rule == "discrete"].task == "iris").any():
        figures.append("claim2_iris_accuracy.png")
        plot_sweep(table[table.task == "iris"], os.path.join(out_dir, figures[-1]), x="edge_updates",
                   y="test_accuracy", hue=["rule", "p"],
                   title=_title("Claim 2: Iris on the lab network, held-out accuracy"))
    _plot_stuck(stuck, [r for r in rows if r["rule"] == "discrete"], os.path.join(out_dir, figures[1]))
    return figures


def _plot_stuck(stuck: list[dict], rows: list[dict], path: str) -> None:
    plt = pyplot()

    panels = [("loss_ratio", "final C / C0", True),
              ("distinct_per_step", "new network states per step\nin the last quarter", False),
              ("undo_fraction", "fraction of moves that\nundo the previous one", False),
              ("move_rate", "fraction of (edge, step)\nthat change level", False)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.4))
    for ax, (name, label, log) in zip(axes, panels):
        source = rows if name == "loss_ratio" else stuck
        for task in sorted({r["task"] for r in source}):
            part = sorted((r for r in source if r["task"] == task), key=lambda r: r["p"])
            p = np.array([r["p"] for r in part])
            q = {k: np.array([r[name][k] for r in part]) for k in ("median", "q25", "q75")}
            ax.errorbar(p, q["median"], yerr=[q["median"] - q["q25"], q["q75"] - q["median"]], marker="o",
                        capsize=3, label=task)
        _log_x(ax, sorted({r["p"] for r in source}))
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("update probability p")
        ax.set_ylabel(label + "\n(median, quartiles)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Claim 2: error and getting stuck, at equal updates per edge")
    _save(fig, plt, path)


# ------------------------------------------------------------------ claim 3


def claim3(desync, minibatch, summary: dict, ps: list, bs: list, matches: list[dict], out_dir: str) -> list[str]:
    """The measures of desync against mini-batching (`analysis.claim3_summary`'s and
    `claim3_matches`'), and the learning curves of both families."""
    figure = "claim3_desync_vs_minibatch.png"
    _plot_claim3(summary, ps, bs, matches, os.path.join(out_dir, figure))
    curves = "claim3_curves.png"
    import pandas as pd

    both = pd.concat([desync, minibatch], ignore_index=True)
    plot_sweep(both, os.path.join(out_dir, curves), x="edge_updates", hue=["p", "batch_size"],
               title=_title("Claim 3: desync (full batch) and mini-batches (p = 1), same networks and k0"))
    return [figure, curves]


def _plot_claim3(summary, ps, bs, matches, path):
    plt = pyplot()
    metrics = [("spread", "spread over keys\nRMS std of ln k"), ("deviation", "deviation from sync\nfull batch, RMS of Δ ln k"),
               ("loss_ratio", "final C / C0")]
    fig, axes = plt.subplots(len(metrics), 2, figsize=(9, 2.9 * len(metrics)), sharey="row")
    for i, (name, label) in enumerate(metrics):
        for j, (family, values, xlabel) in enumerate((("desync", ps, "desync probability p (full batch)"),
                                                      ("minibatch", bs, "mini-batch size b (p = 1)"))):
            ax = axes[i][j]
            q = {k: np.array([summary[f"{family}:{v}"][name][k] for v in values]) for k in ("median", "q25", "q75")}
            ax.errorbar(values, q["median"], yerr=[q["median"] - q["q25"], q["q75"] - q["median"]], marker="o",
                        capsize=3, color=f"C{j}")  # quartiles as bars: visible at a single p or b too
            (_log_x if family == "desync" else _linear_x)(ax, values)  # b: a small integer count
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
            if i == len(metrics) - 1:
                ax.set_xlabel(xlabel)
            if j == 0:
                ax.set_ylabel(label + "\n(median, quartiles)")
        if name == "spread":
            for m in matches:
                axes[i][0].annotate(f"≈ b={m['b_by_spread']}", (m["p"], summary[f"desync:{m['p']}"]["spread"]["median"]),
                                    textcoords="offset points", xytext=(4, 4), fontsize=8)
    fig.suptitle("Claim 3: desync against mini-batching, over noise keys from one initial network")
    _save(fig, plt, path)


# ------------------------------------------------------------------ local rule vs gradient descent


def cl_vs_gd(table, cosine: list[dict], out_dir: str) -> list[str]:
    """The cosine against eta (`analysis.cl_vs_gd`'s `cosine`); both rules' learning curves."""
    figures = ["cl_vs_gd_cosine.png", "cl_vs_gd_curves.png"]
    _plot_cosine(cosine, os.path.join(out_dir, figures[0]))
    plot_sweep(table[table.dtype == "float32"], os.path.join(out_dir, figures[1]), hue=["rule", "eta"],
               title=_title("Coupled learning and gradient descent on the same networks (float32)"))
    return figures


def _plot_cosine(cosine: list[dict], path: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for i, dtype in enumerate(sorted({c["dtype"] for c in cosine})):
        part = [c for c in cosine if c["dtype"] == dtype]
        eta = [c["eta"] for c in part]
        for j, (metric, when) in enumerate((("cosine", "whole run"), ("cosine_at_start", "step 0"))):
            q = {k: np.array([c[metric][k] for c in part]) for k in ("median", "q25", "q75")}
            ax.plot(eta, q["median"], marker="ox"[i], ls=("-", "--")[j], label=f"{dtype}, {when}", color=f"C{j}",
                    ms=(7, 9)[i])
            ax.fill_between(eta, q["q25"], q["q75"], alpha=0.15, color=f"C{j}", lw=0)
    _log_x(ax, sorted({c["eta"] for c in cosine}))
    ax.set_xlabel("nudge amplitude η (fraction of the output error)")
    ax.set_ylabel("cos(coupled-learning update, -grad C)\n(median and quartiles over runs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Coupled learning against the gradient", fontsize=10)
    _save(fig, plt, path)
