"""W64 x 65,536 instances on a GPU (target >= 1e7 network-steps/s on one H200).

Full-batch coupled learning on the 8x8 grid (20 examples, eta = 1e-3, float32), 65,536
instances vmapped (and sharded over all local GPUs), dense and CG paths. Checks first that a
short run gives finite conductances that lower the loss and that dense and CG agree, then
times compile and run separately (`jax.block_until_ready`). Writes
`benchmarks/results/gpu-<device>.json`. Designed to finish well under five minutes.
Run: `python -m benchmarks.gpu [instances] [steps]`.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

import jaxnet as jn

from ._timing import machine_name, time_jax
from .workloads import ALPHA, ETA, workload


def main(instances: int = 65_536, steps: int = 200, out_dir: str | None = None) -> dict:
    net, task = workload(64)
    rule = jn.rules.coupled_learning(alpha=ALPHA, eta=ETA)
    k0 = jnp.ones((instances, net.n_edges), jnp.float32)
    keys = jax.random.split(jax.random.key(1), instances)
    if instances % len(jax.devices()) == 0:
        k0, keys = jn.shard_instances((k0, keys))
    results = {"machine": machine_name(), "devices": [str(d) for d in jax.devices()], "instances": instances,
               "steps": steps, "jax": jax.__version__}
    finals = {}
    for method in ("dense", "cg"):
        def run(k0, keys, method=method):
            one = lambda k, key: jn.train(net, task, rule, k, key=key, steps=steps, log_every=steps, method=method)  # noqa: E731
            r = jax.vmap(one)(k0, keys)
            return r.conductances, r.loss

        compile_s, run_s, (k_final, loss) = time_jax(run, k0, keys, min_time=1.0)
        loss = np.asarray(loss)
        assert np.all(np.isfinite(np.asarray(k_final))), "non-finite conductances"
        assert np.all(loss[:, -1] < loss[:, 0]), "training did not lower the loss"
        finals[method] = np.asarray(k_final[:64])
        results[method] = dict(compile_s=compile_s, run_s=run_s, network_steps_per_s=instances * steps / run_s,
                               loss_first_last_mean=[float(loss[:, 0].mean()), float(loss[:, -1].mean())])
        print(f"{method:>6}: compile {compile_s:.1f} s, run {run_s:.2f} s, "
              f"{instances * steps / run_s:.3g} network-steps/s", flush=True)
    results["dense_vs_cg_max_rel_diff"] = float(np.abs(finals["dense"] - finals["cg"]).max() / np.abs(finals["dense"]).max())
    out_dir = os.path.join(os.path.dirname(__file__), "results") if out_dir is None else out_dir
    path = os.path.join(out_dir, f"gpu-{results['machine']}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print(f"saved {path}")
    return results


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
