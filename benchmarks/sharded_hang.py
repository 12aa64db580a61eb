"""Reproduction for the sharded-CPU hang reported on jax 0.10.x (issue 19).

The README's recipe, `jax.jit(jax.vmap(train))` over W64 networks, with the instance axis
spread over the CPU cores exposed as devices by `jn.shard_instances`. Run in its own process
(XLA_FLAGS must be set before JAX starts; this script sets the device count itself unless
XLA_FLAGS already names one):

    timeout 120 python -m benchmarks.sharded_hang [instances] [steps] [calls] [method] [devices] [rule]

defaults 32 20 20 auto 2 coupled (`rule`: coupled learning, or gradient descent, whose adjoint
solve is a dense Cholesky on the default path). Prints jax's version, compile time, the time of `calls` calls and the\nfastest and median call (the fastest is the least disturbed by other load on the machine).
A hang shows as the timeout's exit status 124 with the CPU idle.
"""

from __future__ import annotations

import os
import sys
import time

_args = sys.argv[1:]
_devices = int(_args[4]) if len(_args) > 4 else 2
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={_devices}").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import jaxnet as jn  # noqa: E402

from .workloads import SOLVERS  # noqa: E402


def main(instances: int = 32, steps: int = 20, calls: int = 20, method: str = "auto", devices: int = 2,
         rule: str = "coupled") -> float:
    side = 8
    net = jn.square_lattice(side, side)
    task = jn.regression_task(jax.random.key(0), net, n_train=20, n_test=0)
    rule_name = rule
    rule = (jn.rules.coupled_learning(alpha=0.05, eta=1e-3) if rule_name == "coupled"
            else jn.rules.gradient_descent(optax.sgd(0.5)))
    k0 = jnp.ones((instances, net.n_edges), jnp.float32)
    keys = jax.random.split(jax.random.key(1), instances)
    if devices > 1:
        k0, keys = jn.shard_instances((k0, keys), jax.devices()[:devices])
    run = jax.jit(jax.vmap(lambda k, key: jn.train(net, task, rule, k, key=key, steps=steps, log_every=steps,
                                                     solver=SOLVERS[method]).conductances))
    print(f"jax {jax.__version__}, {len(jax.devices())} devices, {instances} W64 x {steps} steps, "
          f"{calls} calls, method={method}, rule={rule_name}, sharded over {devices}", flush=True)
    t = time.perf_counter()
    jax.block_until_ready(run(k0, keys))
    print(f"first call (compile + run): {time.perf_counter() - t:.2f} s", flush=True)
    t = time.perf_counter()
    each = []
    for i in range(calls):
        t_call = time.perf_counter()
        k = jax.block_until_ready(run(k0, keys))
        each.append(time.perf_counter() - t_call)
        print(f"  call {i + 1}/{calls} done at {time.perf_counter() - t:.2f} s", flush=True)
    elapsed = time.perf_counter() - t
    assert bool(jnp.all(jnp.isfinite(k))), "non-finite conductances"
    print(f"{calls} calls: {elapsed:.2f} s (per call: fastest {min(each):.3f} s, median {sorted(each)[len(each) // 2]:.3f} s)",
          flush=True)
    return elapsed


if __name__ == "__main__":
    conv = (int, int, int, str, int, str)
    main(*(c(a) for c, a in zip(conv, _args)))
