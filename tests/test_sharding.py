import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest

import jaxnet as jn


def test_shard_instances_refuses_indivisible_batch():
    n = len(jax.devices())
    with pytest.raises(ValueError, match="divisible"):
        jn.shard_instances(jnp.ones((n + 1, 3)) if n > 1 else jnp.ones(()))


def test_sharded_training_equals_unsharded_on_two_cpu_devices():
    """Two host devices in a fresh process: sharded vmap(train) gives the unsharded result."""
    script = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, numpy as np
        import jaxnet as jn
        assert len(jax.devices()) == 2
        net = jn.square_lattice(5, 5)
        task = jn.regression_task(jax.random.key(0), net)
        rule = jn.rules.desync(jn.rules.coupled_learning(alpha=0.1, eta=0.1), 0.5)
        k0 = jnp.ones((4, net.n_edges)); keys = jax.random.split(jax.random.key(1), 4)
        run = jax.jit(jax.vmap(lambda k, key: jn.train(net, task, rule, k, key=key, steps=20).conductances))
        sk0, skeys = jn.shard_instances((k0, keys))
        """
    ) + SHARDED_EQUALS_UNSHARDED
    _runs_on_two_devices(script)


def test_sharded_dense_training_on_two_cpu_devices_runs_without_communication():
    """Batched Cholesky on two CPU devices: jaxlib 0.10 hung here (issue 19; each device's
    batched LAPACK call blocked a thread of the shared pool waiting for chunks no thread was
    left to run). 16 W64 instances per device are over jaxlib's threshold for splitting a batch;
    jaxnet's loop (`_lapack`) keeps each call under it. The compiled program communicates only
    through all-reduces (a vmapped loop's "does any instance go on"), and the sharded result
    is the unsharded one."""
    script = textwrap.dedent(
        """
        import re
        import jax, jax.numpy as jnp, numpy as np
        import jaxnet as jn
        assert len(jax.devices()) == 2
        net = jn.square_lattice(8, 8)
        task = jn.regression_task(jax.random.key(0), net, n_train=20, n_test=0)
        rule = jn.rules.coupled_learning(alpha=0.05, eta=1e-3)
        k0 = jnp.ones((32, net.n_edges)); keys = jax.random.split(jax.random.key(1), 32)
        run = jax.jit(jax.vmap(lambda k, key: jn.train(net, task, rule, k, key=key, steps=3, solver=jn.Dense()).conductances))
        sk0, skeys = jn.shard_instances((k0, keys))
        hlo = run.lower(sk0, skeys).compile().as_text()
        moves = re.findall(r"(all-gather|all-to-all|collective-permute|reduce-scatter)(-start)?\\(", hlo)
        assert not moves, moves
        assert re.search(r"all-reduce(-start)?\\(", hlo)
        """
    ) + SHARDED_EQUALS_UNSHARDED
    _runs_on_two_devices(script)


#: The end of each script: the sharded run on both devices equals the unsharded one.
SHARDED_EQUALS_UNSHARDED = textwrap.dedent(
    """
    sharded = run(sk0, skeys)
    assert len(sharded.sharding.device_set) == 2, sharded.sharding
    np.testing.assert_allclose(np.asarray(sharded), np.asarray(run(k0, keys)), rtol=1e-6)
    print("ok")
    """
)


def _runs_on_two_devices(script: str) -> None:
    """Run `script` in a fresh process with two CPU host devices; it must end printing "ok"."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
