"""JAX's persistent compilation cache: where it lives, that jaxnet's programs land in it, how
to switch it off. Each process runs in a subprocess, since the cache is set per process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jaxnet import _cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A small jitted jaxnet program (solves of a 3x3 grid, vmapped over conductances); prints what
# `enable_compile_cache` returned and the solution's bytes, to compare across processes.
PROGRAM = """
import sys
import jax, jax.numpy as jnp
import jaxnet as jn
assert jax.config.jax_compilation_cache_dir is None, "import jaxnet set a cache"
where = jn.enable_compile_cache()
if sys.argv[1] == "quiet":
    from jaxnet._cache import quiet_xla_cpu_cache_log
    quiet_xla_cpu_cache_log()
net = jn.square_lattice(3, 3)
run = jax.jit(jax.vmap(lambda k: jn.solve(net, k, jnp.array([0, 8]), jnp.array([1.0, 0.0]))))
v = run(jnp.linspace(1.0, 2.0, 2 * net.n_edges).reshape(2, net.n_edges))
print(where)
print(jnp.asarray(v).tobytes().hex())
"""


def _run(tmp_path, *, quiet=False, **env_vars):
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAXNET_CACHE_DIR", "JAXNET_COMPILE_CACHE", "JAX_COMPILATION_CACHE_DIR",
                        "TF_CPP_MIN_LOG_LEVEL", "XDG_CACHE_HOME")}
    env.update(env_vars, HOME=str(tmp_path / "home"), PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", PROGRAM, "quiet" if quiet else "loud"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    where, result = done.stdout.split()[-2:]
    return where, result, done.stderr


def _entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*-cache")) if directory.exists() else []


def test_programs_are_stored_then_loaded_and_switched_off_by_env(tmp_path):
    where, cold, _ = _run(tmp_path, XDG_CACHE_HOME=str(tmp_path / "xdg"))  # the default directory
    cache = tmp_path / "xdg" / "jaxnet" / "xla"
    assert where == str(cache)
    stored = _entries(cache)
    assert any(name.startswith("jit__lambda-") for name in stored), stored  # the vmapped solve

    # A second process (given the directory by JAXNET_CACHE_DIR) loads the programs: nothing new
    # to store, the same result bit for bit, and with XLA's C++ log kept to fatal errors, none
    # of the XLA:CPU loader's spurious errors.
    where, warm, stderr = _run(tmp_path, quiet=True, JAXNET_CACHE_DIR=str(cache))
    assert (where, warm) == (str(cache), cold)
    assert _entries(cache) == stored
    assert "cpu_aot_loader" not in stderr, stderr[-2000:]

    where, result, _ = _run(tmp_path, XDG_CACHE_HOME=str(tmp_path / "off"), JAXNET_COMPILE_CACHE="0")
    assert (where, result) == ("None", cold)
    assert not (tmp_path / "off").exists()


@pytest.mark.parametrize("env, expected", [
    ({"JAXNET_CACHE_DIR": "/somewhere/xla", "XDG_CACHE_HOME": "/x"}, "/somewhere/xla"),
    ({"XDG_CACHE_HOME": "/x"}, "/x/jaxnet/xla"),
    ({"HOME": "/home/u"}, "/home/u/.cache/jaxnet/xla"),
])
def test_default_cache_dir(monkeypatch, env, expected):
    for name in ("JAXNET_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _cache.default_cache_dir() == Path(expected)


@pytest.mark.parametrize("value, off", [("0", True), ("false", True), ("OFF", True), ("1", False), ("", False)])
def test_switch(monkeypatch, value, off):
    monkeypatch.setenv("JAXNET_COMPILE_CACHE", value)
    assert _cache.compile_cache_switched_off() is off


@pytest.mark.parametrize("command", ["sweep", "reproduce"])
def test_cli_flag(command, capsys):
    from jaxnet import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    assert "--no-compile-cache" in capsys.readouterr().out
