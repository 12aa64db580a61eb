"""The 1e5-node workload in its own process (so its peak memory is its own).

Disordered 2D network, 100,000 nodes, mean coordination 4; regression task (20 examples,
2 inputs + 1 ground, 2 outputs); full-batch coupled learning, float32, CG (auto). Prints one
JSON line: generation time, compile time, warm steps/s (10 steps continuing the run after
its first step, so the cold first solve is excluded; the call's final measurement included)
and peak RSS.
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

from .workloads import path_name


def main(n_nodes: int = 100_000) -> dict:
    start = time.perf_counter()
    net = jn.disordered_network(jax.random.key(0), n_nodes, 4.0)
    generate_s = time.perf_counter() - start
    task = jn.regression_task(jax.random.key(1), net, n_train=20, n_test=0)
    rule = jn.rules.coupled_learning(alpha=0.05, eta=1e-3)
    k0 = jnp.ones(net.n_edges, jnp.float32)
    # The first step starts CG cold; the warm rate is timed on a continuation of the run
    # (10 steps from the first step's state, whose CG warm start is then filled).
    first = jax.jit(lambda k0: jn.train(net, task, rule, k0, key=jax.random.key(0), steps=1).state)
    more = jax.jit(lambda state: jn.train(net, task, rule, state, steps=10, log_every=10).loss)
    start = time.perf_counter()
    state = jax.block_until_ready(first(k0))
    one_step_s = time.perf_counter() - start  # compile + the cold first step
    start = time.perf_counter()
    compiled = more.lower(state).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(state))
    start = time.perf_counter()
    loss = jax.block_until_ready(compiled(state))
    warm_s = time.perf_counter() - start
    row = dict(n=net.n_nodes, edges=net.n_edges, method=path_name(net.n_nodes, warm=True),
               generate_s=generate_s, compile_s=compile_s, warm_steps_per_s=10 / warm_s,
               first_step_with_compile_s=one_step_s, loss_first_last=[float(loss[0]), float(loss[-1])],
               peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)
    return row


if __name__ == "__main__":
    print(json.dumps(main(*(int(a) for a in sys.argv[1:]))))
