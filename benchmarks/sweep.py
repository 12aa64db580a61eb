"""The sweep engine's overhead: `jn.sweep` against a hand-written `jit(vmap(train))`.

Same work for both, in the same process: 256 runs of full-batch coupled learning on the 8x8
grid (W64; each run its own terminals and data, as network seeds give them), 2,000 steps
logged every 100, float32. The engine runs it as a sweep (one chunk of 256 runs sharded over
every device, checkpoints every 1,000 steps, the tidy table written); the hand-written code
is the README's recipe on the very same inputs (`jn.rebuild_run`), once as is and once with
its instance axis sharded (`jn.shard_instances`), which is what the engine does. Compile
time is reported apart: the engine's from its metadata, the hand-written one's by lowering
and compiling ahead of time. Target: engine >= 0.9x hand-written (network-steps/s).
Run: `python -m benchmarks.sweep` (exposes every CPU core as a JAX device first; writes
`results/<machine>-sweep.json`).
"""

from __future__ import annotations

import os

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={os.cpu_count() or 1}").strip()

import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxnet as jn  # noqa: E402

from ._timing import time_jax  # noqa: E402


def config(runs: int = 256, steps: int = 2000) -> str:
    return f"""
[sweep]
steps = {steps}
log_every = 100
networks = {runs}
chunk_size = {runs}
checkpoint_every = 1000
[network]
kind = "square"
rows = 8
cols = 8
[task]
kind = "regression"
n_train = 20
n_test = 0
[[rule]]
kind = "coupled_learning"
alpha = 0.05
eta = 1e-3
"""


def engine(text: str, repeats: int = 3):
    """(compile_s, setup_s, run_s, table) of `jn.sweep`, medians over fresh directories.

    `run_s` is the wall time less compilation and less the setup (building the networks,
    tasks and keys, which the hand-written code does outside its timer too); both are
    reported."""
    compile_s, setup_s, run_s = [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            table = jn.sweep(text, out, quiet=True)
            wall = time.perf_counter() - start
            meta = json.load(open(os.path.join(out, "metadata.json")))["invocations"][-1]
        compile_s.append(meta["compile_s"])
        setup_s.append(meta["setup_s"])
        run_s.append(wall - meta["compile_s"] - meta["setup_s"])
    return float(np.median(compile_s)), float(np.median(setup_s)), float(np.median(run_s)), table


def hand_written(text: str, runs: int, steps: int, shard: bool):
    """(compile_s, run_s, losses) of the README recipe on the sweep's own inputs."""
    inputs = [jn.rebuild_run(text, r) for r in range(runs)]
    stack = lambda *xs: jnp.stack(xs)  # noqa: E731
    nets = jax.tree.map(stack, *[r.net for r in inputs])
    tasks = jax.tree.map(stack, *[r.task for r in inputs])
    k0 = jnp.stack([r.k0 for r in inputs])
    keys = jnp.stack([r.key for r in inputs])
    rule = jn.rules.coupled_learning(alpha=0.05, eta=1e-3)
    if shard:
        nets, tasks, k0, keys = jn.shard_instances((nets, tasks, k0, keys))

    def run(nets, tasks, k0, keys):
        one = lambda net, task, k, key: jn.train(net, task, rule, k, key=key, steps=steps, log_every=100).loss  # noqa: E731
        return jax.vmap(one)(nets, tasks, k0, keys)

    return time_jax(run, nets, tasks, k0, keys, min_time=1.0)


def main(runs: int = 256, steps: int = 2000) -> dict:
    text = config(runs, steps)
    work = runs * steps
    e_compile, e_setup, e_run, table = engine(text)
    results = {"runs": runs, "steps": steps, "devices": jax.device_count(),
               "engine": dict(compile_s=e_compile, setup_s=e_setup, run_s=e_run, network_steps_per_s=work / e_run)}
    for shard in (False, True):
        h_compile, h_run, losses = hand_written(text, runs, steps, shard)
        # the same numbers: the engine's table holds the hand-written losses (rounding apart)
        ours = table.sort_values(["run", "step"]).loss.to_numpy().reshape(runs, -1)
        np.testing.assert_allclose(ours, np.asarray(losses), rtol=1e-4, atol=1e-9)
        results["hand_sharded" if shard else "hand"] = dict(
            compile_s=h_compile, run_s=h_run, network_steps_per_s=work / h_run)
    results["engine_vs_hand_sharded"] = results["engine"]["network_steps_per_s"] / results["hand_sharded"]["network_steps_per_s"]
    results["engine_vs_hand"] = results["engine"]["network_steps_per_s"] / results["hand"]["network_steps_per_s"]
    return results


def report(r: dict) -> None:
    print(f"{r['runs']} runs x {r['steps']} steps, W64, {r['devices']} devices")
    print(f"{'':<28}{'compile s':>10}{'run s':>8}{'net-steps/s':>14}")
    for name, label in (("engine", "jn.sweep"), ("hand", "jit(vmap(train))"),
                        ("hand_sharded", "jit(vmap(train)), sharded")):
        x = r[name]
        print(f"{label:<28}{x['compile_s']:>10.2f}{x['run_s']:>8.2f}{x['network_steps_per_s']:>14.0f}")
    print(f"engine setup (networks, tasks, keys; not in its run time): {r['engine']['setup_s']:.2f} s")
    print(f"engine / hand-written: {r['engine_vs_hand']:.2f}x; engine / hand-written sharded: "
          f"{r['engine_vs_hand_sharded']:.2f}x (target >= 0.9)")


if __name__ == "__main__":
    results = main(*(int(a) for a in sys.argv[1:]))
    report(results)
    if len(sys.argv) == 1:
        from ._timing import machine_name

        path = os.path.join(os.path.dirname(__file__), "results", f"{machine_name()}-sweep.json")
        with open(path, "w") as f:
            json.dump(results, f, indent=1)
        print(f"saved {path}")
