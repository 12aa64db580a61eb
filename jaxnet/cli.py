"""The `jaxnet` console script: a thin shell over `jn.sweep` and `jn.plot_sweep`.

    jaxnet sweep CONFIG.toml --out DIR [--fresh] [--retry-failed] [--quiet] [--set section.key=VALUE ...]
    jaxnet plot DIR [--x step] [--y normalized_loss] [--hue p] [--col rule] [--row task] [--out FILE]
                    [--sharey | --no-sharey] [--logx] [--title TEXT]
    jaxnet reproduce --out DIR [--quick | --full | --smoke] [--claim 1|2|3|gd|all] [--quiet]

On a CPU, `sweep` and `reproduce` expose every core as a JAX device (unless XLA_FLAGS already
sets the count) so the engine shards runs over them. Both keep their compiled programs in JAX's
persistent compilation cache (`jn.enable_compile_cache`: `$JAXNET_CACHE_DIR`, else
`~/.cache/jaxnet/xla`), so a rerun of the same shapes skips XLA's compile; `--no-compile-cache`
or `JAXNET_COMPILE_CACHE=0` switches it off.

Exit status: 0 success; 2 a bad config or directory (nothing ran); 3 `sweep` finished, but
some of its runs failed (a solver that missed its tolerance, ...): every other run completed,
the table marks the failed ones (`status == "failed"`), and a summary on stdout (stderr with
`--quiet`) names each with its reason and how to rebuild it. Rerunning a finished sweep does
not retry its failed runs; `--retry-failed` reruns only them (same inputs) and replaces their rows.

Several hosts: start one process per host with `--coordinator HOST:PORT --num-processes N
--process-id I` (or let `jax.distributed.initialize()` find them on a cluster).
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib


#: Exit status of `jaxnet sweep` when the sweep finished but some of its runs failed.
FAILED_RUNS = 3


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


def _use_every_cpu_core() -> None:
    """One JAX CPU device per core, so the engine shards over them (before JAX starts a backend).

    An explicit count (XLA_FLAGS or JAX_NUM_CPU_DEVICES) wins; once JAX has started (e.g.
    `main` called from a program that already ran JAX) the device count stays as it is.
    """
    import jax

    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags or "JAX_NUM_CPU_DEVICES" in os.environ:
        return
    try:
        jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)
    except RuntimeError:
        pass  # backends already initialized


def _cache_flag(parser) -> None:
    parser.add_argument("--no-compile-cache", action="store_true",
                        help="do not use JAX's persistent compilation cache (default: $JAXNET_CACHE_DIR, else "
                             "$XDG_CACHE_HOME/jaxnet/xla or ~/.cache/jaxnet/xla; JAXNET_COMPILE_CACHE=0 also "
                             "switches it off)")


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
    run.add_argument("--retry-failed", action="store_true",
                     help="rerun the failed runs of a finished sweep (same inputs) and replace their rows")
    run.add_argument("--quiet", action="store_true",
                     help="no progress bar or messages (a summary of failed runs still goes to stderr)")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override a config key (VALUE in TOML syntax, e.g. --set sweep.steps=100)")
    _cache_flag(run)
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
    plot.add_argument("--sharey", action=argparse.BooleanOptionalAction,
                      help="one y range for all facets, or (--no-sharey) one each (default: shared unless "
                           "the facets' ranges differ by more than a decade on a log axis, tenfold on a linear one)")
    plot.add_argument("--logx", action="store_true", help="log x axis (points at x <= 0 left out)")
    plot.add_argument("--title", help="the figure's title")
    plot.add_argument("--out", help="PNG path (default DIR/curves-<y>.png)")
    paper = commands.add_parser("reproduce", help="rerun the desynchronous-learning paper's claims; write a report")
    paper.add_argument("--out", required=True, help="output directory (report.md, claims.json, figures, sweeps/)")
    scale = paper.add_mutually_exclusive_group()
    scale.add_argument("--quick", dest="scale", action="store_const", const="quick",
                       help="minutes on a 2-core CPU (the default)")
    scale.add_argument("--full", dest="scale", action="store_const", const="full",
                       help="paper scale, thousands of runs: meant for a GPU")
    scale.add_argument("--smoke", dest="scale", action="store_const", const="smoke",
                       help="seconds: checks the pipeline, its numbers mean nothing")
    paper.add_argument("--claim", default="all", choices=["1", "2", "3", "gd", "all"],
                       help="which claim (gd: coupled learning against gradient descent)")
    paper.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    _cache_flag(paper)
    args = parser.parse_args(argv)
    if args.command in ("sweep", "reproduce") and not (args.command == "sweep" and args.num_processes > 1):
        _use_every_cpu_core()
    if args.command in ("sweep", "reproduce") and not args.no_compile_cache:
        from ._cache import enable_compile_cache, quiet_xla_cpu_cache_log

        if enable_compile_cache() is not None:
            quiet_xla_cpu_cache_log()

    import jax

    import jaxnet as jn

    try:
        if args.command == "sweep":
            overrides = _parse_set(args.set)
            config = jn.load_config(args.config, overrides)  # a bad config fails here, before anything runs
            _distributed(args)
            with jax.enable_x64(any(p["dtype"] == "float64" for p in config.points())):
                table = jn.sweep(args.config, args.out, fresh=args.fresh, quiet=args.quiet, overrides=overrides,
                                 retry_failed=args.retry_failed)
            if table.attrs.get("failed_runs"):
                if args.quiet and jax.process_index() == 0:
                    from .sweep import failure_summary

                    print(failure_summary(args.out, args.config), file=sys.stderr)
                return FAILED_RUNS
        elif args.command == "reproduce":
            jn.reproduce(args.out, scale=args.scale or "quick", claims=args.claim, quiet=args.quiet)
        else:
            out = args.out or os.path.join(args.dir, f"curves-{args.y}.png")
            jn.plot_sweep(args.dir, out, x=args.x, y=args.y, hue=args.hue, col=args.col, row=args.row,
                          sharey=args.sharey, logx=args.logx, title=args.title)
            print(out)
    except (ValueError, FileNotFoundError) as error:
        print(f"jaxnet: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command == "plot":
            raise
        print(f"jaxnet: interrupted; what was saved is kept: run the same command again to resume "
              f"({args.out}).", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports it
    return 0


if __name__ == "__main__":
    sys.exit(main())
