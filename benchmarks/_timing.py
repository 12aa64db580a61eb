"""Timing helpers: compile time apart from run time, `jax.block_until_ready`, medians."""

from __future__ import annotations

import os
import time

import jax
import numpy as np


def time_call(fn, *args, min_time: float = 0.3, max_repeats: int = 50):
    """Median wall time (s) of `fn(*args)` over repeats totalling at least `min_time`."""
    times = []
    while sum(times) < min_time and len(times) < max_repeats:
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_jax(fn, *args, min_time: float = 0.3):
    """Compile `fn` for `args` and time it.

    **Returns:** `(compile_s, run_s, output)`: lowering + XLA compilation time, median run time
    of the jitted function (after one warm-up call), and its output. Runs are timed through
    `jax.jit`'s own dispatch: calling the `Compiled` object from `.lower().compile()` costs an
    extra ~100 µs per call, which would swamp small solves.
    """
    jitted = jax.jit(fn)
    start = time.perf_counter()
    jitted.lower(*args).compile()
    compile_s = time.perf_counter() - start
    out = jax.block_until_ready(jitted(*args))
    return compile_s, time_call(jitted, *args, min_time=min_time), out


def machine_name() -> str:
    """A short name for this machine, for results files: ``cpu-2cores``, ``gpu-nvidia_h200-1dev``."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        return f"cpu-{os.cpu_count()}cores"
    return f"{device.platform}-{device.device_kind.replace(' ', '_').lower()}-{jax.device_count()}dev"
