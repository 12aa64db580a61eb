"""`python -m benchmarks` (`make bench`): all CPU benchmarks; tables, results JSON and a plot.

On a CPU-only machine every core is exposed as a JAX device (XLA's host device count), so
batched workloads are sharded over the cores with `jn.shard_instances`. Writes
`benchmarks/results/<machine>.json` and `benchmarks/results/<machine>-scaling.png`.
`--quick` runs small sizes only and writes nothing.
"""

from __future__ import annotations

import os

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={os.cpu_count() or 1}").strip()

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402

import jax  # noqa: E402

from . import scaling, solve, workloads  # noqa: E402
from ._timing import machine_name  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only; nothing written")
    args = parser.parse_args(argv)
    machine = machine_name()
    results = {"machine": machine, "jax": jax.__version__, "python": platform.python_version(),
               "devices": len(jax.devices())}
    print(f"== workloads (float32) on {machine}, {len(jax.devices())} JAX devices")
    results["workloads"] = workloads.run(quick=args.quick)
    workloads.report(results["workloads"])
    print("\n== solve: solves/s, jaxnet vs SciPy")
    results["solve"] = solve.run(sizes=(16, 64), batches=(1, 64)) if args.quick else solve.run()
    solve.report(results["solve"])
    print("\n== scaling")
    results["scaling"] = scaling.run(quick=args.quick)
    scaling.report(results["scaling"])
    if not args.quick:
        base = os.path.join(os.path.dirname(__file__), "results", machine)
        with open(base + ".json", "w") as f:
            json.dump(results, f, indent=1)
        scaling.plot(results["scaling"], base + "-scaling.png")
        print(f"\nsaved {base}.json and {base}-scaling.png")


if __name__ == "__main__":
    main()
