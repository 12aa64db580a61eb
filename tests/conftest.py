import os
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from jaxnet._cache import enable_compile_cache, quiet_xla_cpu_cache_log

# JAX's persistent compilation cache, in the repository's ignored .cache/xla (or $JAXNET_CACHE_DIR):
# not the user's ~/.cache, so the tests write nothing outside the checkout. The console script's
# subprocesses share it (the variable is exported), so on a clean clone (CI) the first process to
# compile a program stores it and the others load it; a local rerun finds them all (test_continuation + test_checkpoint: 201 s without, 43 s warm, on
# a loaded 2-core machine). Other subprocesses (`python -c ...`) use no cache unless they call
# `jn.enable_compile_cache()`. JAXNET_COMPILE_CACHE=0 switches it off.
# One directory per xdist worker: a worker and the subprocesses it waits for share it (entries
# are written atomically, `jaxnet._cache`), and workers never load what another is writing.
os.environ.setdefault("JAXNET_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".cache" / "xla"
                                              / os.environ.get("PYTEST_XDIST_WORKER", "main")))
if enable_compile_cache() is not None:
    quiet_xla_cpu_cache_log()

# JAX runs as users run it: 32-bit by default. Tests that compare with float64 NumPy at tight
# tolerances ask for the `x64` fixture (a whole module with `pytestmark`); tests of the physics
# and of the learning rules run in both precisions through the `dtype` fixture.


@pytest.fixture
def x64():
    """64-bit JAX for this test (float64 arrays by default)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """Each precision in turn; float64 turns on 64-bit JAX for the test, float32 runs without it."""
    with jax.enable_x64(request.param == "float64"):
        yield jnp.dtype(request.param)


def tolerance(dtype, float32: float, float64: float) -> float:
    """The tolerance of a check in `dtype`."""
    return float32 if dtype == jnp.float32 else float64


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture(scope="session")
def smoke_reproduction(tmp_path_factory):
    """`jn.reproduce` at smoke scale, once per session: (directory, claims document).

    Shared by the tests of the report, the notebook and the README's command (which find
    the sweeps complete and only redo the analysis).
    """
    import jaxnet as jn

    out = str(tmp_path_factory.mktemp("reproduce") / "paper")
    return out, jn.reproduce(out, scale="smoke", quiet=True)
