"""Running the reproduction: each claim's sweeps (the shipped configs, shrunk per scale), then
its numbers (`analysis`), figures (`figures`) and the report (`report`), into one directory.

Every import from the sweep engine (`jaxnet.sweep`) in the reproduction is here.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import pathlib
from typing import Any

import jax

from . import analysis, figures, keff, report
from ..sweep import is_complete, load_conductances, load_config, load_sweep, rebuild_run, sweep
from ..sweep._store import read_json

PAPER = ("Wycoff, Dillavou, Stern, Liu & Durian, \"Desynchronous learning in a physics-driven learning "
         "network\", J. Chem. Phys. 156, 144903 (2022)")

#: The sweeps of each claim (config files in jaxnet/configs/reproduce/).
CLAIMS = {
    "1": ("claim1", "claim1_ceiling"),
    "2": ("claim2", "claim2_ceiling"),
    "3": ("claim3_desync", "claim3_minibatch", "claim3_discrete_desync", "claim3_discrete_minibatch"),
    "gd": ("cl_vs_gd",),
}

_CLAIM3 = {"sweep.networks": 8, "sweep.seeds": 32, "sweep.steps": 500, "sweep.log_every": 25}
#: Overrides of the shipped (full-scale) configs per scale.
SCALES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {name: {} for names in CLAIMS.values() for name in names},
    "quick": {
        "claim1": {"sweep.networks": 32, "network.n_nodes": 64, "sweep.steps": 500, "sweep.log_every": 25},
        "claim1_ceiling": {"sweep.networks": 32, "network.n_nodes": 64, "sweep.steps": 2000,
                           "sweep.log_every": 2000},
        "claim2": {"sweep.networks": 32, "sweep.steps": 2000, "sweep.log_every": 100, "task.kind": "iris"},
        "claim2_ceiling": {"sweep.networks": 32},
        "claim3_desync": _CLAIM3,
        "claim3_minibatch": _CLAIM3,
        "claim3_discrete_desync": {"sweep.networks": 32},  # claim 2's budget: 2000 updates per edge
        "claim3_discrete_minibatch": {"sweep.networks": 32},
        "cl_vs_gd": {"sweep.networks": 16, "sweep.steps": 1000},
    },
    "smoke": {  # one or two compiled groups per sweep: compile time dominates at this size
        "claim1": {"sweep.networks": 2, "network.n_nodes": 16, "sweep.steps": 20, "sweep.log_every": 5,
                   "task.kind": "iris", "rule.p": [1.0, 0.5]},
        "claim1_ceiling": {"sweep.networks": 2, "network.n_nodes": 16, "sweep.steps": 20, "sweep.log_every": 20,
                           "sweep.seeds": 2},
        "claim2": {"sweep.networks": 3, "sweep.steps": 40, "sweep.log_every": 10, "task.kind": "iris",
                   "rule.p": [1.0, 0.5], "rule.n_states": 16},
        "claim2_ceiling": {"sweep.networks": 3, "sweep.steps": 40, "sweep.log_every": 40, "sweep.seeds": 2},
        "claim3_desync": {"sweep.networks": 2, "sweep.seeds": 3, "sweep.steps": 20, "sweep.log_every": 5,
                          "network.n_nodes": 16, "rule.p": [1.0, 0.5]},
        "claim3_minibatch": {"sweep.networks": 2, "sweep.seeds": 3, "sweep.steps": 20, "sweep.log_every": 5,
                             "network.n_nodes": 16, "sweep.batch_size": 2},
        "claim3_discrete_desync": {"sweep.networks": 2, "sweep.steps": 10, "sweep.log_every": 5,
                                   "rule.p": [1.0, 0.5], "rule.n_states": 16},
        "claim3_discrete_minibatch": {"sweep.networks": 2, "sweep.steps": 10, "sweep.log_every": 5,
                                      "sweep.batch_size": 2, "rule.n_states": 16},
        "cl_vs_gd": {"sweep.networks": 2, "network.n_nodes": 16, "sweep.steps": 20, "sweep.log_every": 5,
                     "rule.eta": [1e-3, 1e-1]},
    },
}
#: The K_eff study's settings per scale (`keff.STUDY`'s entries overridden; `full` is the study).
KEFF = {"full": {"n_nodes": (64, 128)}, "quick": {}, "smoke": {"n_nodes": (12,), "steps": 6, "every": 3, "dtypes": ("float32",)}}
#: Runs per (task, p) whose whole trajectory is recorded for the stuck-state measures.
TRAJECTORIES = {"full": 64, "quick": 16, "smoke": 2}


def config_path(name: str) -> str:
    """The shipped config file of a reproduction sweep (e.g. `"claim1"`)."""
    return str(importlib.resources.files("jaxnet").joinpath(f"configs/reproduce/{name}.toml"))

# ------------------------------------------------------------------ each claim: numbers and figures


def analyze_claim1(table, ceiling_table, out_dir: str) -> dict:
    """C/C0 (and Iris accuracy) per task, size and p, at equal edge updates and equal steps;
    the Iris ceiling (gradient descent on the same networks and splits)."""
    numbers = analysis.claim1(table)
    return dict(rows=numbers["rows"], figures=figures.claim1(table, out_dir), ceiling=analysis.ceiling(ceiling_table),
                edge_updates=numbers["edge_updates"], sync_steps=numbers["sync_steps"])


def analyze_claim2(table, ceiling_table, conductances: dict, config, out_dir: str, n_runs: int) -> dict:
    """Lab network: error and accuracy per local rule and p; getting stuck, measured on the
    discrete rule's trajectories; the Iris ceiling (gradient descent, same networks and splits)."""
    numbers = analysis.claim2(table, conductances, functools.partial(rebuild_run, config), n_runs, ceiling_table)
    return dict(numbers, figures=figures.claim2(table, numbers["rows"], numbers["stuck"], out_dir))


