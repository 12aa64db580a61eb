import os

import jax
import jax.numpy as jnp
import pytest

# No persistent compilation cache in the suite (its own tests turn it on in subprocesses): two
# full runs with it lost an xdist worker to a segfault inside jaxlib 0.9.2 (loading an entry,
# compiling one to store it). Without it, workers still died in XLA compiles while another
# CPU-bound process shared the two cores, and, with the dense path's edge-by-edge residual
# (reverted), once on an idle machine; without it, idle runs pass. Exported, so the console script's
# subprocesses skip the cache too.
os.environ["JAXNET_COMPILE_CACHE"] = "0"
jax.config.update("jax_enable_compilation_cache", False)  # and off in this process, whatever enables it

# A worker process that dies (not a test that fails) runs its test once more, on a fresh worker.
# jaxlib 0.9.2's XLA CPU compiler now and then aborts or segfaults the whole process while
# compiling (once in each of five full runs on 2 cores in one session, in a different test each
# time, with no jaxnet frame at fault); `make test` uses xdist's worksteal scheduler, which can
# reschedule.
# The summary counts such tests as "rerun"; a test that fails is never rerun.
_CRASHED: set[str] = set()


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem, report, sched):
    if crashitem not in _CRASHED:
        _CRASHED.add(crashitem)
        sched.mark_test_pending(crashitem)
        report.outcome = "rerun"


def pytest_report_teststatus(report):
    if report.outcome == "rerun":
        return "rerun", "R", ("RERUN (worker crashed)", {"yellow": True})


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
