"""`python -m benchmarks`: every benchmark, printed as tables and saved to results/<machine>.json."""

from __future__ import annotations

import argparse
import json
import os
import platform

import jax

from . import solve, train
from ._timing import machine_name


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    args = parser.parse_args(argv)
    results = {"machine": machine_name(), "jax": jax.__version__, "python": platform.python_version(),
               "cpu_count": os.cpu_count()}
    print(f"== solve (float32) on {results['machine']}")
    rows = solve.run(sizes=(16, 64), batches=(1, 64)) if args.quick else solve.run()
    solve.report(rows)
    results["solve"] = rows
    print("\n== train, W64 (8x8 grid, 20 examples, float32)")
    rows = train.run(instances=(1, 64), steps=50) if args.quick else train.run()
    train.report(rows)
    results["train"] = rows
    path = os.path.join(os.path.dirname(__file__), "results", f"{results['machine']}.json")
    if not args.quick:
        with open(path, "w") as f:
            json.dump(results, f, indent=1)
        print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
