"""Scaling sweeps: time per coupled-learning step against network size, instances, examples.

Full-batch coupled learning on square lattices (regression task, eta = 1e-3, float32), jaxnet
(`method="auto"` unless said) against the fastest in-process NumPy/SciPy baseline for that
size (dense inverse/Cholesky up to 256 nodes, SuperLU above). Run: `python -m benchmarks.scaling`.
"""

from __future__ import annotations

import jax
import numpy as np

import jaxnet as jn

from . import baselines
from ._timing import time_call
from .workloads import ALPHA, ETA, jaxnet_rate, path_name, workload

NODES = (64, 256, 1024, 4096, 16384)
INSTANCES = (1, 16, 256, 1024, 4096)
EXAMPLES = (1, 4, 16, 64, 256)


def _baseline_step_s(net, task, n_steps=5):
    solvers = ("inverse", "cholesky") if net.n_nodes <= 256 else ("splu",)
    best = np.inf
    for solver in solvers:
        b = baselines.CoupledLearningNumpy(net, task, ALPHA, ETA, solver=solver)
        best = min(best, time_call(lambda: b.run(np.ones(net.n_edges), n_steps), min_time=0.5, max_repeats=5) / n_steps)
    return best


def run(quick: bool = False):
    rule = jn.rules.coupled_learning(alpha=ALPHA, eta=ETA)
    out = {"nodes": [], "instances": [], "examples": []}
    for n in (NODES[:3] if quick else NODES):
        net, task = workload(n)
        steps = max(10, int(2e5 / n))
        _, rate = jaxnet_rate(net, task, rule, 1, steps)
        out["nodes"].append(dict(n=n, method=path_name(net.n_nodes, warm=True), jaxnet_step_s=1 / rate,
                                 baseline_step_s=_baseline_step_s(net, task, 2 if n > 4096 else 5)))
    net, task = workload(64)
    for b in (INSTANCES[:3] if quick else INSTANCES):
        row = dict(instances=b)
        for method in ("dense", "cg"):
            _, rate = jaxnet_rate(net, task, rule, b, max(100, 20000 // b), method)
            row[f"jaxnet_{method}_network_step_s"] = 1 / rate
        out["instances"].append(row)
    for d in (EXAMPLES[:3] if quick else EXAMPLES):
        side = 8
        net = jn.square_lattice(side, side)
        task = jn.regression_task(jax.random.key(0), net, n_train=d, n_test=0)
        _, rate = jaxnet_rate(net, task, rule, 1, 300)
        out["examples"].append(dict(examples=d, jaxnet_step_s=1 / rate, baseline_step_s=_baseline_step_s(net, task, 20)))
    return out


def report(out):
    print(f"{'nodes':>8}{'path':>7}{'jaxnet ms/step':>16}{'baseline ms/step':>18}{'ratio':>8}")
    for r in out["nodes"]:
        print(f"{r['n']:>8}{r['method']:>7}{r['jaxnet_step_s'] * 1e3:>16.3f}{r['baseline_step_s'] * 1e3:>18.3f}"
              f"{r['baseline_step_s'] / r['jaxnet_step_s']:>8.1f}")
    print(f"\n{'instances':>10}{'dense us/net-step':>19}{'cg us/net-step':>16}   (W64)")
    for r in out["instances"]:
        print(f"{r['instances']:>10}{r['jaxnet_dense_network_step_s'] * 1e6:>19.1f}{r['jaxnet_cg_network_step_s'] * 1e6:>16.1f}")
    print(f"\n{'examples':>9}{'jaxnet us/step':>16}{'baseline us/step':>18}{'ratio':>8}   (W64)")
    for r in out["examples"]:
        print(f"{r['examples']:>9}{r['jaxnet_step_s'] * 1e6:>16.1f}{r['baseline_step_s'] * 1e6:>18.1f}"
              f"{r['baseline_step_s'] / r['jaxnet_step_s']:>8.1f}")


def plot(out, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    n = [r["n"] for r in out["nodes"]]
    axes[0].loglog(n, [r["jaxnet_step_s"] for r in out["nodes"]], "o-", label="jaxnet (auto)")
    axes[0].loglog(n, [r["baseline_step_s"] for r in out["nodes"]], "s--", label="NumPy/SciPy")
    axes[0].set(xlabel="nodes", ylabel="s per step", title="one network")
    b = [r["instances"] for r in out["instances"]]
    for method in ("dense", "cg"):
        axes[1].loglog(b, [r[f"jaxnet_{method}_network_step_s"] for r in out["instances"]], "o-", label=f"jaxnet {method}")
    axes[1].set(xlabel="instances (vmapped)", ylabel="s per network-step", title="W64, batched")
    d = [r["examples"] for r in out["examples"]]
    axes[2].loglog(d, [r["jaxnet_step_s"] for r in out["examples"]], "o-", label="jaxnet")
    axes[2].loglog(d, [r["baseline_step_s"] for r in out["examples"]], "s--", label="NumPy")
    axes[2].set(xlabel="examples per step", ylabel="s per step", title="W64, full batch")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    report(run())