def analyze_discrete_claim3(tables: dict, dirs: dict, scale: str) -> list[dict]:
    """Claim 3 on the discrete lab network: final error and stuck measures, desync p (full
    batch) against mini-batch b (sync), each paired with the sync full-batch runs."""
    measured = {}
    for family in ("desync", "minibatch"):
        name = f"claim3_discrete_{family}"
        rebuild = functools.partial(rebuild_run, load_config(config_path(name), SCALES[scale][name]))
        measured[family] = analysis.trajectory_measures(
            rebuild, tables[name], load_conductances(dirs[name]), TRAJECTORIES[scale],
            reference=measured["desync"][1] if family == "minibatch" else None)
    return analysis.claim3_discrete(tables["claim3_discrete_desync"], tables["claim3_discrete_minibatch"],
                                    measured["desync"][0], measured["minibatch"][0])


def analyze_claim3(desync, minibatch, conductances: dict, out_dir: str) -> dict:
    """Spread over keys, deviation from the sync full-batch run, final loss: desync p vs batch b.

    `conductances`: `{"desync": {run: k}, "minibatch": {run: k}}` final conductances.
    """
    summary, counts, ps, bs, by_network = analysis.claim3_summary(desync, minibatch, conductances)
    matches = analysis.claim3_matches(summary, by_network, ps, bs)
    return dict(summary=summary, counts=counts, matches=matches,
                figures=figures.claim3(desync, minibatch, summary, ps, bs, matches, out_dir))


def analyze_cl_vs_gd(table, out_dir: str) -> dict:
    """Cosine between the coupled-learning update and -grad against eta; CL and GD curves."""
    numbers = analysis.cl_vs_gd(table)
    return dict(numbers, figures=figures.cl_vs_gd(table, numbers["cosine"], out_dir))


