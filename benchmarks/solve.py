"""Solver throughput: jaxnet's `solve` against SciPy in the same process.

For each network size `n` (square lattices) and batch size `b` (network instances with their
own conductances, vmapped; each solved for 20 examples of 3 fixed nodes), reports solves/s
(one solve = one network instance with all its examples) for jaxnet and for the baseline
(SciPy dense Cholesky up to 1024 nodes, SciPy sparse LU above), compile time apart.
The baseline is a loop over instances, so its per-solve rate is measured on up to 16
instances and holds for any batch. Run: `python -m benchmarks.solve`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

import jaxnet as jn

from . import baselines
from ._timing import time_call, time_jax
from .workloads import path_name

SIZES = (16, 64, 256, 1024, 4096)
BATCHES = (1, 64, 1024)
EXAMPLES = 20
# Skip jaxnet runs whose dense memory (b * n^2 floats) or work would not fit a small machine.
MAX_DENSE_BYTES = 4e9
MAX_CG_NODES = 1e6  # cold CG solves of b instances x n nodes beyond this take minutes on 2 cores


def run(sizes=SIZES, batches=BATCHES, dtype=jnp.float32):
    rows = []
    for n in sizes:
        side = int(math.isqrt(n))
        net = jn.square_lattice(side, side)
        fixed = jnp.array([0, net.n_nodes // 2 + side // 3, net.n_nodes - 1])
        values = jax.random.uniform(jax.random.key(0), (EXAMPLES, 3), dtype).at[:, -1].set(0)
        method = path_name(net.n_nodes)
        base_kind = "dense Cholesky" if method == "dense" else "sparse LU"
        ks_all = jax.random.uniform(jax.random.key(1), (max(batches), net.n_edges), dtype, 0.5, 1.5)
        # the baseline's per-solve time, on a few instances
        sys = baselines.Kirchhoff(net.senders, net.receivers, n, np.asarray(fixed))
        few = np.asarray(ks_all[:16], float)
        solver = "cholesky" if method == "dense" else "splu"
        base_s = time_call(lambda: [sys.solve(k, np.asarray(values, float), solver) for k in few]) / len(few)
        for b in batches:
            if method == "dense" and b * n * n * 4 > MAX_DENSE_BYTES:
                continue
            if method == "cg" and b * n > MAX_CG_NODES:
                continue
            ks = ks_all[:b]
            fn = jax.vmap(lambda k: jn.solve(net, k, fixed, values))
            compile_s, run_s, out = time_jax(fn, ks)
            ref = sys.solve(np.asarray(ks[0], float), np.asarray(values, float), solver)
            err = float(np.abs(np.asarray(out[0], float) - ref).max())
            assert err < 1e-3, f"jaxnet disagrees with the baseline (n={n}): {err}"
            rows.append(dict(n=n, batch=b, method=method, baseline=base_kind, compile_s=compile_s,
                             jaxnet_solves_per_s=b / run_s, baseline_solves_per_s=1 / base_s,
                             speedup=(b / run_s) * base_s, max_abs_err=err))
    return rows


def report(rows):
    print(f"{'n':>6}{'batch':>7}{'path':>7}{'compile s':>11}{'jaxnet solves/s':>17}{'baseline/s':>12}{'ratio':>8}  baseline")
    for r in rows:
        print(f"{r['n']:>6}{r['batch']:>7}{r['method']:>7}{r['compile_s']:>11.2f}{r['jaxnet_solves_per_s']:>17.1f}"
              f"{r['baseline_solves_per_s']:>12.1f}{r['speedup']:>8.1f}  {r['baseline']}")


if __name__ == "__main__":
    report(run())
