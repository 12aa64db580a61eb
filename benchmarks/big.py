"""The 1e5-node workload in its own process (so its peak memory is its own).

Disordered 2D network, 100,000 nodes, mean coordination 4; regression task (20 examples,
2 inputs + 1 ground, 2 outputs); full-batch coupled learning, float32, CG (auto). Prints one
JSON line: generation time, compile time, warm steps/s (from the difference of a 1-step and
an 11-step run, so the cold first solve is excluded) and peak RSS.
Run: `python -m benchmarks.big [n_nodes]`.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import jax
import jax.numpy as jnp

import jaxnet as jn


def main(n_nodes: int = 100_000) -> dict:
    start = time.perf_counter()
    net = jn.disordered_network(jax.random.key(0), n_nodes, 4.0)
    generate_s = time.perf_counter() - start
    task = jn.regression_task(jax.random.key(1), net, n_train=20, n_test=0)
    rule = jn.rules.coupled_learning(alpha=0.05, eta=1e-3)
    k0 = jnp.ones(net.n_edges, jnp.float32)
    times = {}
    for steps in (1, 11):
        fn = jax.jit(lambda k0: jn.train(net, task, rule, k0, key=jax.random.key(0), steps=steps, log_every=steps).loss)
        start = time.perf_counter()
        compiled = fn.lower(k0).compile()
        compile_s = time.perf_counter() - start
        jax.block_until_ready(compiled(k0))
        start = time.perf_counter()
        loss = jax.block_until_ready(compiled(k0))
        times[steps] = time.perf_counter() - start
    row = dict(n=net.n_nodes, edges=net.n_edges, method=jn.Solver().resolve(net.n_nodes, warm=True),
               generate_s=generate_s, compile_s=compile_s, warm_steps_per_s=10 / (times[11] - times[1]),
               one_step_run_s=times[1], loss_first_last=[float(loss[0]), float(loss[-1])],
               peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)
    return row


if __name__ == "__main__":
    print(json.dumps(main(*(int(a) for a in sys.argv[1:]))))
