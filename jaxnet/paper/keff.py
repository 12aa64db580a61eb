"""Why coupled learning is not gradient descent: the clamp weights the output errors by `K_eff` (issue 20).

Two candidate reasons are separated here: the bounds (a clipped step is not the update the rule
computed) and the clamp (holding the outputs weights their errors by the network's own effective
conductances among them).

**The derivation** (a linear network; `power` is `sum_e k_e ΔV_e²`, without a 1/2). Hold the inputs
and ground and minimize the power over the hidden nodes: what is left is a quadratic form in the
output voltages whose output block is `K_eff`, the Schur complement of the Laplacian onto the outputs
(`jn.effective_conductance`). The free state minimizes it over the outputs too, so with the outputs
held at `V_O^F + d` the extra power is exactly `P_C - P_F = d^T K_eff d`; coupled learning's clamp is
`d = eta e`, `e = y - V_O^F`, so `P_C - P_F = eta² e^T K_eff e`.

At a state that minimizes the power over the free nodes, `∂P/∂k_e = ΔV_e²` (envelope theorem). So
`ΔV_C² - ΔV_F² = ∂/∂k_e [d^T K_eff(k) d]` taken with the clamp values `c = V_O^F + eta e` held, that
is with `d(k) = c - V_O^F(k)`:
`ΔV_C² - ΔV_F² = eta² e^T (∂K_eff/∂k_e) e - 2 eta e^T K_eff ∂V_O^F/∂k_e`. Coupled learning's
`dk_e = (alpha/eta) mean[ΔV_F² - ΔV_C²]` is therefore, exactly and at every eta,

    dk / alpha = -∂W/∂k|_(K_eff frozen) - eta mean_b e_b^T (∂K_eff/∂k) e_b,
    W(k) = mean_b e_b(k)^T K_eff e_b(k)   (K_eff held at its value: only e depends on k),

and as eta -> 0 the update is `-alpha ∂W/∂k` with `K_eff` frozen (at eta = 1 it is `-alpha` times the
full gradient of `W`). Gradient descent follows `-∂C/∂k`, `C = 0.5 mean_b |e_b|²` (`output_loss`):
`-∂C/∂k = mean_b e_b^T ∂V_O^F/∂k`, while `-∂W/∂k = 2 mean_b e_b^T K_eff ∂V_O^F/∂k`. With one output
`K_eff` is a positive scalar, the same for every example, and the two are parallel
(`dk -> 2 alpha K_eff (-∂C/∂k)`); with several outputs they differ as far as `K_eff` differs from
a multiple of the identity. The bounds act apart from this: the rule clips `k + dk` to
`[k_min, k_max]`, which changes the step only on edges at (or crossing) a bound.

`comparison` measures this at one set of conductances, `along_run` along a coupled-learning run,
`study` on a few small runs (float32 and float64, with and without bounds, two outputs and the
single-output control) under the keys `claims.json` takes.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._generators import disordered_network
from .._network import Network
from .._solver import Dense, LinearSolver
from .._observables import effective_conductance
from .._states import Physics
from .._tasks import REGRESSION_MATRIX, Task, regression_task
from .._trajectory import conductance_trajectory
from ..rules import coupled_learning
from ..rules._coupled import CoupledLearning
from .analysis import quartiles
from .words import compare, fmt

LIMIT_ETA = 1e-4
"""The nudge at which the coupled-learning update stands for its eta -> 0 limit (its distance from
the limit is O(eta), and is measured: `rel_err_cl_limit_vs_neg_grad_keff_weighted_error`)."""


@eqx.filter_jit
def _vectors(net: Network, task: Task, rule: CoupledLearning, k, eta, solver):
    """Per-edge vectors `(E,)` and `K_eff` at conductances `k`, on the task's training set."""
    dtype = k.dtype
    physics = Physics(net, task.inputs, task.outputs, task.ground, task.x_train.astype(dtype),
                      task.y_train.astype(dtype), solver)
    eta = jnp.asarray(eta, dtype)
    limit = physics.coupled_contrast(k, eta)[0] / eta  # dk / alpha at small eta
    rule_eta = jnp.asarray(rule.eta, dtype)
    raw = physics.coupled_contrast(k, rule_eta)[0] / rule_eta  # dk / alpha at the rule's eta
    step = jnp.clip(k + rule.alpha * raw, rule.k_min, rule.k_max) - k  # what the rule does to k
    grad_loss = jax.grad(lambda q: physics.loss(q)[0])(k)
    keff = effective_conductance(net, task, k, solver=solver)

    def weighted(q, frozen: bool):
        e = physics.y - physics.free_outputs(q)
        w = jax.lax.stop_gradient(keff) if frozen else effective_conductance(net, task, q, solver=solver)
        return jnp.mean(jnp.einsum("bi,ij,bj->b", e, w, e))

    grad_frozen = jax.grad(weighted)(k, True)
    grad_full = jax.grad(weighted)(k, False)
    return dict(limit=limit, raw=raw, rule_eta=rule_eta, step=step, grad_loss=grad_loss, grad_frozen=grad_frozen,
                grad_full=grad_full, keff=keff, loss=physics.loss(k)[0])


