"""Pictures of a sweep: its learning curves (`jn.plot_sweep`) and one run's network before and
after training. The sweep's files are read here; `jaxnet._plot` draws what it is given."""

from __future__ import annotations

from .._plot import plot_before_after, plot_curves
from ._config import columns
from ._load import load_conductances, load_sweep, rebuild_run


def plot_sweep(
    table,
    path: str,
    *,
    x: str = "step",
    y: str = "normalized_loss",
    hue: list[str] | str | None = None,
    col: str | None = None,
    row: str | None = None,
    title: str | None = None,
    logx: bool = False,
    sharey: bool | None = None,
):
    """Learning curves of a sweep to a PNG: median over instances with the quartile band.

    Each value of `hue` has one colour in every facet, and the figure one legend. Curves are
    drawn over the completed runs; each facet's title gives `n`, the runs behind each of its
    curves, and how many failed runs (`status == "failed"`) it leaves out; the legend says
    how many each hue value leaves out in all.

    **Arguments:**

    - `table`: a results table (`jn.load_sweep(DIR)`), or a sweep directory.
    - `path`: the PNG to write.
    - `x`: ``"step"`` or ``"edge_updates"`` (equal updates per edge compare desync fairly).
    - `y`: a metric column (`normalized_loss`, `loss`, `test_loss`, `accuracy`, ...).
    - `hue`: config column(s) whose values get one curve each; default: every grid column
      that varies, except those used for `col` and `row`.
    - `col`, `row`: config columns to facet by.
    - `logx`: a log x axis (points at x <= 0 are left out), for runs whose lengths span decades.
    - `sharey`: one y range for all facets (`True`) or each facet its own (`False`). Default
      `None` decides from the data: shared, unless the facets' joint range (of their quartile
      bands) is wider than some facet's own by more than a decade on a log axis (tenfold on a
      linear one), as when gradient descent with Adam reaches 1e-12 and coupled learning 1e-3.

    **Returns:** the matplotlib `Figure`.

    ```python
    jn.plot_sweep(jn.load_sweep("out/quick"), "out/quick/curves.png", hue="p", col="rule")
    ```
    """
    if isinstance(table, str):
        table = load_sweep(table)
    return plot_curves(table, path, x=x, y=y, hue=hue, col=col, row=row, title=title, logx=logx, sharey=sharey,
                       grid_columns=columns())


def plot_run_network(config, sweep_dir: str, run: int, path: str) -> None:
    """One run of a finished sweep: its network at the start and at the end, side by side,
    nodes coloured by the free state of its first training example (demo and report)."""
    inputs = rebuild_run(config, run)
    plot_before_after(inputs.net, inputs.task, inputs.k0, load_conductances(sweep_dir)[run], path, f"run {run}")
