"""Measures of how learning explores: stuck discrete trajectories, spread over noise keys.

Host-side NumPy on results already computed (trajectories from `conductance_trajectory`,
final conductances from a sweep): no JAX, nothing to compile.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import ArrayLike, Float, Int


def stuck_measures(states: Int[ArrayLike, "time edges"], window: int | None = None) -> dict[str, float]:
    """How far a discrete learning trajectory explores, and whether it is stuck in a cycle.

    **Arguments:**

    - `states` `(T + 1, E)`: each edge's level index (e.g. `rule.state_index(k)`) at steps
      `0..T`.
    - `window`: the number of final steps measured (default: the last quarter, at least 2).
      Compare runs at equal updates per edge by giving each the same share of its run.

    **Returns:** a dict, over the last `window` steps:

    - `distinct_states`: how many different network states (rows) the run visits.
    - `distinct_per_step`: `distinct_states / window`, which compares windows of different
      lengths (1: a state not seen before in the window at every step; a run stuck in a
      cycle of c states scores about c / window).
    - `move_rate`: fraction of (edge, step) pairs in which the edge changes level.
    - `undo_fraction`: of the moves an edge makes after its first in the window, the fraction
      that reverse its previous move (1: every move is undone, the signature of a run
      oscillating between neighbouring states; 0: every edge keeps going one way).
      NaN if no edge moves twice.
    - `cycle_length`: the smallest period `c` with `states[t] == states[t - c]` throughout
      the window (1: frozen in one state); 0 if the window is not periodic.
    """
    states = np.asarray(states)
    if states.ndim != 2 or states.shape[0] < 3:
        raise ValueError(f"states must have shape (time >= 3, edges); got {states.shape}.")
    window = max(2, states.shape[0] // 4) if window is None else window
    if not 2 <= window < states.shape[0]:
        raise ValueError(f"window must lie in [2, {states.shape[0] - 1}] for {states.shape[0]} states; got {window}.")
    part = states[-window - 1:]
    moves = np.sign(np.diff(part, axis=0))
    undone = pairs = 0
    for edge_moves in moves.T:
        m = edge_moves[edge_moves != 0]
        undone += int(np.sum(m[1:] != m[:-1]))
        pairs += max(len(m) - 1, 0)
    _, ids = np.unique(part[1:], axis=0, return_inverse=True)
    ids = ids.reshape(-1)
    return dict(
        distinct_states=float(ids.max() + 1),
        distinct_per_step=float(ids.max() + 1) / window,
        move_rate=float(np.mean(moves != 0)),
        undo_fraction=undone / pairs if pairs else float("nan"),
        cycle_length=float(_period(ids)),
    )


def _period(ids: np.ndarray, max_candidates: int = 64) -> int:
    """Smallest period of the whole sequence `ids`, at most half its length; 0 if none."""
    n = len(ids)
    candidates = n - 1 - np.flatnonzero(ids[:-1] == ids[-1])[::-1]  # distances back to the last state's returns
    for c in candidates[:max_candidates]:
        if c > n // 2:
            break
        if np.array_equal(ids[c:], ids[:-c]):
            return int(c)
    return 0


def spread_over_keys(
    conductances: Float[ArrayLike, "keys edges"], reference: Float[ArrayLike, " edges"] | None = None
) -> dict[str, float]:
    """How far runs that differ only in their noise key end up from each other and a reference.

    In log conductance (conductances span decades; a ratio is what matters physically).

    **Arguments:**

    - `conductances` `(K, E)`: final conductances of `K` runs from the same network and the
      same initial conductances, differing in their PRNG key (desync masks, mini-batches).
    - `reference` `(E,)`: e.g. the synchronous full-batch run's final conductances.

    **Returns:** a dict:

    - `spread`: `sqrt(mean over edges of var over keys of ln k)`; exactly 0 for identical runs.
    - `deviation`: `sqrt(mean over keys and edges of (ln k - ln k_ref)^2)` (NaN without a
      reference).
    """
    log_k = np.log(np.asarray(conductances, float))
    if log_k.ndim != 2 or log_k.shape[0] < 2:
        raise ValueError(f"conductances must have shape (keys >= 2, edges); got {log_k.shape}.")
    centred = log_k - log_k[:1]  # var is shift-free; identical runs give exact zeros, so spread exactly 0
    out = dict(spread=float(np.sqrt(np.mean(np.var(centred, axis=0)))), deviation=float("nan"))
    if reference is not None:
        log_ref = np.log(np.asarray(reference, float))
        if log_ref.shape != log_k.shape[1:]:
            raise ValueError(f"reference must have shape ({log_k.shape[1]},); got {log_ref.shape}.")
        out["deviation"] = float(np.sqrt(np.mean((log_k - log_ref) ** 2)))
    return out
