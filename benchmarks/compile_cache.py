"""What JAX's persistent compilation cache saves on jaxnet's programs: cold against warm cache.

Each measurement runs in its own Python process (the cache only matters across processes), in
three modes: `off` (no persistent cache), `cold` (an empty cache directory: compile and write)
and `warm` (a second process on the same directory: read instead of compile).

1. **program**: the README's recipe, `jax.jit(jax.vmap(train))` over `--instances` W64 networks
   (coupled learning, desync p = 0.5, `--steps` steps), its first call split into trace
   (`jit(f).trace`), lower (`.lower()`), compile (`.compile()`) and run; `setup` is building the
   network and task (small op-by-op programs, also cached); `import` is `import jaxnet`.
2. **sweep**: `jn.sweep` on a tiny config (4 grid points, 6 instances, 40 steps of 20-node
   networks): wall time and the engine's own `compile_s` (trace + lower + compile of every
   segment program).
3. **cli**: `python -m jaxnet.cli sweep` on the same config, fresh output directories, the whole
   process timed from outside.

Parts 1 and 2 call `jn.enable_compile_cache` only, as a library user would: `loader E` counts the
lines XLA:CPU logs on loading cached programs (spurious, see `jaxnet/_cache.py`), `digest` hashes
the results (the same in every mode). Part 3 runs the console script, which keeps that log quiet.

Run: `python -m benchmarks.compile_cache [--instances 16] [--steps 20] [--repeat 2]`; it prints
one table per part and the number of cache entries written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY_SWEEP = """
[sweep]
steps = 40
log_every = 10
networks = 3
seeds = 2
checkpoint_every = 10
chunk_size = 4
dtype = "float32"

[network]
kind = "disordered"
n_nodes = 20

[task]
kind = "regression"
n_train = 8
n_test = 4

[[rule]]
kind = "coupled_learning"
alpha = 0.5
eta = 0.1
p = [1.0, 0.5]