def _traced(rule: CoupledLearning, dtype) -> CoupledLearning:
    """`rule` with array hyperparameters: runs that differ only in them share one compilation."""
    return CoupledLearning(*(jnp.asarray(getattr(rule, name), dtype) for name in ("alpha", "eta", "k_min", "k_max")))


_trajectory = eqx.filter_jit(conductance_trajectory)


def _cosine(a, b) -> float:
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(np.dot(a, b) / norm) if norm > 0 else float("nan")


def _relative(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def comparison(net: Network, task: Task, rule: CoupledLearning, conductances, *, eta: float = LIMIT_ETA,
               solver: LinearSolver = Dense()) -> dict[str, float]:
    """The coupled-learning update against `-grad C` and `-grad W` (`K_eff` frozen), at one `k`.

    **Arguments:** `net`, `task` (its training set), `rule` a `jn.rules.coupled_learning` (its
    `alpha`, `eta` and bounds make the realised step), `conductances` `(E,)` (their dtype is the
    precision measured), `eta` the nudge standing for the eta -> 0 limit.

    **Returns:** a dict of floats. "limit": `dk/alpha` at `eta`; "step": the rule's realised step
    (its own eta, clipped to its bounds); "free edges": edges neither at a bound at `conductances`
    nor clipped by the step (so the clip leaves their step as the rule made it).

    - `cos_cl_limit_vs_neg_grad_loss_{all,free}_edges`, `cos_cl_limit_vs_neg_grad_keff_weighted_error_{...}`
    - `cos_cl_step_vs_neg_grad_loss_{...}`, `cos_cl_step_vs_neg_grad_keff_weighted_error_{...}`
    - `cos_cl_step_vs_projected_neg_grad_loss_all_edges`: against `-grad C` with the components that
      push an edge at a bound outward set to 0 (the direction bounded gradient descent can take).
    - `rel_err_cl_limit_vs_neg_grad_keff_weighted_error`: `|limit + grad W| / |grad W|` (O(eta)).
    - `rel_err_cl_rule_eta_vs_exact_relation`: the update at the rule's eta against
      `-grad W - eta mean e^T (dK_eff/dk) e`, exact on a linear network (rounding only).
    - `norm_ratio_cl_limit_to_neg_grad_loss`: `|limit| / |grad C|` (2 K_eff with one output).
    - `keff_max_offdiagonal_correlation`: max over `i != j` of `|K_ij| / sqrt(K_ii K_jj)` (0 with one
      output); `keff_eigenvalue_ratio`: largest over smallest eigenvalue (1 with one output).
    - `loss`: `C` at `conductances`; `edges`, `edges_at_bound`, `edges_clipped_by_step` (where `k + dk` falls outside the bounds, so the clip changes the step).
    """
    k = jnp.asarray(conductances)
    if not isinstance(rule, CoupledLearning):
        raise ValueError(f"rule must be jn.rules.coupled_learning(...); got {type(rule).__name__}.")
    vectors = _vectors(net, task, _traced(rule, k.dtype), k, jnp.asarray(eta, k.dtype), solver)
    v = {name: np.asarray(a, np.float64) for name, a in vectors.items()}
    kk = np.asarray(k, np.float64)
    k_min, k_max = np.asarray(k.dtype.type(rule.k_min), np.float64), np.asarray(k.dtype.type(rule.k_max), np.float64)
    at_bound = (kk <= k_min) | (kk >= k_max)
    raw_step = float(rule.alpha) * v["raw"]
    clipped = (kk + raw_step < k_min) | (kk + raw_step > k_max)
    free = ~at_bound & ~clipped  # the edges whose step the clip leaves as the rule made it
    neg_c, neg_w = -v["grad_loss"], -v["grad_frozen"]
    projected = np.where(((kk <= k_min) & (neg_c < 0)) | ((kk >= k_max) & (neg_c > 0)), 0.0, neg_c)
    out = {}
    for name, a in (("limit", v["limit"]), ("step", v["step"])):
        for target, b in (("loss", neg_c), ("keff_weighted_error", neg_w)):
            for part, mask in (("all", slice(None)), ("free", free)):
                out[f"cos_cl_{name}_vs_neg_grad_{target}_{part}_edges"] = _cosine(a[mask], b[mask])
    out["cos_cl_step_vs_projected_neg_grad_loss_all_edges"] = _cosine(v["step"], projected)
    out["rel_err_cl_limit_vs_neg_grad_keff_weighted_error"] = _relative(v["limit"], neg_w)
    exact = neg_w - v["rule_eta"] * (v["grad_full"] - v["grad_frozen"])
    out["rel_err_cl_rule_eta_vs_exact_relation"] = _relative(v["raw"], exact)
    out["norm_ratio_cl_limit_to_neg_grad_loss"] = float(np.linalg.norm(v["limit"]) / np.linalg.norm(neg_c))
    keff = 0.5 * (v["keff"] + v["keff"].T)
    scale = np.sqrt(np.diag(keff))
    corr = np.abs(keff / np.outer(scale, scale))
    np.fill_diagonal(corr, 0.0)
    eig = np.linalg.eigvalsh(keff)
    out["keff_max_offdiagonal_correlation"] = float(corr.max())
    out["keff_eigenvalue_ratio"] = float(eig[-1] / eig[0])
    out["edges"] = float(kk.size)
    out["edges_at_bound"] = float(at_bound.sum())
    out["edges_clipped_by_step"] = float(clipped.sum())
    out["loss"] = float(v["loss"])
    return out


def along_run(net: Network, task: Task, rule: CoupledLearning, k0, *, key, steps: int, every: int,
              eta: float = LIMIT_ETA, solver: LinearSolver = Dense()) -> dict:
    """`comparison` at steps `0, every, ..., steps` of a coupled-learning run from `k0` (its dtype
    is the run's precision).

    **Returns:** `{"steps": [...], "loss": [...], "records": [comparison dicts], "median": {key:
    median over the records after step 0}, "final": the last record}`; `loss` is `C` at each record.
    """
    k0 = jnp.asarray(k0)
    _, ks = _trajectory(net, task, _traced(rule, k0.dtype), k0, key=key, steps=steps, every=every, solver=solver)
    records = [comparison(net, task, rule, k, eta=eta, solver=solver) for k in ks]
    losses = [r["loss"] for r in records]
    later = records[1:] or records
    median = {name: float(np.nanmedian([r[name] for r in later])) for name in records[0]}
    return dict(steps=list(range(0, steps + 1, every)), loss=losses, records=records, median=median, final=records[-1])


STUDY = dict(n_nodes=(64,), dtypes=("float32", "float64"), alpha=1.0, eta=1e-3, k0=(0.5, 1.5),
             bounds={"wide": (1e-6, 1e6), "tight": (0.5, 1.5)}, steps=1000, every=100, seed=0)
"""The runs `study` measures: disordered networks of `n_nodes`, the regression task with two outputs
(`REGRESSION_MATRIX`) and with one (its first row, the control), coupled learning at `alpha`, `eta`
(the gradient comparison sweep's `cl_vs_gd.toml` settings), `k0` uniform in the range given, with
"wide" bounds (the rule's defaults; at `alpha = 1` a few edges run down to them within a few
hundred steps, as in the sweep: each row's `max_edges_at_bound` says how many) and "tight" bounds
at the ends of `k0`'s range, which many edges reach."""

CONTROL_MATRIX = (REGRESSION_MATRIX[0],)
"""The single-output control's target matrix: the first row of the regression task's."""


def study(**changes) -> dict:
    """`along_run` on the `STUDY` runs (override any of its entries by keyword), for `claims.json`.

    **Returns:** `{"keff_vs_gradient": {"limit_eta": ..., "setup": {...}, "runs": [row, ...]}}`, a row
    per run: `dtype`, `n_nodes`, `outputs` (2, or 1 for the control), `bounds` ("wide" or "tight"),
    `k_min`, `k_max`, `loss_start`, `loss_end`, `max_edges_at_bound` (over the records), and the
    `comparison` keys at step 0 (`start`), at the last step (`final`) and their median over the
    records after step 0 (`median`).
    """
    setup = dict(STUDY, **changes)
    rows = []
    for n_nodes in setup["n_nodes"]:
        net_key, task_key, k0_key, train_key = jax.random.split(jax.random.fold_in(jax.random.key(setup["seed"]), n_nodes), 4)
        net = disordered_network(net_key, n_nodes)
        for dtype in setup["dtypes"]:
            with jax.enable_x64(dtype == "float64"):
                k0 = jax.random.uniform(k0_key, (net.n_edges,), jnp.float32, *setup["k0"]).astype(dtype)  # same k0 in both
                for outputs, matrix in ((2, None), (1, CONTROL_MATRIX)):
                    task = regression_task(task_key, net, matrix=matrix)
                    for bounds, (k_min, k_max) in setup["bounds"].items():
                        rule = coupled_learning(setup["alpha"], setup["eta"], k_min, k_max)
                        run = along_run(net, task, rule, k0, key=train_key, steps=setup["steps"], every=setup["every"])
                        rows.append(dict(dtype=dtype, n_nodes=n_nodes, outputs=outputs, bounds=bounds, k_min=k_min,
                                         k_max=k_max, loss_start=run["loss"][0], loss_end=run["loss"][-1],
                                         max_edges_at_bound=max(r["edges_at_bound"] for r in run["records"]),
                                         start=run["records"][0], median=run["median"], final=run["final"]))
    setup = {name: (dict(value) if isinstance(value, dict) else value) for name, value in setup.items()}
    return {"keff_vs_gradient": dict(limit_eta=LIMIT_ETA, setup=setup, runs=rows)}


_COLUMNS = (("cos_cl_limit_vs_neg_grad_loss_all_edges", "cos(CL, -∇C)"),
            ("cos_cl_limit_vs_neg_grad_loss_all_edges", "at step 0"),
            ("cos_cl_limit_vs_neg_grad_keff_weighted_error_all_edges", "cos(CL, -∇W)"),
            ("cos_cl_step_vs_neg_grad_loss_all_edges", "cos(step, -∇C) all"),
            ("cos_cl_step_vs_neg_grad_loss_free_edges", "cos(step, -∇C) free"),
            ("cos_cl_step_vs_projected_neg_grad_loss_all_edges", "cos(step, -∇C projected)"),
            ("rel_err_cl_limit_vs_neg_grad_keff_weighted_error", "|CL + ∇W|/|∇W|"),
            ("keff_max_offdiagonal_correlation", "K_eff off-diag"))


def markdown(numbers: dict) -> str:
    """A table of `study`'s runs (medians over each run's records after step 0), for `report.md`."""
    part = numbers["keff_vs_gradient"]
    head = ["dtype", "N", "outputs", "bounds", "C end/C start", "edges at bound"] + [label for _, label in _COLUMNS]
    lines = [f"Coupled learning at eta = {part['limit_eta']:g} (CL, the eta -> 0 limit) and the rule's clipped step at "
             f"eta = {part['setup']['eta']:g} (step), against -∇C (C = output loss) and -∇W (W = mean e^T K_eff e, "
             "K_eff frozen); medians over the logged steps after step 0 (one column at step 0); "
             "'free': the edges neither at a bound nor clipped by the step; 'projected': -∇C less what pushes an edge at a bound outward.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in part["runs"]:
        cells = [row["dtype"], str(row["n_nodes"]), str(row["outputs"]), row["bounds"],
                 f"{row['loss_end'] / row['loss_start']:.3g}", f"{row['max_edges_at_bound']:.0f}"]
        cells += [f"{row['start' if label == 'at step 0' else 'median'][name]:.4g}" for name, label in _COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def findings(numbers: dict) -> str:
    """What `study`'s runs find about the two reasons, each comparison in the report's words
    (`words.compare` on quartiles over the runs concerned)."""
    runs = numbers["keff_vs_gradient"]["runs"]

    def over(name, where):
        return quartiles([r["median"][name] for r in runs if where(r)])

    def wide(r):  # the rule's own bounds: few edges, if any, reach them
        return r["bounds"] == "wide"

    weighted = over("cos_cl_limit_vs_neg_grad_keff_weighted_error_all_edges", wide)
    several = over("cos_cl_limit_vs_neg_grad_loss_all_edges", lambda r: wide(r) and r["outputs"] > 1)
    single = over("cos_cl_limit_vs_neg_grad_loss_all_edges", lambda r: wide(r) and r["outputs"] == 1)
    # The bounds, where the clamp cannot matter if possible: single-output runs with edges at a bound.
    bounded = [r for r in runs if r["max_edges_at_bound"] > 0]
    control = [r for r in bounded if r["outputs"] == 1]
    bounded, kind = (control, "single-output ") if control else (bounded, "")
    step_all = quartiles([r["median"]["cos_cl_step_vs_neg_grad_loss_all_edges"] for r in bounded])
    step_free = quartiles([r["median"]["cos_cl_step_vs_neg_grad_loss_free_edges"] for r in bounded])
    said = {"lower": "below 1", "the same": "the same as 1", "higher": "above 1", "not measured": "not measured"}
    text = (f"**The two reasons, separated** (the study above; cosines against 1 by the report's rule, quartiles "
            f"over its runs). *The clamp*, on the runs with the rule's own (wide) bounds: the eta -> 0 update "
            f"against -∇W (K_eff frozen) has cosine {fmt(weighted, 4)}, {said[compare(weighted)]}; against -∇C it "
            f"is {fmt(several, 4)} with several outputs, {said[compare(several)]}, and {fmt(single, 4)} for the "
            f"single-output control (K_eff a scalar), {said[compare(single)]}.")
    if compare(weighted) == "the same":
        text += (" So coupled learning descends the K_eff-weighted error W, not C"
                 + (", and the weighting by the network's output conductances is what separates it from gradient "
                    "descent." if compare(several) == "lower" and compare(single) == "the same" else "."))
    if bounded:
        text += (f" *The bounds*, on the {len(bounded)} {kind}run{'s' * (len(bounded) != 1)} where edges reach a bound (up to "
                 f"{max(r['max_edges_at_bound'] for r in bounded):.0f} edges): the rule's clipped step against -∇C is "
                 f"{fmt(step_all, 4)} over all edges, {said[compare(step_all)]}, and {fmt(step_free, 4)} over the "
                 f"edges the clip leaves alone (not at a bound, not clipped by the step), {said[compare(step_free)]}.")
    else:
        text += " *The bounds:* no edge reached a bound in these runs."
    return text + "\n"
