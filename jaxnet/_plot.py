"""Learning curves of a sweep: medians and quartile bands, grouped and faceted by config columns."""

from __future__ import annotations

import numpy as np

#: Metrics plotted on a log axis (they span decades); others are linear.
LOG_METRICS = ("loss", "normalized_loss", "test_loss")
LABELS = {
    "step": "learning step",
    "edge_updates": "updates per edge (p x step)",
    "loss": "training loss C (V²)",
    "normalized_loss": "training loss C / C0",
    "test_loss": "test loss (V²)",
    "accuracy": "training accuracy",
    "test_accuracy": "test accuracy",
    "cosine": "cos(update, -grad)",
    "at_bound": "fraction of edges at a bound",
}


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (figures are written, never shown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label_of(name, value) -> str:
    return f"{name}={value:g}" if isinstance(value, (float, np.floating)) else f"{name}={value}"


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
    sharey: bool = True,
):
    """Learning curves of a sweep to a PNG: median over instances with the quartile band.

    **Arguments:**

    - `table`: a results table (`jn.load_sweep(DIR)`), or a sweep directory.
    - `path`: the PNG to write.
    - `x`: ``"step"`` or ``"edge_updates"`` (equal updates per edge compare desync fairly).
    - `y`: a metric column (`normalized_loss`, `loss`, `test_loss`, `accuracy`, ...).
    - `hue`: config column(s) whose values get one curve each; default: every grid column
      that varies, except those used for `col` and `row`.
    - `col`, `row`: config columns to facet by.
    - `logx`: a log x axis (points at x <= 0 are left out), for runs whose lengths span decades.
    - `sharey`: one y range for all facets (False: each facet its own, e.g. one per task).

    **Returns:** the matplotlib `Figure`.

    ```python
    jn.plot_sweep(jn.load_sweep("out/quick"), "out/quick/curves.png", hue="p", col="rule")
    ```
    """
    from ._config import COLUMNS
    from ._sweep import load_sweep

    if isinstance(table, str):
        table = load_sweep(table)
    for name in [x, y, col, row] + ([hue] if isinstance(hue, str) else list(hue or [])):
        if name is not None and name not in table.columns:
            raise ValueError(f"{name!r} is not a column of the results; columns: {', '.join(table.columns)}.")
    plt = pyplot()
    if table[y].isna().all():
        raise ValueError(f"column {y!r} holds no values in this sweep (e.g. accuracy needs a classification task).")
    facets = [c for c in (col, row) if c]
    if hue is None:
        hue = [c for c in COLUMNS if c in table.columns and c not in facets and table[c].nunique(dropna=False) > 1]
    hue = [hue] if isinstance(hue, str) else list(hue)
    col_values = sorted(table[col].dropna().unique(), key=str) if col else [None]
    row_values = sorted(table[row].dropna().unique(), key=str) if row else [None]
    fig, axes = plt.subplots(len(row_values), len(col_values), squeeze=False, sharex=True, sharey=sharey,
                             figsize=(4.2 * len(col_values) + 1.2, 3.3 * len(row_values) + 0.6))
    for i, rv in enumerate(row_values):
        for j, cv in enumerate(col_values):
            ax = axes[i][j]
            part = table
            if col:
                part = part[part[col] == cv]
            if row:
                part = part[part[row] == rv]
            groups = part.groupby(hue, dropna=False, sort=True) if hue else [((), part)]
            for key, curves in groups:
                key = key if isinstance(key, tuple) else (key,)
                if logx:
                    curves = curves[curves[x] > 0]
                stats = curves.groupby(x)[y].quantile([0.25, 0.5, 0.75]).unstack()
                label = ", ".join(_label_of(h, v) for h, v in zip(hue, key) if v is not None and v == v) or y
                line, = ax.plot(stats.index, stats[0.5], label=label)
                ax.fill_between(stats.index, stats[0.25], stats[0.75], color=line.get_color(), alpha=0.2, lw=0)
            if y in LOG_METRICS:
                ax.set_yscale("log")
            if logx:
                ax.set_xscale("log")
            ax.set_title(", ".join(_label_of(n, v) for n, v in ((row, rv), (col, cv)) if n), fontsize=9)
            if i == len(row_values) - 1:
                ax.set_xlabel(LABELS.get(x, x))
            if j == 0:
                ax.set_ylabel(LABELS.get(y, y) + "\n(median, quartiles)")
            ax.grid(alpha=0.3)
            if len(ax.get_legend_handles_labels()[1]) > 1 or (hue and len(col_values) * len(row_values) > 1):
                ax.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return fig
