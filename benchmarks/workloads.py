"""The performance workloads (issues 4 and 9), each against in-process baselines and the floor.

Issue 9's table: the README's recipe, `jit(vmap(train))`, with default arguments (the
`method="auto"` path), its ratio to NumPy, its compile time and its floor, each against its
target (`TARGETS`), printed as met or MISSED.

Workload: full-batch coupled learning, 20 examples, 2 inputs + 1 ground, 2 outputs,
conductances starting at 1, eta = 1e-3, float32 for jaxnet (float64 NumPy baselines, which
is what the public codes run). Every jaxnet configuration is first checked to reproduce the
baseline's conductances in float64.

- `public`: steps/s of the fastest public research code on this kind of machine (2 CPU
  cores), as measured for issue 4; quoted, not rerun here.
- `baseline`: the fastest of our careful NumPy/SciPy implementations, timed in this process.
- `floor`: the same linear algebra called directly, timed in this process: for the dense
  path one LAPACK `spotrf` + `spotrs` (4 right-hand sides) per step (via SciPy, so Python's
  call overhead is included: a slight overestimate); for the default (CG) path, SciPy CSR
  products with 4 columns, as many per step as jaxnet's CG took (measured) plus the two its
  residual checks need. Batched floors divide by the number of cores (perfect parallelism).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.linalg.lapack
import scipy.sparse

import jaxnet as jn

from . import baselines
from ._timing import time_call, time_jax

#: The solvers the benchmarks compare, by the name their JSON rows carry ("method").
SOLVERS = {"auto": jn.Auto(), "dense": jn.Dense(), "cg": jn.CG()}


def path_name(n_nodes: int, warm: bool = False) -> str:
    """The name of the solver `jn.Auto()` takes on `n_nodes` nodes (a JSON row's "method")."""
    chosen = jn.Auto().select(n_nodes, warm)
    return {jn.Dense: "dense", jn.CG: "cg", jn.CGThenDense: "cg+dense"}[type(chosen)]


PUBLIC = {"W64": 3400.0, "W1024": 200.0, "W64 gradient": 190.0}
ALPHA, ETA, LR = 0.05, 1e-3, 0.5


def workload(n_nodes: int):
    side = int(math.isqrt(n_nodes))
    net = jn.square_lattice(side, side)
    task = jn.regression_task(jax.random.key(0), net, n_train=20, n_test=0)
    return net, task


def rules():
    return {
        "coupled": (jn.rules.coupled_learning(alpha=ALPHA, eta=ETA),
                    lambda net, task: baselines.CoupledLearningNumpy(net, task, ALPHA, ETA)),
        "gradient": (jn.rules.gradient_descent(optax.sgd(LR)),
                     lambda net, task: baselines.GradientDescentNumpy(net, task, LR)),
    }


def check(net, task, rule, baseline, steps=20):
    with jax.enable_x64(True):
        k = jnp.ones(net.n_edges, jnp.float64)
        ours = jn.train(net, task, rule, k, key=jax.random.key(0), steps=steps, log_every=steps).conductances
    ref = baseline.run(np.ones(net.n_edges), steps)
    err = float(np.abs(np.asarray(ours) - ref).max() / np.abs(ref).max())
    assert err < 1e-8, f"jaxnet and the baseline disagree after {steps} steps: {err}"
    return err


def _train_fn(net, task, rule, steps, method="auto"):
    def fn(k0, keys):
        run = lambda k, key: jn.train(net, task, rule, k, key=key, steps=steps, log_every=steps,
                                      solver=SOLVERS[method]).conductances  # noqa: E731
        return jax.vmap(run)(k0, keys)

    return fn


def jaxnet_rate(net, task, rule, instances=1, steps=500, method="auto"):
    """(compile_s, network-steps/s) for `instances` vmapped trainings, sharded over devices."""
    k0 = jnp.ones((instances, net.n_edges), jnp.float32)
    keys = jax.random.split(jax.random.key(1), instances)
    if instances % len(jax.devices()) == 0 and instances > 1:
        k0, keys = jn.shard_instances((k0, keys))
    compile_s, run_s, _ = time_jax(_train_fn(net, task, rule, steps, method), k0, keys)
    return compile_s, instances * steps / run_s


def numpy_rate(make, net, steps):
    baseline = make()
    return steps / time_call(lambda: baseline.run(np.ones(net.n_edges), steps), min_time=1.0)


def dense_floor(n_free: int, columns: int = 4) -> float:
    """Seconds per step of LAPACK spotrf + spotrs on an SPD (n_free x n_free) matrix."""
    rng = np.random.default_rng(0)
    a = rng.random((n_free, n_free), np.float32)
    a = (a @ a.T + n_free * np.eye(n_free)).astype(np.float32)
    b = rng.random((n_free, columns), np.float32)

    def once():
        c, _ = scipy.linalg.lapack.spotrf(a, lower=1)
        return scipy.linalg.lapack.spotrs(c, b, lower=1)

    return time_call(lambda: [once() for _ in range(200)], min_time=0.5) / 200


def cg_iterations(net, task, steps=30):
    """Mean CG iterations per step of coupled learning, warm-started as `train` does.

    From `TrainResult.solver_iterations` (summed over the call's steps and its final solve).
    """
    rule = jn.rules.coupled_learning(alpha=ALPHA, eta=ETA)
    run = jax.jit(lambda k: jn.train(net, task, rule, k, key=jax.random.key(0), steps=steps,
                                     log_every=steps).solver_iterations)
    return float(run(jnp.ones(net.n_edges, jnp.float32))) / (steps + 1)


def sparse_floor(net, iterations: float) -> float:
    """Seconds per step of the CG path's products: `iterations` + 2 (the starting residual and
    the true-residual check) SciPy CSR products with 4 columns."""
    s, r = np.asarray(net.senders), np.asarray(net.receivers)
    lap = scipy.sparse.csr_matrix((np.ones(2 * len(s), np.float32), (np.r_[s, r], np.r_[r, s])), shape=(net.n_nodes,) * 2)
    x = np.ones((net.n_nodes, 4), np.float32)
    return (iterations + 2) * time_call(lambda: [lap @ x for _ in range(100)], min_time=0.3) / 100


TARGETS = {("W64", 1): 20.0, ("W64", 256): 60.0, ("W64", 1024): 60.0, ("W1024", 1): 20.0}  # x NumPy/SciPy
COMPILE_TARGET_S = 3.0
FLOOR_TARGET = 3.0  # a step within this factor of its linear-algebra floor


def _target(workload, instances):
    ratio = TARGETS.get((workload, instances))
    return "-" if ratio is None else f">= {ratio:g}x, compile < {COMPILE_TARGET_S:g} s, <= {FLOOR_TARGET:g}x floor"


def run(quick: bool = False):
    """The issue-9 table: the README's recipe with default arguments (`method="auto"`).

    Rows: W64 for 1, 256 and 1024 instances (64 with `quick`), the dense path for one W64
    network (against its LAPACK floor), gradient descent on W64, W1024, and a 1e5-node network.
    The floor of the default path is its measured CG iterations per step times SciPy's CSR
    product with the same 4 columns (divided by the cores for batches).
    """
    steps = 100 if quick else 500
    cores = os.cpu_count() or 1
    rows = []
    # ---- W64
    net, task = workload(64)
    cl, cl_numpy = rules()["coupled"]
    gd, gd_numpy = rules()["gradient"]
    check(net, task, cl, cl_numpy(net, task))
    check(net, task, gd, gd_numpy(net, task))
    base = max(numpy_rate(lambda s=s: baselines.CoupledLearningNumpy(net, task, ALPHA, ETA, solver=s), net, 50)
               for s in ("cholesky", "inverse"))
    sparse = 1 / sparse_floor(net, cg_iterations(net, task))
    for b in ((1, 64) if quick else (1, 256, 1024)):
        compile_s, rate = jaxnet_rate(net, task, cl, b, steps if b == 1 else steps // 5)
        rows.append(dict(workload="W64", method="auto", instances=b, jaxnet=rate, baseline=base, public=PUBLIC["W64"],
                         floor=sparse * (1 if b == 1 else cores), compile_s=compile_s, target=_target("W64", b)))
    compile_s, rate = jaxnet_rate(net, task, cl, 1, steps, "dense")
    rows.append(dict(workload="W64", method="dense", instances=1, jaxnet=rate, baseline=base, public=PUBLIC["W64"],
                     floor=1 / dense_floor(net.n_nodes - 3), compile_s=compile_s, target="reference: LAPACK floor"))
    cl_rate = rows[0]["jaxnet"]  # default path, one network
    gd_base = numpy_rate(lambda: gd_numpy(net, task), net, 50)
    compile_s, gd_rate = jaxnet_rate(net, task, gd, 1, steps)
    rows.append(dict(workload="W64 gradient", method="auto", instances=1, jaxnet=gd_rate, baseline=gd_base,
                     public=PUBLIC["W64 gradient"], floor=None, compile_s=compile_s,
                     target=f"GD step / CL step = {cl_rate / gd_rate:.2f}"))
    # ---- W1024
    net, task = workload(1024)
    check(net, task, cl, cl_numpy(net, task), steps=5)
    base = numpy_rate(lambda: baselines.CoupledLearningNumpy(net, task, ALPHA, ETA, solver="splu"), net, 10)
    iterations = cg_iterations(net, task)
    compile_s, rate = jaxnet_rate(net, task, cl, 1, steps // 5)
    rows.append(dict(workload="W1024", method="auto", instances=1, jaxnet=rate, baseline=base, public=PUBLIC["W1024"],
                     floor=1 / sparse_floor(net, iterations), compile_s=compile_s, target=_target("W1024", 1),
                     cg_iterations_per_step=iterations))
    # ---- 1e5 nodes, own process
    n_big = 20_000 if quick else 100_000
    out = subprocess.run([sys.executable, "-m", "benchmarks.big", str(n_big)], capture_output=True, text=True,
                         env=dict(os.environ, XLA_FLAGS=""), cwd=os.path.dirname(os.path.dirname(__file__)))
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    big = json.loads(out.stdout.strip().splitlines()[-1])
    rows.append(dict(workload=f"{big['n']} nodes", method=big["method"], instances=1, jaxnet=big["warm_steps_per_s"], baseline=None,
                     public=None, floor=None, compile_s=big["compile_s"],
                     target=f">= 1 step/s in < 4 GB; peak RSS {big['peak_rss_gb']:.2f} GB", big=big))
    for r in rows:
        ratio = TARGETS.get((r["workload"], r["instances"])) if r["method"] == "auto" else None
        if ratio is not None:
            r["met"] = dict(ratio=r["jaxnet"] / r["baseline"] >= ratio, compile=r["compile_s"] < COMPILE_TARGET_S,
                            floor=r["floor"] / r["jaxnet"] <= FLOOR_TARGET)
    return rows


def _fmt(x, spec):
    return "-" if x is None else format(x, spec)


def report(rows):
    print(f"{'workload':<14}{'path':>6}{'inst':>6}{'jaxnet steps/s':>16}{'baseline':>10}{'ratio':>8}{'public':>8}{'ratio':>8}"
          f"{'floor':>10}{'x floor':>9}{'compile':>9}  target")
    for r in rows:
        ratio_base = r["jaxnet"] / r["baseline"] if r["baseline"] else None
        ratio_pub = r["jaxnet"] / r["public"] if r["public"] else None
        x_floor = r["floor"] / r["jaxnet"] if r["floor"] else None
        print(f"{r['workload']:<14}{r['method']:>6}{r['instances']:>6}{r['jaxnet']:>16.0f}{_fmt(r['baseline'], '10.0f')}"
              f"{_fmt(ratio_base, '8.1f')}{_fmt(r['public'], '8.0f')}{_fmt(ratio_pub, '8.1f')}"
              f"{_fmt(r['floor'], '10.0f')}{_fmt(x_floor, '9.2f')}{r['compile_s']:>9.2f}  {r['target']}"
              + ("" if "met" not in r else "  " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in r["met"].items())))


if __name__ == "__main__":
    report(run(quick="--quick" in sys.argv))
