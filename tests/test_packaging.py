"""The package as users get it: a wheel and an sdist build, and the wheel works on its own."""

import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SMOKE = """
import os, sys, jax, jax.numpy as jnp
import jaxnet as jn
assert os.path.realpath(jn.__file__).startswith(os.path.realpath(sys.prefix)), jn.__file__
net = jn.Network.from_edges([[0, 1], [1, 2]])
V = jn.solve(net, jnp.array([1.0, 1.0]), jnp.array([0, 2]), jnp.array([1.0, 0.0]))
assert abs(float(V[1]) - 0.5) < 1e-6, V
x, y = jn.load_iris()
assert x.shape == (150, 4), x.shape
config = jn.load_config(os.path.join(os.path.dirname(jn.__file__), "configs", "reproduce", "claim1.toml"))
print("ok", jn.__version__, len(config.points()))
"""


def test_wheel_and_sdist_build_and_the_wheel_works_in_a_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), ROOT], check=True, capture_output=True)
    wheel = next(dist.glob("jaxnet-*.whl"))
    assert next(dist.glob("jaxnet-*.tar.gz"))
    names = zipfile.ZipFile(wheel).namelist()
    for data in ("jaxnet/data/iris.csv", "jaxnet/configs/demo.toml", "jaxnet/configs/reproduce/claim2.toml"):
        assert data in names, f"{data} missing from the wheel"
    # A fresh venv holding only the wheel; its dependencies come from this environment's
    # site-packages through PYTHONPATH, which does not run .pth files, so the editable
    # install of the source tree stays out of sight.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, str(wheel)],
                   check=True, capture_output=True)
    env = dict(os.environ, PYTHONPATH=sysconfig.get_paths()["purelib"], JAX_PLATFORMS="cpu")
    out = subprocess.run([str(python), "-c", SMOKE], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    assert out.stdout.startswith(f"ok {version} ")
