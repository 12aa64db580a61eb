"""`jn.plot_sweep`'s learning curves, on a small hand-made results table (no sweep is run):
colours by hue value across facets, one legend, y ranges per facet, counts in the titles, and
the `jaxnet plot` flags that reach it."""

import numpy as np
import pandas as pd
import pytest

import jaxnet as jn
from jaxnet import cli


def results(floors=(("coupled_learning", (1.0, 0.3), 1e-3, 6), ("gradient_descent", (0.5, 0.3), 1e-12, 4)),
            failed=()):
    """A tidy table like a sweep's: per rule its p values, loss floor and instances; the runs
    `(rule, p, instance)` in `failed` are marked failed."""
    rows, run = [], 0
    for rule, ps, floor, instances in floors:
        for p in ps:
            for instance in range(instances):
                status = "failed" if (rule, p, instance) in failed else "ok"
                for step in range(0, 101, 10):
                    loss = max(10.0 ** (-step * p / 4), floor * (1 + instance))
                    rows.append(dict(rule=rule, p=p, run=run, status=status, step=step, edge_updates=p * step,
                                     normalized_loss=loss, accuracy=np.nan))
                run += 1
    return pd.DataFrame(rows)


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_a_hue_value_has_one_colour_in_every_facet_and_one_legend(tmp_path):
    table = results(floors=(("coupled_learning", (0.1, 0.3), 1e-3, 3), ("gradient_descent", (0.3, 0.5), 1e-4, 3)))
    fig = jn.plot_sweep(table, str(tmp_path / "c.png"), x="edge_updates", hue="p", col="rule")
    left, right = (lines_by_label(ax) for ax in fig.axes)
    assert set(left) == {"p=0.1", "p=0.3"} and set(right) == {"p=0.3", "p=0.5"}
    # p=0.3 is the second curve on the left, the first on the right: the same colour all the same
    assert left["p=0.3"].get_color() == right["p=0.3"].get_color()
    colours = {left["p=0.1"].get_color(), left["p=0.3"].get_color(), right["p=0.5"].get_color()}
    assert len(colours) == 3
    assert [ax.get_legend() for ax in fig.axes] == [None, None]  # no legend per facet,
    (legend,) = fig.legends  # one for the figure, an entry per value, in its facets' colour
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["p=0.1", "p=0.3", "p=0.5"]
    for text, handle in zip(texts, legend.legend_handles):
        assert handle.get_color() == (left | right)[text].get_color()


def test_facets_get_their_own_y_range_when_the_ranges_differ_by_decades(tmp_path):
    path = str(tmp_path / "c.png")
    table = results()  # coupled learning stops at 1e-3, gradient descent reaches 1e-12
    auto = jn.plot_sweep(table, path, hue="p", col="rule")
    (cl_low, cl_high), (gd_low, _) = (ax.get_ylim() for ax in auto.axes)
    assert gd_low < 1e-11 and cl_low > 1e-4 and cl_high < 3  # coupled learning is not squashed
    assert auto.axes[0].get_ylim() != auto.axes[1].get_ylim()
    assert jn.plot_sweep(table, path, hue="p", col="rule", sharey=False).axes[0].get_ylim() == (cl_low, cl_high)
    forced = jn.plot_sweep(table, path, hue="p", col="rule", sharey=True)
    assert forced.axes[0].get_ylim() == forced.axes[1].get_ylim()
    # floors a decade apart: one range suits both
    close = results(floors=(("coupled_learning", (1.0,), 1e-3, 3), ("gradient_descent", (1.0,), 1e-4, 3)))
    shared = jn.plot_sweep(close, path, col="rule")
    assert shared.axes[0].get_ylim() == shared.axes[1].get_ylim()


def test_titles_count_the_runs_and_the_failed_ones(tmp_path):
    table = results(failed={("gradient_descent", 0.5, 0), ("gradient_descent", 0.5, 1)})
    fig = jn.plot_sweep(table, str(tmp_path / "c.png"), hue="p", col="rule", title="Both rules")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "rule=coupled_learning\nn = 6 runs per curve"
    assert titles[1] == "rule=gradient_descent\nn = 2–4 runs per curve, 2 failed not drawn"
    assert fig.get_suptitle() == "Both rules"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["p=0.3", "p=0.5 (2 failed runs not drawn)", "p=1"]
    one = jn.plot_sweep(table[table.rule == "coupled_learning"], str(tmp_path / "c.png"), hue=[])
    assert one.axes[0].get_title() == "n = 12 runs" and not one.legends  # one curve: no legend
    long = "Claim 3: desync (full batch) and mini-batches (p = 1), same networks and k0, on one narrow figure"
    assert "\n" in jn.plot_sweep(table, str(tmp_path / "c.png"), hue="p", title=long).get_suptitle()  # wrapped


def test_a_hue_column_without_values_on_some_rows_still_names_their_curve(tmp_path):
    table = results()
    table["learning_rate"] = np.where(table.rule == "gradient_descent", 0.01, np.nan)
    fig = jn.plot_sweep(table, str(tmp_path / "c.png"), hue="learning_rate")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["learning_rate=0.01", "(no learning_rate)"]
    assert fig.axes[0].get_title() == "n = 8–12 runs per curve"
    table["batch_size"] = [("full" if p == 0.3 else 4) for p in table.p]  # numbers and text in one column
    fig = jn.plot_sweep(table, str(tmp_path / "c.png"), hue=["batch_size", "learning_rate"])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "batch_size=4, learning_rate=0.01", "batch_size=4", "batch_size=full, learning_rate=0.01", "batch_size=full"]


def test_the_command_line_passes_every_option_to_plot_sweep(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(jn, "plot_sweep", lambda *args, **kwargs: seen.append((args, kwargs)))
    out = str(tmp_path / "f.png")
    assert cli.main(["plot", "DIR", "--x", "edge_updates", "--hue", "p", "--hue", "rule", "--col", "task",
                     "--row", "n_nodes", "--no-sharey", "--logx", "--title", "A title", "--out", out]) == 0
    assert seen[-1] == (("DIR", out), dict(x="edge_updates", y="normalized_loss", hue=["p", "rule"], col="task",
                                           row="n_nodes", sharey=False, logx=True, title="A title"))
    assert cli.main(["plot", "DIR", "--sharey"]) == 0
    assert seen[-1][1]["sharey"] is True and seen[-1][1]["logx"] is False and seen[-1][1]["title"] is None
    assert cli.main(["plot", "DIR"]) == 0
    assert seen[-1][1]["sharey"] is None  # decided from the data
    with pytest.raises(SystemExit):
        cli.main(["plot", "DIR", "--sharey", "--no-sharey", "--logy"])
