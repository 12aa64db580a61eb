"""Pictures: learning curves of a loaded sweep table (medians and quartile bands, grouped and
faceted by its columns), and networks. Nothing here reads a sweep's files (see `jaxnet.sweep`)."""

from __future__ import annotations

import difflib
import textwrap
from numbers import Number
import numpy as np

from ._observables import edge_currents
from ._plot_network import KIND_STYLES, diode_marks, edge_paths, k_label, kind_handles, label_offset, layout, legend_rows

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


def _hue_label(hue: list[str], key: tuple) -> str:
    """`p=0.5, rule=...`; a column with no value on these rows (e.g. `learning_rate` on
    coupled learning's) is left out, and a key with none at all is `(no learning_rate)`."""
    parts = [_label_of(h, v) for h, v in zip(hue, key) if v is not None]
    return ", ".join(parts) if parts or not hue else f"(no {', '.join(hue)})"


def _failed(runs: int) -> str:
    return f" ({runs} failed run{'s' * (runs != 1)} not drawn)" if runs else ""


def _where(table, column: str | None, value) -> np.ndarray:
    """The rows of one facet's value (all rows without a facet column)."""
    return np.ones(len(table), bool) if column is None else (table[column] == value).to_numpy()


def _key(key) -> tuple:
    """A groupby key as a tuple, NaN as None (NaN != NaN, so a NaN key would match no other)."""
    key = key if isinstance(key, tuple) else (key,)
    return tuple(None if isinstance(v, (float, np.floating)) and v != v else v for v in key)


def _order(key: tuple) -> list:
    """Sorts hue keys column by column: numbers ascending, then text, then no value (a column
    may hold both, e.g. a batch size or "full")."""
    return [(v is None, not isinstance(v, Number), v if isinstance(v, Number) else str(v)) for v in key]


def _curves(part, x: str, y: str, hue: list[str], logx: bool) -> dict:
    """One facet's curves: `{hue key: (quartiles by x, runs drawn, failed runs)}`, over the
    completed runs (a failed run leaving the median midway would bend the curve)."""
    out = {}
    for key, curves in part.groupby(hue, dropna=False, sort=True) if hue else [((), part)]:
        if logx:
            curves = curves[curves[x] > 0]
        failed = 0
        if "status" in curves.columns and "run" in curves.columns:
            failed = curves[curves.status == "failed"].run.nunique()
            curves = curves[curves.status == "ok"]
        n = curves.run.nunique() if "run" in curves.columns else int(curves.groupby(x)[y].count().max() if len(curves) else 0)
        out[_key(key)] = (curves.groupby(x)[y].quantile([0.25, 0.5, 0.75]).unstack(), n, failed)
    return out


def _share_y(facets: list[dict], log: bool) -> bool:
    """Whether one y range suits every facet: unless the facets' joint range (quartile bands)
    is wider than some facet's own by more than a decade on a log axis, or tenfold on a linear
    one, which would squash that facet into a sliver."""
    spans = []
    for facet in facets:
        values = np.concatenate([s.to_numpy().ravel() for s, _, _ in facet.values()] or [np.zeros(0)])
        values = values[np.isfinite(values) & (values > 0)] if log else values[np.isfinite(values)]
        if values.size:
            values = np.log10(values) if log else values
            spans.append((values.min(), values.max()))
    if len(spans) < 2:
        return True
    low, high = np.array(spans).T
    joint, own = high.max() - low.min(), high - low
    return bool(np.all(joint - own <= 1.0)) if log else bool(np.all(joint <= 10 * own))


def _colours(keys: list) -> dict:
    """One colour per hue key, the same in every facet: tab10 for up to 10 keys, tab20 up to
    20, else evenly along viridis."""
    from matplotlib import colormaps

    if len(keys) <= 20:
        palette = colormaps["tab10" if len(keys) <= 10 else "tab20"].colors
    else:
        palette = colormaps["viridis"](np.linspace(0, 1, len(keys)))
    return {key: palette[i] for i, key in enumerate(keys)}


def _count(facet: dict) -> str:
    """`n = 6 runs per curve` (a range where the curves differ), and the failed runs left out."""
    ns = sorted({n for _, n, _ in facet.values()}) or [0]
    text = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"
    text += (" run" if ns[-1] == 1 else " runs") + (" per curve" if len(facet) > 1 else "")
    failed = sum(f for _, _, f in facet.values())
    return text + (f", {failed} failed not drawn" if failed else "")