def _analyze(claim: str, scale: str, dirs: dict[str, str], out_dir: str) -> dict:
    """One claim whose sweeps are complete: its numbers, figures and sweeps' facts."""
    tables = {name: load_sweep(d) for name, d in dirs.items()}
    if claim == "1":
        numbers = analyze_claim1(tables["claim1"], tables["claim1_ceiling"], out_dir)
        final = analysis.final(tables["claim1"])
        run = int(final[final.p == 1].run.min())
        config = load_config(config_path("claim1"), SCALES[scale]["claim1"])
        numbers["figures"].append(figures.claim1_network(config, dirs["claim1"], run, out_dir))
    elif claim == "2":
        config = load_config(config_path("claim2"), SCALES[scale]["claim2"])
        numbers = analyze_claim2(tables["claim2"], tables["claim2_ceiling"], load_conductances(dirs["claim2"]),
                                 config, out_dir, TRAJECTORIES[scale])
    elif claim == "3":
        numbers = analyze_claim3(tables["claim3_desync"], tables["claim3_minibatch"],
                                 {"desync": load_conductances(dirs["claim3_desync"]),
                                  "minibatch": load_conductances(dirs["claim3_minibatch"])}, out_dir)
        numbers["discrete"] = analyze_discrete_claim3(tables, dirs, scale)
    else:
        numbers = dict(analyze_cl_vs_gd(tables["cl_vs_gd"], out_dir), **keff.study(**KEFF[scale]))
    numbers["sweeps"] = {name: _sweep_facts(d, SCALES[scale][name], tables[name]) for name, d in dirs.items()}
    return numbers


def _analyzed(claim: str, scale: str, dirs: dict[str, str], out_dir: str) -> dict:
    """`_analyze`'s numbers, as JSON holds them; read back from `out_dir/analysis/` when neither
    the claim's sweeps (every file's name, size and modification time) nor jaxnet's code (nor
    jax's version) changed since they were written and their figures are there (rewriting a report then
    takes seconds, not the minutes of the trajectories and the K_eff study)."""
    key = dict(claim=claim, scale=scale, jaxnet=importlib.metadata.version("jaxnet"), jax=jax.__version__,
               code=_code_digest(),
               sweeps={name: sorted([f, *_stat(os.path.join(d, f))] for f in os.listdir(d)) for name, d in dirs.items()})
    key = json.loads(json.dumps(key))
    path = os.path.join(out_dir, "analysis", f"claim_{claim}.json")
    if os.path.exists(path):
        kept = read_json(path)
        figures_there = all(os.path.exists(os.path.join(out_dir, f)) for f in kept["numbers"].get("figures", []))
        if kept["key"] == key and figures_there:
            return kept["numbers"]
    numbers = json.loads(json.dumps(_analyze(claim, scale, dirs, out_dir), default=analysis.plain))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(dict(key=key, numbers=numbers), f)
    return numbers


