"""The `jaxnet` console script: a thin shell over `jn.sweep` and `jn.plot_sweep`.

    jaxnet sweep CONFIG.toml --out DIR [--fresh] [--quiet] [--set section.key=VALUE ...]
    jaxnet plot DIR [--x step] [--y normalized_loss] [--hue p] [--col rule] [--row task] [--out FILE]

Several hosts: start one process per host with `--coordinator HOST:PORT --num-processes N
--process-id I` (or let `jax.distributed.initialize()` find them on a cluster).
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib


def _parse_set(items: list[str]) -> dict:
    overrides = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"jaxnet: --set takes section.key=VALUE; got {item!r}.")
        try:
            overrides[name.strip()] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            overrides[name.strip()] = text  # a bare word: a string
    return overrides


def _distributed(args) -> None:
    if args.num_processes and args.num_processes > 1:
        import jax

        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU devices only
        jax.distributed.initialize(args.coordinator, num_processes=args.num_processes, process_id=args.process_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jaxnet", description="Sweeps of self-learning resistor networks.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("sweep", help="run (or resume) a sweep from a TOML config")
    run.add_argument("config", help="TOML config file")
    run.add_argument("--out", required=True, help="output directory")
    run.add_argument("--fresh", action="store_true", help="delete the directory's sweep first")
    run.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override a config key (VALUE in TOML syntax, e.g. --set sweep.steps=100)")
    run.add_argument("--coordinator", help="HOST:PORT of process 0, for several processes")
    run.add_argument("--num-processes", type=int, default=0)
    run.add_argument("--process-id", type=int, default=0)
    plot = commands.add_parser("plot", help="learning curves of a finished sweep to a PNG")
    plot.add_argument("dir", help="sweep directory")
    plot.add_argument("--x", default="step", help="step or edge_updates")
    plot.add_argument("--y", default="normalized_loss", help="metric column")
    plot.add_argument("--hue", action="append", help="config column with one curve per value (repeatable)")
    plot.add_argument("--col", help="config column to facet by, in columns")
    plot.add_argument("--row", help="config column to facet by, in rows")
    plot.add_argument("--out", help="PNG path (default DIR/curves-<y>.png)")
    args = parser.parse_args(argv)

    import jaxnet as jn

    try:
        if args.command == "sweep":
            overrides = _parse_set(args.set)
            jn.load_config(args.config, overrides)  # a bad config fails here, before anything runs
            _distributed(args)
            jn.sweep(args.config, args.out, fresh=args.fresh, quiet=args.quiet, overrides=overrides)
        else:
            out = args.out or os.path.join(args.dir, f"curves-{args.y}.png")
            jn.plot_sweep(args.dir, out, x=args.x, y=args.y, hue=args.hue, col=args.col, row=args.row)
            print(out)
    except (ValueError, FileNotFoundError) as error:
        print(f"jaxnet: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
