"""JAX's persistent compilation cache, switched on for jaxnet's programs.

`enable_compile_cache()` points JAX at a directory where XLA stores each compiled program, so a
later process that builds the same program (same shapes, dtypes, devices, jax/jaxlib version)
loads it from disk instead of compiling it again. The `jaxnet` console script and the test
suite call it; `import jaxnet` does not (a library user decides).

Where: `JAXNET_CACHE_DIR` if set, else JAX's own `jax_compilation_cache_dir` if the user set it
(e.g. `JAX_COMPILATION_CACHE_DIR`), else `$XDG_CACHE_HOME/jaxnet/xla`, else
`~/.cache/jaxnet/xla`. Off: `JAXNET_COMPILE_CACHE=0` (or `jaxnet ... --no-compile-cache`).
The directory only grows (JAX's size cap is left off); deleting it is always safe.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

#: Environment variable naming the cache directory.
CACHE_DIR_ENV = "JAXNET_CACHE_DIR"
#: Environment variable that switches the cache off when set to 0 (or false, no, off).
SWITCH_ENV = "JAXNET_COMPILE_CACHE"

# JAX stores a program only if compiling it took at least this long. JAX's default, 1 s (meant
# for remote file systems), keeps the training programs but drops the small ones: building
# networks, tasks and keys runs dozens of op-by-op programs of 0.01-0.07 s each. Storing every
# program took the setup of the README's recipe (network, task, keys) from 0.8 s to 0.5 s in a
# warm process (2-core CPU), for ~20 entries of ~10 kB instead of ~6.
MIN_COMPILE_TIME_S = 0.0


def compile_cache_switched_off() -> bool:
    """Whether `JAXNET_COMPILE_CACHE` switches the cache off (0, false, no or off)."""
    return os.environ.get(SWITCH_ENV, "").strip().lower() in ("0", "false", "no", "off")


def default_cache_dir() -> Path:
    """`$JAXNET_CACHE_DIR`, else `$XDG_CACHE_HOME/jaxnet/xla`, else `~/.cache/jaxnet/xla`."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "jaxnet" / "xla"


def enable_compile_cache(directory: str | os.PathLike | None = None) -> Path | None:
    """Store jaxnet's compiled programs in a persistent cache; return its directory.

    `directory` None: `$JAXNET_CACHE_DIR`, else a directory the user already gave JAX
    (`JAX_COMPILATION_CACHE_DIR`), else `$XDG_CACHE_HOME/jaxnet/xla` or `~/.cache/jaxnet/xla`.
    Returns None, changing nothing, when `JAXNET_COMPILE_CACHE=0`, when JAX's cache is switched
    off (`jax_enable_compilation_cache`), or when the directory cannot be created (a warning).
    Call it before the programs compile; it applies to the whole process.

    On a CPU, jaxlib 0.9 logs two long, spurious "cpu_aot_loader ... could lead to SIGILL"
    errors for every program it loads from the cache (the programs are fine); start Python
    with `TF_CPP_MIN_LOG_LEVEL=3` to hide them, as the `jaxnet` console script does itself.
    """
    import jax

    if compile_cache_switched_off() or not jax.config.jax_enable_compilation_cache:
        return None
    configured = jax.config.jax_compilation_cache_dir
    if directory is None:
        directory = os.environ.get(CACHE_DIR_ENV) or configured or default_cache_dir()
    path = Path(directory).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        warnings.warn(f"jaxnet: no compilation cache ({path} cannot be created: {error})", stacklevel=2)
        return None
    _write_entries_atomically()
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # any size
    if configured and Path(configured).expanduser().absolute() != path:
        # JAX opens its cache once, at the first compile; a new directory needs it reopened.
        from jax.experimental.compilation_cache import compilation_cache

        compilation_cache.reset_cache()
    return path


def _write_entries_atomically() -> None:
    """Make JAX's cache write each entry whole, or not at all.

    Without a size cap, jax 0.9's file cache writes an entry in place with no lock
    (`LRUCache.put`: `path.write_bytes`), so a process that loads the entry while another
    writes it (two sweeps at once, the test suite's workers, a multi-process sweep) reads a
    partial executable; the suite once died of a segmentation fault inside that load. Here the
    entry is written to a temporary file and renamed into place (`os.replace`, atomic on one
    file system): a reader sees the whole entry or none. Patched once per process, only where
    JAX's writer is the one described (a capped cache takes JAX's own lock and is left alone).
    """
    try:
        from jax._src import lru_cache
    except ImportError:  # another jax: its writer is left as it is
        return
    original = getattr(lru_cache.LRUCache, "put", None)
    if original is None or getattr(original, "jaxnet_atomic", False) or not hasattr(lru_cache, "_CACHE_SUFFIX"):
        return

    def put(self, key: str, value: bytes) -> None:
        if self.eviction_enabled or not isinstance(self.path, Path):
            return original(self, key, value)
        if not key:
            raise ValueError("key cannot be empty")
        path = self.path / f"{key}{lru_cache._CACHE_SUFFIX}"
        if path.exists():
            return
        partial = self.path / f".{key}.{os.getpid()}.partial"
        partial.write_bytes(value)
        os.replace(partial, path)

    put.jaxnet_atomic = True
    lru_cache.LRUCache.put = put


def quiet_xla_cpu_cache_log() -> None:
    """Keep XLA's C++ log to fatal errors, unless the user chose a `TF_CPP_MIN_LOG_LEVEL`.

    With jaxlib 0.9.x, XLA:CPU logs two ERROR lines of ~2.5 kB each time it loads a program
    from the persistent cache ("Target machine feature +prefer-no-gather is not supported on
    the host machine ... This could lead to execution errors such as SIGILL"), on the machine
    that compiled it: its check counts LLVM tuning preferences (prefer-no-gather/-scatter) as
    CPU features (jax-ml/jax#38445, openxla/xla#44565). The program loads and gives the same
    results bit for bit; only the log is wrong, and it buries a sweep's messages. The console
    script and the tests call this, before the first computation (later it has no effect).
    `import jax` sets `TF_CPP_MIN_LOG_LEVEL=1` unless it is set; any other value (0 shows
    everything, 2 errors) keeps XLA's log as chosen.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "1") != "1":
        return
    try:
        from jaxlib.utils import absl_set_min_log_level
    except ImportError:  # another jaxlib: the log stays as it is
        return
    absl_set_min_log_level(3)  # absl: 0 info, 1 warning, 2 error, 3 fatal