[[rule]]
kind = "gradient_descent"
optimizer = "adam"
learning_rate = [0.01, 0.05]
"""


def _program(instances: int, steps: int) -> dict:
    import jax
    import jax.numpy as jnp

    import jaxnet as jn

    times = {}
    start = time.perf_counter()
    net = jn.disordered_network(jax.random.key(0), n_nodes=64, coordination=4.0)
    task = jn.regression_task(jax.random.key(1), net)
    rule = jn.rules.desync(jn.rules.coupled_learning(alpha=1.0, eta=1e-3), p=0.5)
    k0 = jnp.ones((instances, net.n_edges))
    keys = jax.random.split(jax.random.key(3), instances)
    jax.block_until_ready((k0, keys))
    times["setup"] = time.perf_counter() - start

    run = jax.jit(jax.vmap(lambda k, key: jn.train(net, task, rule, k, key=key, steps=steps)))
    start = time.perf_counter()
    traced = run.trace(k0, keys)
    times["trace"] = time.perf_counter() - start
    start = time.perf_counter()
    lowered = traced.lower()
    times["lower"] = time.perf_counter() - start
    start = time.perf_counter()
    compiled = lowered.compile()
    times["compile"] = time.perf_counter() - start
    start = time.perf_counter()
    result = jax.block_until_ready(compiled(k0, keys))
    times["run"] = time.perf_counter() - start
    jn.check(result)
    times["digest"] = _digest([result.conductances, result.loss])
    return times


def _digest(arrays) -> str:
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        h.update(np.asarray(a).tobytes())
    return h.hexdigest()[:12]


def _sweep(out: str) -> dict:
    import jaxnet as jn

    start = time.perf_counter()
    jn.sweep(TINY_SWEEP, out, quiet=True)
    wall = time.perf_counter() - start
    with open(os.path.join(out, "metadata.json")) as f:
        invocation = json.load(f)["invocations"][-1]
    k = jn.load_conductances(out)
    return {"sweep": wall, "compile_s": invocation["compile_s"],
            "digest": _digest([k[run] for run in sorted(k)])}


def _child(args) -> None:
    """One measurement in this process; prints a JSON line."""
    import warnings

    caught = []
    warnings.showwarning = lambda message, *rest: caught.append(str(message))
    start = time.perf_counter()
    import jaxnet as jn

    imported = time.perf_counter() - start
    if args.cache != "off":
        assert jn.enable_compile_cache(args.cache) is not None
    times = _program(args.instances, args.steps) if args.part == "program" else _sweep(args.out)
    times["import"] = imported
    times["warnings"] = caught
    print("RESULT " + json.dumps(times))


def _entries(cache: str) -> int:
    return sum(name.endswith("-cache") for name in os.listdir(cache)) if os.path.isdir(cache) else 0


def _spawn(args, part: str, cache: str, out: str = "") -> dict:
    command = [sys.executable, "-m", "benchmarks.compile_cache", "--child", part, "--cache", cache,
               "--instances", str(args.instances), "--steps", str(args.steps), "--out", out]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):])
    result["stderr_kb"] = len(done.stderr) / 1e3
    result["loader_errors"] = done.stderr.count("cpu_aot_loader")
    return result


def _cli(args, cache: str | None, out: str, config: str) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, "-m", "jaxnet.cli", "sweep", config, "--out", out, "--quiet"]
    if cache is None:
        command.append("--no-compile-cache")
    else:
        env["JAXNET_CACHE_DIR"] = cache
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    with open(os.path.join(out, "metadata.json")) as f:
        compile_s = json.load(f)["invocations"][-1]["compile_s"]
    return {"process": wall, "compile_s": compile_s, "stderr_kb": len(done.stderr) / 1e3}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2, help="cold/warm pairs per part (fresh cache each)")
    parser.add_argument("--parts", default="program,sweep,cli")
    parser.add_argument("--child", choices=["program", "sweep"], help=argparse.SUPPRESS)
    parser.add_argument("--cache", default="off", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.part = args.child
        return _child(args)

    parts = args.parts.split(",")
    work = tempfile.mkdtemp(prefix="jaxnet-cache-bench-")
    try:
        for part in [p for p in parts if p in ("program", "sweep")]:
            rows = []
            for i in range(args.repeat):
                cache = os.path.join(work, f"{part}-{i}")
                runs = {"off": _spawn(args, part, "off", os.path.join(work, f"{part}-off-{i}"))}
                runs["cold"] = _spawn(args, part, cache, os.path.join(work, f"{part}-cold-{i}"))
                entries = _entries(cache)
                runs["warm"] = _spawn(args, part, cache, os.path.join(work, f"{part}-warm-{i}"))
                for mode, times in runs.items():
                    rows.append((i, mode, times, entries if mode != "off" else 0))
            _report(part, rows, args)
        if "cli" in parts:
            config = os.path.join(work, "tiny.toml")
            with open(config, "w") as f:
                f.write(TINY_SWEEP)
            print("\n== cli: python -m jaxnet.cli sweep tiny.toml (whole process, s)")
            print(f"{'try':>4}{'mode':>6}{'process':>9}{'compile_s':>11}{'entries':>9}{'stderr kB':>11}")
            for i in range(args.repeat):
                cache = os.path.join(work, f"cli-{i}")
                runs = {"off": _cli(args, None, os.path.join(work, f"cli-off-{i}"), config),
                        "cold": _cli(args, cache, os.path.join(work, f"cli-cold-{i}"), config)}
                entries = _entries(cache)
                runs["warm"] = _cli(args, cache, os.path.join(work, f"cli-warm-{i}"), config)
                for mode, r in runs.items():
                    print(f"{i:>4}{mode:>6}{r['process']:>9.2f}{r['compile_s']:>11.2f}"
                          f"{entries if mode != 'off' else 0:>9}{r['stderr_kb']:>11.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _report(part: str, rows, args) -> None:
    if part == "program":
        print(f"\n== program: jit(vmap(train)), {args.instances} x W64, {args.steps} steps, desync CL (s)")
        columns = ["import", "setup", "trace", "lower", "compile", "run"]
    else:
        print("\n== sweep: jn.sweep on a tiny config (s)")
        columns = ["import", "sweep", "compile_s"]
    print(f"{'try':>4}{'mode':>6}" + "".join(f"{c:>10}" for c in columns)
          + f"{'entries':>9}{'loader E':>10}{'digest':>14}")
    for i, mode, times, entries in rows:
        print(f"{i:>4}{mode:>6}" + "".join(f"{times[c]:>10.3f}" for c in columns)
              + f"{entries:>9}{times['loader_errors']:>10}{times['digest']:>14}")
        for warning in times["warnings"]:
            print(f"      warning: {warning[:300]}")


if __name__ == "__main__":
    main()
