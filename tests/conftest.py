import gc
import itertools
import os

# One BLAS thread per process. NumPy's OpenBLAS starts a thread per core and spins them while
# waiting: with `make test`'s workers (one per core) all doing the same, a 64-node batched
# matmul took 20-40 ms in place of 0.3 ms (the float32 accuracy test's NumPy reference spent
# most of its minute there). Set here, before xdist starts its workers (they, and the console
# script's subprocesses, inherit it); a process that has loaded NumPy already keeps its threads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# XLA compiles the suite's programs at backend optimization level 0 (LLVM without its optimizing
# passes). The tests run small problems, so compiling is most of their time: level 0 compiles a
# sweep segment in 2.2 s instead of 3.4 s, and `make test` took 7 min 42 s instead of 9 min
# 36 s-10 min 44 s (user CPU 14 min 13 s, against 18-20 min), every test passing at both levels.
# The arithmetic is IEEE float32/float64 either way (no fast math), though rounding may differ
# where the default level fuses a multiply and an add. What users run is the default level: the
# tests' subprocesses that set XLA_FLAGS themselves (the 2-device runs of test_sharding and
# test_contract, test_sweep's console-script sweeps) compile at it; the console-script commands
# that tests run in their own process (`cli.main`) do not. Set here, before JAX starts its
# backend and before xdist starts its workers (they, and the other subprocesses, inherit it);
# flags of your own are kept, a level of your own included.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import pytest  # noqa: E402

import jaxnet  # noqa: E402

# One persistent compilation cache per test run, as `jaxnet sweep` uses one: made empty by the
# run's first process, before xdist starts its workers, and exported as JAXNET_CACHE_DIR (in
# place of any of yours: the tests never use your cache), so the workers and the
# console-script subprocesses that tests start share it. A program that several tests build (a
# README block and its docs twin, a sweep and its CLI run, the same solve in two modules)
# compiles once per run: `make test` on 2 cores (at the default optimization level), 11 min 17 s
# without it, 9 min 50 s with it (user CPU 21 min 2 s, 18 min 21 s). Empty at the start, so a
# run does the same work on any machine; removed at exit (a run killed by a signal leaves it in
# the temporary directory). `JAXNET_COMPILE_CACHE=0` switches it
# off, as for the console script. Not with jax 0.9 (`make test-oldest`): there, two full runs
# with a cache lost an xdist worker to a segfault inside jaxlib (loading an entry, compiling one
# to store it).
if not os.environ.get("PYTEST_XDIST_WORKER"):  # the run's first process
    import atexit
    import shutil
    import tempfile

    os.environ["JAXNET_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxnet-tests-xla-")
    atexit.register(shutil.rmtree, os.environ["JAXNET_CACHE_DIR"], ignore_errors=True)
if jax.__version_info__ < (0, 10):
    os.environ["JAXNET_COMPILE_CACHE"] = "0"
jaxnet.enable_compile_cache()

# Each test module's compiled programs are let go when a worker moves on to another module.
# XLA:CPU maps every piece of machine code it compiles into the process (three memory mappings
# each: code, constants, data), and Linux allows a process 65,530 mappings (vm.max_map_count):
# one worker reached 64,592 near the end of a run (test_learning.py alone leaves 17,000) and
# aborted ("Fatal Python error: Aborted", inside a compile or a cache write), in a different
# test each run. `jax.clear_caches()` frees them (not the sweep engine's last 32 programs); a
# program needed again is read back from the run's compilation cache (compiled again where
# there is none: jax 0.9).
def pytest_runtest_teardown(item, nextitem):
    if nextitem is not None and nextitem.path != item.path:
        jax.clear_caches()
        gc.collect()


# A worker process that dies (not a test that fails) runs its test once more, on a fresh worker.
# Until the module hook above, a worker died about once a full run, out of memory mappings; this
# stays as a net for what else may kill a worker (jaxlib 0.9's cache loads did, see above).
# `make test` uses xdist's worksteal scheduler, which can reschedule. The summary counts such
# tests as "rerun" (look for an R); a test that fails is never rerun.
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
    """`jn.reproduce` at smoke scale, once per test run: (directory, claims document).

    Built once for all xdist workers (under a file lock; a worker that comes second finds it
    complete, its analysis kept, and waits rather than building its own), then copied into
    each worker's own directory (modification times kept, so the kept analysis still holds),
    where the tests of the report, the notebook and the README's command use it.
    """
    import fcntl
    import shutil

    import jaxnet as jn

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # this run's directory, shared by its workers (not by other runs)
    shared = root / "smoke_reproduction"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        jn.reproduce(str(shared / "paper"), scale="smoke", quiet=True)
    out = tmp_path_factory.mktemp("reproduce") / "paper"
    shutil.copytree(shared / "paper", out)
    return str(out), jn.reproduce(str(out), scale="smoke", quiet=True)


# ---------------------------------------------------------------- scheduling on xdist workers
#
# `make test` runs xdist's worksteal scheduler: each of N workers first gets a contiguous 1/N of
# the collection, and a worker that runs dry steals the back half of the busiest one's queue.
# A long test near the back of a queue can then run last, on one worker, while the others idle.
# So the long tests (rough single-process seconds on an idle 2-core machine; only the order
# depends on them) go first, each at the front of one worker's share, spread greedily (longest
# first, onto the least-loaded share), with the tests of the session's smoke reproduction kept
# together in one share (a second worker asking for it would wait on its lock while the first
# builds it). None of them uses a module-scoped fixture, so moving them builds nothing twice.
LONG = {
    "<smoke_reproduction>": 220,  # every test that asks for it, whatever its module
    "test_docs.py::test_code_blocks_run[custom-rule.md]": 50,
    "test_docs.py::test_code_blocks_run[rules.md]": 45,
    "test_docs.py::test_code_blocks_run[nonlinear.md]": 40,
    "test_readme.py::test_python_blocks_run": 60,
    "test_readme.py::test_sweep_commands_run": 30,
    "test_registry.py::test_a_rule_kind_registered_in_one_call_runs_in_a_sweep": 25,
    "test_packaging.py::test_wheel_and_sdist_build_and_the_wheel_works_in_a_fresh_venv": 30,
    "test_contract.py::test_centered_equilibrium_propagation_with_too_large_a_beta_says_so": 25,
}

LAST = ("test_solver.py", "test_spice.py")


def _long_key(item) -> str:
    name = f"{item.path.name}::{item.name}"
    return "<smoke_reproduction>" if "smoke_reproduction" in item.fixturenames else name


def pytest_collection_modifyitems(config, items):
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    if workers < 2:
        return
    units: dict[str, list] = {}
    for item in items:
        if _long_key(item) in LONG:
            units.setdefault(_long_key(item), []).append(item)
    shares, loads = [[] for _ in range(workers)], [0.0] * workers
    for key in sorted(units, key=LONG.get, reverse=True):
        w = loads.index(min(loads))
        shares[w] += units[key]
        loads[w] += LONG[key]
    moved = {id(item) for share in shares for item in share}
    # Steals take the back of a queue: the last modules are ones of many short tests and no
    # module-scoped fixture, so a steal never splits a module whose fixture both workers build.
    rest = iter(sorted((item for item in items if id(item) not in moved), key=lambda item: item.path.name in LAST))
    order, left = [], len(items)
    for w, share in enumerate(shares):  # worksteal's first split: len(pending) // workers left, in turn
        size = left // (workers - w)
        order += share + list(itertools.islice(rest, max(0, size - len(share))))  # (fewer if rest runs out)
        left -= size
    order += list(rest)
    items[:] = order
