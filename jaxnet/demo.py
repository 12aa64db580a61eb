"""The main demo: `python -m jaxnet.demo` (what `make demo` runs).

Runs the shipped sweep `jaxnet/configs/demo.toml` with the sweep engine: 64 different
disordered 64-node networks (each with its own terminals and data) learn linear regression
with coupled learning at p = 1, 0.5, 0.1 (desynchronous) and with gradient descent, all
vmapped over instances. Prints a table of final errors and writes learning curves to
`out/demo/`. Interrupted, it resumes where it stopped (`--fresh` starts over); a run of another
jaxnet version there is started over.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os

import jaxnet as jn
from jaxnet._checkpoint import OtherVersionError, jaxnet_version
from jaxnet.sweep import plot_run_network
from jaxnet.cli import _parse_set

CONFIG = importlib.resources.files("jaxnet").joinpath("configs/demo.toml")


def summary(table) -> str:
    """Final C/C0 per rule and p over the completed runs: median, mean, test loss, share of
    runs below 0.1 C0, and how many runs failed (they end early, so they have no final row)."""
    final = table[(table.step == table.steps) & (table.status == "ok")]
    failed = table[table.status == "failed"].drop_duplicates("run")
    lines = [f"{'rule':<18}{'p':>5}{'C/C0 median':>13}{'C/C0 mean':>11}{'test loss':>11}{'< 0.1 C0':>10}{'failed':>8}"]
    for (rule, p), runs in final.groupby(["rule", "p"], sort=False):
        ratio = runs.normalized_loss
        n_failed = int(((failed.rule == rule) & (failed.p == p)).sum())
        lines.append(f"{rule:<18}{p:>5g}{ratio.median():>13.4f}{ratio.mean():>11.4f}{runs.test_loss.mean():>11.2e}"
                     f"{(ratio < 0.1).mean():>10.0%}{n_failed:>8d}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("out", "demo"))
    parser.add_argument("--fresh", action="store_true", help="delete an earlier demo run first")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a key of the demo config (e.g. --set sweep.networks=16)")
    args = parser.parse_args(argv)
    with importlib.resources.as_file(CONFIG) as path:
        config = jn.load_config(str(path), _parse_set(args.set))
        try:
            table = jn.sweep(str(path), args.out, fresh=args.fresh, overrides=_parse_set(args.set))
        except OtherVersionError:
            # The demo's results come from the shipped config alone: an earlier jaxnet's run of
            # it (which this version cannot resume; refused before anything ran) is run again.
            print(f"{args.out} holds a demo run of another jaxnet version: starting over with jaxnet "
                  f"{jaxnet_version()}.")
            table = jn.sweep(str(path), args.out, fresh=True, overrides=_parse_set(args.set))
    print("\n" + summary(table))
    figure = os.path.join(args.out, "learning_curves.png")
    jn.plot_sweep(table, figure, x="edge_updates", hue=["rule", "p"],
                  title="64-node networks, y = C x: median and quartiles over networks")
    print(f"\nlearning curves: {figure}")
    final = table[(table.step == table.steps) & (table.status == "ok")]
    run = int(final[(final.rule == "coupled_learning") & (final.p == 1)].run.min())
    pictures = os.path.join(args.out, "network_before_after.png")
    plot_run_network(config, args.out, run, pictures)
    print(f"run {run}'s network before and after coupled learning: {pictures}")


if __name__ == "__main__":
    main()
