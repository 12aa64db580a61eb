"""Pictures: learning curves of a loaded sweep table (medians and quartile bands, grouped and
faceted by its columns), and networks. Nothing here reads a sweep's files (see `jaxnet.sweep`)."""

from __future__ import annotations

import difflib
from collections import Counter

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
    sharey: bool = True,
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
    facets = [c for c in (col, row) if c]
    if hue is None:
        hue = [c for c in grid_columns if c in table.columns and c not in facets and table[c].nunique(dropna=False) > 1]
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
                failed = 0
                if "status" in curves.columns and "run" in curves.columns:
                    # completed runs only: a failed run leaving the median midway would bend the curve
                    failed = curves[curves.status == "failed"].run.nunique()
                    curves = curves[curves.status == "ok"]
                stats = curves.groupby(x)[y].quantile([0.25, 0.5, 0.75]).unstack()
                label = ", ".join(_label_of(h, v) for h, v in zip(hue, key) if v is not None and v == v) or y
                if failed:
                    label += f" ({failed} failed runs not drawn)"
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


def _layout(net) -> np.ndarray:
    """`(N, 2)` node positions: the generator's, else a spectral layout (the Laplacian's 2nd and
    3rd eigenvectors, which place nodes joined by edges near each other) relaxed by a few
    force-directed steps (Fruchterman-Reingold), which part nodes the spectral layout stacks."""
    if net.positions is not None:
        return np.asarray(net.positions, float)
    n = net.n_nodes
    lap = np.zeros((n, n))
    s, r = np.asarray(net.senders), np.asarray(net.receivers)
    np.add.at(lap, (s, s), 1.0)
    np.add.at(lap, (r, r), 1.0)
    np.add.at(lap, (s, r), -1.0)
    np.add.at(lap, (r, s), -1.0)
    _, vectors = np.linalg.eigh(lap)
    pos = vectors[:, 1:3] if n > 2 else np.stack([np.arange(n, dtype=float), np.zeros(n)], 1)
    pos = pos / max(np.abs(pos).max(), 1e-12) + 1e-3 * np.random.default_rng(0).normal(size=(n, 2))
    if n > 2000:  # the relaxation is O(N²) per step
        return pos
    ideal = 1.0 / np.sqrt(n)
    for temperature in np.linspace(0.1, 0.005, 100):
        delta = pos[:, None, :] - pos[None, :, :]
        dist = np.maximum(np.linalg.norm(delta, axis=-1), 1e-6)
        force = np.sum(delta / dist[..., None] * (ideal**2 / dist)[..., None], axis=1)  # repulsion
        pull = (pos[s] - pos[r]) * np.linalg.norm(pos[s] - pos[r], axis=1, keepdims=True) / ideal  # springs
        np.add.at(force, s, -pull)
        np.add.at(force, r, pull)
        length = np.maximum(np.linalg.norm(force, axis=1, keepdims=True), 1e-12)
        pos = pos + force / length * np.minimum(length, temperature)
    return pos


def _edge_paths(net, pos: np.ndarray) -> list[np.ndarray]:
    """Each edge's polyline: a straight `(2, 2)` segment, or for edges in parallel (joining
    the same pair of nodes) `(17, 2)` arcs bowed apart, symmetric about the straight line."""
    s, r = np.asarray(net.senders), np.asarray(net.receivers)
    pairs = [tuple(sorted(p)) for p in zip(s.tolist(), r.tolist())]
    count, seen = Counter(pairs), Counter()
    t = np.linspace(0.0, 1.0, 17)[:, None]
    paths = []
    for e, pair in enumerate(pairs):
        a, b = pos[pair[0]], pos[pair[1]]
        rank, seen[pair] = seen[pair], seen[pair] + 1
        if count[pair] == 1:
            paths.append(np.stack([pos[s[e]], pos[r[e]]]))
            continue
        normal = np.array([a[1] - b[1], b[0] - a[0]])  # |normal| = |b - a|
        bow = 0.25 * (rank - (count[pair] - 1) / 2) * normal  # the arc's peak, off the line
        control = (a + b) / 2 + 2 * bow  # a quadratic Bezier peaks halfway to its control point
        paths.append((1 - t) ** 2 * a + 2 * t * (1 - t) * control + t**2 * b)
    return paths


#: Line styles of the element kinds, in `jn.KINDS` order.
_KIND_STYLES = ("solid", (0, (4, 2)), (0, (1, 1.5)), (0, (5, 1.5, 1, 1.5)))


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
):
    """Draw a network: edges by conductance (or current), nodes by voltage, terminals marked.

    **Arguments:**

    - `net`: the network; node positions from its generator (`net.positions`), else a spectral
      layout. Parallel edges (joining the same two nodes) are drawn as arcs bowed apart. With `elements`, line style marks the kind (solid resistor, dashed diode, dotted
      smooth diode, dash-dot transistor).
    - `conductances`: `(E,)`; edge width grows with it (log scale when it spans a decade).
    - `voltages`: optional `(N,)` node voltages (e.g. one example's free state, `jn.solve`);
      nodes are coloured by them.
    - `task`: optional `Task` whose inputs, outputs and ground nodes are marked and labelled.
    - `edge_color`: ``"conductance"`` or ``"current"`` (`|I_e|`, needs `voltages`).
    - `path`: write a PNG there; `ax`: draw into this matplotlib axes (else a new figure).
    - `title`: the axes' title.

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
    if voltages is not None:
        voltages = np.asarray(voltages, float)
        if voltages.shape != (net.n_nodes,):
            raise ValueError(f"voltages must have shape ({net.n_nodes},) (one example's state); got {voltages.shape}.")
    if edge_color == "current" and voltages is None:
        raise ValueError("edge_color='current' needs voltages.")
    plt = pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 5))
    else:
        fig = ax.figure
    pos = _layout(net)
    if edge_color == "current":
        from ._states import edge_currents

        values, label = np.abs(np.asarray(edge_currents(net, k, voltages))), "|current| (A)"
    else:
        values, label = k, "conductance k"
    positive = k[k > 0]
    spread = positive.size and positive.max() / positive.min() > 10
    scale = np.log(np.maximum(k, positive.min())) if spread else k
    span = np.ptp(scale)
    width = 0.5 + 4.0 * (scale - scale.min()) / span if span > 0 else np.full(net.n_edges, 2.0)
    kinds = np.zeros(net.n_edges, int) if net.elements is None else np.asarray(net.elements.kind)
    lines = LineCollection(_edge_paths(net, pos), linewidths=width, cmap="viridis", linestyles=[_KIND_STYLES[c] for c in kinds])
    lines.set_array(values)
    ax.add_collection(lines)
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
                ax.annotate(f"{name}{i if nodes.size > 1 else ''}", pos[node], xytext=(5, 5), textcoords="offset points",
                            fontsize=8, zorder=5)
        ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    ax.set_aspect("equal")
    ax.autoscale()
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, pad=22 if task is not None else 6)
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
    for ax, k, when in ((axes[0], k_before, "before"), (axes[1], k_after, "after")):
        k = jnp.asarray(k, x.dtype)
        plot_network(net, k, solve(net, k, task.fixed_nodes, x), task=task, ax=ax, title=f"{label}, {when} training")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
