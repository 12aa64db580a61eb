"""The geometry and marks of a drawn network (`jn.plot_network`, in `jaxnet._plot`): node
layout, edge paths, line styles of the element kinds and their legend entries, diode symbols,
what the learned parameter `k` means (and its unit) on each kind, terminal labels' offsets."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ._elements import DIODE, KINDS, SMOOTH_DIODE, TRANSISTOR


def layout(net) -> np.ndarray:
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


def edge_paths(net, pos: np.ndarray) -> list[np.ndarray]:
    """Each edge's polyline, from its sender to its receiver: a straight `(2, 2)` segment, or
    for edges in parallel (joining the same pair of nodes) `(17, 2)` arcs bowed apart,
    symmetric about the straight line."""
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
        arc = (1 - t) ** 2 * a + 2 * t * (1 - t) * control + t**2 * b
        paths.append(arc if s[e] == pair[0] else arc[::-1])
    return paths


#: Line styles of the element kinds, in `jn.KINDS` order.
KIND_STYLES = ("solid", (0, (4, 2)), (0, (1, 1.5)), (0, (5, 1.5, 1, 1.5)))
#: The kinds with a direction: forward (conducting) from sender to receiver, `Δ_e > 0`.
DIRECTED = (DIODE, SMOOTH_DIODE)


def kind_handles(kinds: np.ndarray) -> list:
    """Legend entries for the element kinds present: each its line style, a diode's with the
    arrow that marks its direction."""
    from matplotlib.lines import Line2D

    return [Line2D([], [], color="0.3", lw=1.5, linestyle=KIND_STYLES[c], marker=">" if c in DIRECTED else None,
                   markersize=6, label=KINDS[c].replace("_", " ") + (" (anode → cathode)" if c in DIRECTED else ""))
            for c in np.unique(kinds)]


def legend_rows(*rows: list, most: int = 3) -> tuple[list, int]:
    """Legend handles that lay each of `rows` out on rows of its own, at most `most` entries
    to a row (so a legend stays narrower than its figure; a legend fills its columns first),
    padded with blank entries, and the number of columns."""
    from matplotlib.lines import Line2D

    rows = [row[i:i + most] for row in rows for i in range(0, len(row), most)]
    columns = max(map(len, rows), default=1)
    blank = Line2D([], [], alpha=0, label=" ")
    padded = [row + [blank] * (columns - len(row)) for row in rows]
    return [row[c] for c in range(columns) for row in padded], columns


def k_label(kinds: np.ndarray) -> str:
    """The colour bar's label for `k`: a conductance on every kind but the transistor, whose
    `k` is its gate voltage."""
    gates = kinds == TRANSISTOR
    if not gates.any():
        return "conductance k (S)"
    if gates.all():
        return "gate voltage k = $V_G$ (V)"
    return "k: gate voltage (V) on transistors,\nconductance (S) on the other edges"


def diode_marks(paths: list[np.ndarray], kinds: np.ndarray):
    """Diode symbols, a triangle and a bar (▶|), at the middle of each diode and smooth diode
    edge, pointing along its forward direction: from its sender (anode) to its receiver
    (cathode), the way `Δ_e = V[sender] - V[receiver] > 0` conducts. `None` without diodes."""
    from matplotlib.collections import PolyCollection

    diodes = np.flatnonzero(np.isin(kinds, DIRECTED))
    if diodes.size == 0:
        return None
    lengths = np.array([np.linalg.norm(path[-1] - path[0]) for path in paths])
    size = 0.13 * np.median(lengths[lengths > 0]) if np.any(lengths > 0) else 0.1
    polygons = []
    for e in diodes:
        path, mid = paths[e], len(paths[e]) // 2
        centre = path[mid] if len(path) > 2 else path.mean(0)
        along = path[mid + 1] - path[mid - 1] if len(path) > 2 else path[1] - path[0]
        along = along / max(np.linalg.norm(along), 1e-12) * size
        across = np.array([-along[1], along[0]]) * 0.55
        tip = centre + along / 2
        polygons.append([tip, centre - along / 2 + across, centre - along / 2 - across])
        polygons.append([tip + across, tip + across + along / 8, tip - across + along / 8, tip - across])
    return PolyCollection(polygons, facecolors="0.1", edgecolors="none", zorder=2.5, gid="diode symbols")


def label_offset(pos: np.ndarray, node: int, points: float = 11.0) -> dict:
    """Where a terminal's label goes: `points` from its node, away from the network's centre
    (so clear of the node's marker and mostly of the network), aligned on that side."""
    away = pos[node] - pos.mean(0)
    norm = np.linalg.norm(away)
    ux, uy = away / norm if norm > 1e-9 else (np.sqrt(0.5), np.sqrt(0.5))
    return dict(xytext=(points * ux, points * uy), textcoords="offset points",
                ha="left" if ux > 0.38 else "right" if ux < -0.38 else "center",
                va="bottom" if uy > 0.38 else "top" if uy < -0.38 else "center")
