"""The GPU benchmark (issue 9): W64 x 65,536 instances (target >= 1e7 network-steps/s on one
H200), W1024 x 1,024 instances and one 1e5-node network.

Full-batch coupled learning (20 examples, eta = 1e-3, float32), instances vmapped and sharded
over all local devices; the default path (``"auto"``) and the dense and CG paths. Each run
must give finite conductances that lower the loss; the first 8 instances of the default path
must equal a float64 run on the CPU to 1e-3 (relative, the tests' float32 tolerance). Compile
and run are timed apart (`jax.block_until_ready`). Writes `benchmarks/results/gpu-<device>.json`.
Designed to finish in a few minutes; on a CPU it runs at small size (`tests/test_benchmarks.py`).
Run: `python -m benchmarks.gpu [instances] [steps]` (W1024 uses instances / 64, the big
network 1e5 nodes when instances >= 65,536, else 2,000).
"""

from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

import jaxnet as jn

from . import big
from ._timing import machine_name, time_jax
from .workloads import ALPHA, ETA, SOLVERS, workload


def _train_batch(net, task, rule, instances, steps, method, dtype=jnp.float32):
    """`jit(vmap(train))` over `instances` from k = 1: (compile_s, run_s, final k, loss)."""
    k0 = jnp.ones((instances, net.n_edges), dtype)
    keys = jax.random.split(jax.random.key(1), instances)
    if instances % len(jax.devices()) == 0:
        k0, keys = jn.shard_instances((k0, keys))

    def run(k0, keys):
        one = lambda k, key: jn.train(net, task, rule, k, key=key, steps=steps, log_every=steps,
                                        solver=SOLVERS[method])  # noqa: E731
        r = jax.vmap(one)(k0, keys)
        return r.conductances, r.loss

    compile_s, run_s, (k_final, loss) = time_jax(run, k0, keys, min_time=1.0)
    loss = np.asarray(loss)
    assert np.all(np.isfinite(np.asarray(k_final))), "non-finite conductances"
    assert np.all(loss[:, -1] < loss[:, 0]), "training did not lower the loss"
    return compile_s, run_s, np.asarray(k_final), loss


def _cpu_float64(net, task, rule, instances, steps):
    """The same runs in float64 on the CPU: the reference for the float32 device results."""
    with jax.enable_x64(True), jax.default_device(jax.devices("cpu")[0]):
        one = lambda k, key: jn.train(net, task, rule, k, key=key, steps=steps, log_every=steps).conductances  # noqa: E731
        keys = jax.random.split(jax.random.key(1), instances)
        return np.asarray(jax.jit(jax.vmap(one))(jnp.ones((instances, net.n_edges), jnp.float64), keys))


def main(instances: int = 65_536, steps: int = 200, out_dir: str | None = None) -> dict:
    rule = jn.rules.coupled_learning(alpha=ALPHA, eta=ETA)
    results = {"machine": machine_name(), "devices": [str(d) for d in jax.devices()], "instances": instances,
               "steps": steps, "jax": jax.__version__}
    net, task = workload(64)
    finals = {}
    for method in ("auto", "dense", "cg"):
        compile_s, run_s, k_final, loss = _train_batch(net, task, rule, instances, steps, method)
        finals[method] = k_final[:8]
        results[method] = dict(compile_s=compile_s, run_s=run_s, network_steps_per_s=instances * steps / run_s,
                               loss_first_last_mean=[float(loss[:, 0].mean()), float(loss[:, -1].mean())])
        print(f"W64 x {instances} {method:>5}: compile {compile_s:.1f} s, run {run_s:.2f} s, "
              f"{instances * steps / run_s:.3g} network-steps/s", flush=True)
    results["dense_vs_cg_max_rel_diff"] = float(np.abs(finals["dense"] - finals["cg"]).max() / np.abs(finals["dense"]).max())
    reference = _cpu_float64(net, task, rule, 8, steps)
    results["float32_vs_cpu_float64_max_rel_diff"] = float(np.abs(finals["auto"] - reference).max() / np.abs(reference).max())
    print(f"float32 here vs float64 on the CPU: {results['float32_vs_cpu_float64_max_rel_diff']:.2e}", flush=True)
    assert results["float32_vs_cpu_float64_max_rel_diff"] < 1e-3, "float32 results differ from the float64 reference"

    net, task = workload(1024)
    b = max(1, instances // 64)
    compile_s, run_s, _, _ = _train_batch(net, task, rule, b, max(10, steps // 4), "auto")
    results["W1024"] = dict(instances=b, steps=max(10, steps // 4), compile_s=compile_s, run_s=run_s,
                            network_steps_per_s=b * max(10, steps // 4) / run_s)
    print(f"W1024 x {b}: compile {compile_s:.1f} s, {results['W1024']['network_steps_per_s']:.3g} network-steps/s", flush=True)
    results["big"] = big.main(100_000 if instances >= 65_536 else 2_000)
    print(f"{results['big']['n']} nodes: {results['big']['warm_steps_per_s']:.3g} steps/s", flush=True)

    out_dir = os.path.join(os.path.dirname(__file__), "results") if out_dir is None else out_dir
    path = os.path.join(out_dir, f"gpu-{results['machine']}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print(f"saved {path}")
    return results


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