def plot_curves(
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
    grid_columns: tuple[str, ...] = (),
):
    """Learning curves of a loaded results table to a PNG (what `jn.plot_sweep` draws; see it
    for the arguments): median over instances with the quartile band, over completed runs.

    `table` is a pandas `DataFrame` of a sweep's results; `grid_columns` are the columns a
    default `hue` is chosen from (each that varies, except `col` and `row`; none: one curve
    per facet). Returns the matplotlib `Figure`.
    """
    for name in [x, y, col, row] + ([hue] if isinstance(hue, str) else list(hue or [])):
        if name is not None and name not in table.columns:
            close = difflib.get_close_matches(name, [str(c) for c in table.columns], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{name!r} is not a column of the results.{hint} Columns: {', '.join(table.columns)}.")
    plt = pyplot()
    if table[y].isna().all():
        raise ValueError(f"column {y!r} holds no values in this sweep (e.g. accuracy needs a classification task).")
    if hue is None:
        hue = [c for c in grid_columns if c in table.columns and c not in (col, row) and table[c].nunique(dropna=False) > 1]
    hue = [hue] if isinstance(hue, str) else list(hue)
    col_values = sorted(table[col].dropna().unique(), key=str) if col else [None]
    row_values = sorted(table[row].dropna().unique(), key=str) if row else [None]
    facets = {(i, j): _curves(table[_where(table, col, cv) & _where(table, row, rv)], x, y, hue, logx)
              for i, rv in enumerate(row_values) for j, cv in enumerate(col_values)}
    keys = sorted({key for facet in facets.values() for key in facet}, key=_order)
    colours = _colours(keys)
    if sharey is None:
        sharey = _share_y(list(facets.values()), y in LOG_METRICS)
    fig, axes = plt.subplots(len(row_values), len(col_values), squeeze=False, sharex=True, sharey=sharey,
                             layout="constrained",
                             figsize=(4.2 * len(col_values) + 1.2 + 1.6 * bool(hue), 3.3 * len(row_values) + 0.8))
    for (i, j), facet in facets.items():
        ax = axes[i][j]
        for key, (stats, n, failed) in facet.items():
            if stats.empty:
                continue
            ax.plot(stats.index, stats[0.5], color=colours[key],
                    label=(_hue_label(hue, key) or y) + _failed(failed))
            ax.fill_between(stats.index, stats[0.25], stats[0.75], color=colours[key], alpha=0.2, lw=0)
        if y in LOG_METRICS:
            ax.set_yscale("log")
        if logx:
            ax.set_xscale("log")
        facet_label = ", ".join(_label_of(n, v) for n, v in ((row, row_values[i]), (col, col_values[j])) if n)
        ax.set_title("\n".join(filter(None, (facet_label, _count(facet)))), fontsize=9)
        if i == len(row_values) - 1:
            ax.set_xlabel(LABELS.get(x, x))
        if j == 0:
            ax.set_ylabel(LABELS.get(y, y) + "\n(median, quartiles)")
        ax.grid(alpha=0.3)
    if hue:
        _shared_legend(fig, facets, keys, colours, hue)
    if title:  # wrapped to the figure's width (about 10 characters an inch)
        fig.suptitle(textwrap.fill(title, int(10 * fig.get_figwidth())))
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return fig


def _shared_legend(fig, facets: dict, keys: list, colours: dict, hue: list[str]) -> None:
    """One legend for the figure: an entry per hue key in its one colour, with the failed runs
    it leaves out, summed over the facets."""
    from matplotlib.lines import Line2D

    handles, labels = [], []
    for key in keys:
        failed = sum(facet[key][2] for facet in facets.values() if key in facet)
        handles.append(Line2D([], [], color=colours[key]))
        labels.append(_hue_label(hue, key) + _failed(failed))
    fig.legend(handles, labels, loc="outside right center", fontsize=8)


def plot_network(
    net,
    conductances,
    voltages=None,
    *,
    task=None,
    edge_color: str = "conductance",
    path: str | None = None,
    ax=None,
    title: str | None = None,
    k_range: tuple[float, float] | None = None,
):
    """Draw a network: edges by conductance (or current), nodes by voltage, terminals marked.

    **Arguments:**

    - `net`: the network; node positions from its generator (`net.positions`), else a spectral
      layout. Parallel edges (joining the same two nodes) are drawn as arcs bowed apart. With
      `elements`, line style marks the kind (solid resistor, dashed diode, dotted smooth
      diode, dash-dot transistor; a legend names those present), and a ▶| symbol at the middle
      of each diode and smooth diode points from its anode (the edge's sender) to its cathode
      (receiver).
    - `conductances`: `(E,)`, the learned `k`; edge width grows with it (log scale when it
      spans a decade). The colour bar says what it is: a conductance (S), or on transistors
      the gate voltage (V).
    - `voltages`: optional `(N,)` node voltages (e.g. one example's free state, `jn.solve`);
      nodes are coloured by them.
    - `task`: optional `Task` whose inputs, outputs and ground nodes are marked and labelled
      (labels set off from their markers, away from the network's centre).
    - `edge_color`: ``"conductance"`` or ``"current"`` (`|I_e|`, needs `voltages`).
    - `path`: write a PNG there; `ax`: draw into this matplotlib axes (else a new figure).
    - `title`: the axes' title.
    - `k_range`: optional `(low, high)`, the `k` that the colour bar and the edge widths span
      (default: this `k`'s own range); give two drawings one range to compare them.

    **Returns:** the matplotlib `Figure`.

    ```python
    jn.plot_network(net, k, jn.solve(net, k, task.fixed_nodes, x_and_ground), task=task, path="net.png")
    ```
    """
    from matplotlib.collections import LineCollection

    k = np.asarray(conductances, float)
    if k.shape != (net.n_edges,):
        raise ValueError(f"conductances must have shape ({net.n_edges},); got {k.shape}.")
    if edge_color not in ("conductance", "current"):
        raise ValueError(f"edge_color must be 'conductance' or 'current'; got {edge_color!r}.")
    if k_range is not None and not (np.shape(k_range) == (2,) and 0 <= k_range[0] <= k_range[1] < np.inf):
        raise ValueError(f"k_range must be (low, high) with 0 <= low <= high < inf; got {k_range!r}.")
    if voltages is not None:
        voltages = np.asarray(voltages, float)
        if voltages.shape != (net.n_nodes,):
            raise ValueError(f"voltages must have shape ({net.n_nodes},) (one example's state); got {voltages.shape}.")
    if edge_color == "current" and voltages is None:
        raise ValueError("edge_color='current' needs voltages.")
    plt = pyplot()
    own_figure = ax is None
    if own_figure:
        fig, ax = plt.subplots(figsize=(6.4, 5.4), layout="constrained")
    else:
        fig = ax.figure
    pos = layout(net)
    kinds = np.zeros(net.n_edges, int) if net.elements is None else np.asarray(net.elements.kind)
    if edge_color == "current":
        values, label = np.abs(np.asarray(edge_currents(net, k, voltages))), "|current| (A)"
    else:
        values, label = k, k_label(kinds)
    positive = k[k > 0]
    low, high = k_range if k_range is not None else (positive.min(), positive.max()) if positive.size else (0.0, 0.0)
    spread = low > 0 and high / low > 10
    scale = (lambda v: np.log(np.maximum(v, low))) if spread else (lambda v: np.asarray(v, float))  # noqa: E731
    span = scale(high) - scale(low)
    width = 0.5 + 4.0 * np.clip((scale(k) - scale(low)) / span, 0, 1) if span > 0 else np.full(net.n_edges, 2.0)
    paths = edge_paths(net, pos)
    lines = LineCollection(paths, linewidths=width, cmap="viridis", linestyles=[KIND_STYLES[c] for c in kinds])
    lines.set_array(values)
    if k_range is not None and edge_color == "conductance":
        lines.set_clim(low, high)
    ax.add_collection(lines)
    marks = diode_marks(paths, kinds)
    if marks is not None:
        ax.add_collection(marks)
    fig.colorbar(lines, ax=ax, label=label, fraction=0.046, pad=0.02)
    if voltages is None:
        ax.scatter(pos[:, 0], pos[:, 1], s=18, c="0.35", zorder=3)
    else:
        dots = ax.scatter(pos[:, 0], pos[:, 1], s=30, c=voltages, cmap="coolwarm", edgecolors="k", linewidths=0.3, zorder=3)
        fig.colorbar(dots, ax=ax, label="voltage (V)", orientation="horizontal", fraction=0.046, pad=0.02)
    if task is not None:
        for name, nodes, marker in (("in", task.inputs, "s"), ("out", task.outputs, "^"), ("gnd", task.ground, "v")):
            nodes = np.asarray(nodes)
            ax.scatter(pos[nodes, 0], pos[nodes, 1], s=120, facecolors="none", edgecolors="k", marker=marker,
                       linewidths=1.2, zorder=4, label={"in": "inputs", "out": "outputs", "gnd": "ground"}[name])
            for i, node in enumerate(nodes):
                ax.annotate(f"{name}{i if nodes.size > 1 else ''}", pos[node], fontsize=8, zorder=5,
                            bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.7), **label_offset(pos, node))
        ax.margins(0.15)  # room for the labels of terminals on the rim
    handles, columns = legend_rows(ax.get_legend_handles_labels()[0],
                                   kind_handles(kinds) if net.elements is not None else [])
    if handles and own_figure:  # above everything, the colour bars included, with room made for it
        fig.legend(handles=handles, fontsize=8, loc="outside upper center", ncol=columns, frameon=False)
    elif handles:
        ax.legend(handles=handles, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=columns, frameon=False)
    ax.set_aspect("equal")
    ax.autoscale()
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, pad=6 if own_figure else 6 + 18 * -(-len(handles) // max(columns, 1)))
    if path is not None:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return fig


def plot_before_after(net, task, k_before, k_after, path: str, label: str) -> None:
    """A network at the start and at the end of its training, side by side, nodes coloured by
    the free state of its task's first training example; `label` names it in the titles."""
    import jax.numpy as jnp

    from ._solve import solve

    x = jnp.concatenate([task.x_train[0], jnp.zeros(task.ground.shape[0], task.x_train.dtype)])
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    both = np.concatenate([np.asarray(k_before, float), np.asarray(k_after, float)])
    k_range = (float(both.min()), float(both.max()))  # one scale for the two drawings
    for ax, k, when in ((axes[0], k_before, "before"), (axes[1], k_after, "after")):
        k = jnp.asarray(k, x.dtype)
        plot_network(net, k, solve(net, k, task.fixed_nodes, x), task=task, ax=ax, title=f"{label}, {when} training",
                     k_range=k_range)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
