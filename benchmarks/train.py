"""Training throughput: full-batch steps/s, jaxnet against NumPy/SciPy in the same process.

Workload (as in the public coupled-learning codes): square lattice, 20 examples, 2 inputs +
1 ground, 2 outputs, conductances starting at 1, eta = 1e-3, float32 for jaxnet. For one
network and for 256 and 1024 vmapped instances, coupled learning and gradient descent,
against the NumPy baseline of the same full-batch algorithm (dense Cholesky; the baseline
loops over instances, so its network-steps/s is that of one network). Each jaxnet run is
first checked to give the baseline's conductances (float64) after 20 steps.
Run: `python -m benchmarks.train`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxnet as jn

from . import baselines
from ._timing import time_call, time_jax

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


def run(n_nodes=64, instances=(1, 256, 1024), steps=200, method="auto"):
    net, task = workload(n_nodes)
    rows = []
    for name, (rule, make_baseline) in rules().items():
        baseline = make_baseline(net, task)
        err = check(net, task, rule, baseline)
        base_steps = max(5, steps // 10)
        base_s = time_call(lambda: baseline.run(np.ones(net.n_edges), base_steps), min_time=0.5) / base_steps
        for b in instances:
            k0 = jnp.ones((b, net.n_edges), jnp.float32)
            keys = jax.random.split(jax.random.key(1), b)

            def fn(k0, keys):
                return jax.vmap(lambda k, key: jn.train(net, task, rule, k, key=key, steps=steps,
                                                        log_every=steps, method=method).conductances)(k0, keys)

            compile_s, run_s, _ = time_jax(fn, k0, keys)
            rate = b * steps / run_s
            rows.append(dict(n=n_nodes, rule=name, instances=b, compile_s=compile_s,
                             jaxnet_network_steps_per_s=rate, baseline_steps_per_s=1 / base_s,
                             speedup=rate * base_s, check_rel_err=err))
    return rows


def report(rows):
    print(f"{'n':>6}{'rule':>10}{'instances':>11}{'compile s':>11}{'jaxnet net-steps/s':>20}{'NumPy steps/s':>15}{'ratio':>9}")
    for r in rows:
        print(f"{r['n']:>6}{r['rule']:>10}{r['instances']:>11}{r['compile_s']:>11.2f}"
              f"{r['jaxnet_network_steps_per_s']:>20.0f}{r['baseline_steps_per_s']:>15.0f}{r['speedup']:>9.1f}")


if __name__ == "__main__":
    report(run())