def _stat(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


@functools.cache
def _code_digest() -> str:
    """A digest of jaxnet's source: the analysis, the figures it draws and the K_eff study's
    training all depend on it."""
    digest = hashlib.sha256()
    root = pathlib.Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


# ------------------------------------------------------------------ the command


def _sweep_facts(sweep_dir: str, overrides: dict, table) -> dict:
    """A finished sweep's config, the overrides of this scale, its wall time, runs and devices."""
    config, metadata = (read_json(os.path.join(sweep_dir, name)) for name in ("config.json", "metadata.json"))
    failed = metadata.get("failed_runs", [])
    return dict(config=config, overrides=overrides, wall_s=sum(i["wall_s"] for i in metadata["invocations"]),
                runs=int(table.run.nunique()), devices=metadata["devices"], failed_run_count=len(failed),
                failed_runs=failed)


def _claims_of(claims) -> list[str]:
    names = list(CLAIMS) if claims in ("all", None) else [claims] if isinstance(claims, str) else list(claims)
    for name in names:
        if name not in CLAIMS:
            raise ValueError(f"unknown claim {name!r}; allowed: {', '.join(CLAIMS)} or 'all'.")
    return names


def reproduce(out_dir: str, *, scale: str = "quick", claims: str | list[str] = "all", quiet: bool = False) -> dict:
    """Rerun the desynchronous-learning paper's claims and write the report, figures and numbers.

    **Arguments:**

    - `out_dir`: the output directory; each claim's sweeps go to `out_dir/sweeps/NAME/` (run
      again after an interruption, it resumes; finished sweeps are not rerun).
    - `scale`: `"quick"` (minutes on a 2-core CPU), `"full"` (paper scale: thousands of runs,
      meant for a GPU) or `"smoke"` (seconds; checks the pipeline, its numbers mean nothing).
      A directory holds one scale: another is refused.
    - `claims`: `"1"`, `"2"`, `"3"`, `"gd"` (coupled learning against gradient descent), a list
      of them, or `"all"`.
    - `quiet`: no progress bars or messages.

    **Writes:** `report.md`, the figures (`*.png`) and `claims.json` (every number the report
    quotes, with the configuration of its sweep) for every claim whose sweeps are complete in
    `out_dir`, so claims run one at a time add up to one report.

    Runs with 64-bit JAX enabled (`jax.enable_x64`, for the float64 runs of the gradient
    comparison; float32 sweeps stay float32), so its numbers do not depend on the caller's
    setting.

    **Returns:** the contents of `claims.json` as a dict.

    ```python
    numbers = jn.reproduce("out/paper", scale="quick", claims="1")
    ```
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; allowed: {', '.join(SCALES)}.")
    with jax.enable_x64(True):  # the float64 half of the gradient comparison; every claim alike
        return _reproduce(out_dir, scale, _claims_of(claims), quiet)



def _claim_directory(out_dir: str, scale: str) -> None:
    """Make `out_dir` a reproduction's directory at `scale`, or refuse one at another scale."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"{out_dir} is a file, not a directory; give a directory for the reproduction.")
    os.makedirs(out_dir, exist_ok=True)
    marker = os.path.join(out_dir, "reproduce.json")
    if os.path.exists(marker):
        earlier = read_json(marker)["scale"]
        if earlier != scale:
            raise ValueError(f"{out_dir} holds a reproduction at scale {earlier!r}, not {scale!r}: "
                             "use another directory.")
    else:
        with open(marker, "w", encoding="utf-8") as f:
            json.dump({"scale": scale}, f)


def _reproduce(out_dir: str, scale: str, wanted: list[str], quiet: bool) -> dict:
    _claim_directory(out_dir, scale)
    sweeps = os.path.join(out_dir, "sweeps")
    for claim in wanted:
        for name in CLAIMS[claim]:
            if not quiet:
                print(f"== claim {claim}: sweep {name} ({scale})", flush=True)
            sweep(config_path(name), os.path.join(sweeps, name), overrides=SCALES[scale][name], quiet=quiet)

    results: dict[str, Any] = {}
    for claim, names in CLAIMS.items():
        dirs = {name: os.path.join(sweeps, name) for name in names}
        if all(is_complete(d) for d in dirs.values()):
            results[claim] = _analyzed(claim, scale, dirs, out_dir)
    devices = sorted({d for c in results.values() for s in c["sweeps"].values() for d in s["devices"]})
    failed = sum(s["failed_run_count"] for c in results.values() for s in c["sweeps"].values())
    document = dict(paper=PAPER, scale=scale, jaxnet=importlib.metadata.version("jaxnet"), jax=jax.__version__,
                    devices=devices, failed_runs=failed, claims=results)
    with open(os.path.join(out_dir, "claims.json"), "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1, default=analysis.plain)
    with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write(report.markdown(document))
    if not quiet:
        print(f"report: {os.path.join(out_dir, 'report.md')}", flush=True)
    return document
