"""Spreading a batch of network instances over devices with JAX's own sharding."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def shard_instances(tree, devices=None):
    """Place the leading (instance) axis of every array in `tree` across devices.

    Builds a 1-D mesh named ``"instances"`` over `devices` (default: all of `jax.devices()`)
    and `device_put`s each array with its leading axis split over it. A `jit(vmap(train))`
    called on the result runs each device's share of the instances on that device. Instances
    are independent, but the devices are not: XLA inserts an all-reduce (a scalar per device)
    wherever a vmapped loop or branch asks whether *any* instance needs it (CG's and Newton's
    `while_loop`s, the test for the dense fallback), so each device waits for the others at
    every iteration of those loops; no instance data moves between devices. Nothing in
    jaxnet's programs raises or calls back to the host, so one failed instance cannot strand
    another device (check the result with `jn.check`). On a CPU-only machine, expose the
    cores as devices first, before JAX starts:
    ``XLA_FLAGS=--xla_force_host_platform_device_count=2``. Under jaxlib 0.10 the CPU devices
    share one thread pool that jaxlib's batched LAPACK kernels can block; jaxnet then runs its
    batched factorizations and triangular solves as a loop over small groups of each device's
    instances (`jaxnet/_lapack.py`), without which these programs hang.

    **Arguments:** `tree` a pytree of arrays, each with leading axis `B` divisible by the
    number of devices; `devices` optional list of devices.

    **Returns:** the same pytree, sharded.

    ```python
    k0, keys = jn.shard_instances((jnp.ones((1024, net.n_edges)), jax.random.split(key, 1024)))
    result = jax.jit(jax.vmap(lambda k, key: jn.train(net, task, rule, k, key=key)))(k0, keys)
    ```
    """
    devices = jax.devices() if devices is None else list(devices)
    leaves = jax.tree.leaves(tree)
    for leaf in leaves:
        if np.ndim(leaf) == 0 or np.shape(leaf)[0] % len(devices):
            raise ValueError(
                f"every array needs a leading instance axis divisible by the {len(devices)} devices; "
                f"got shape {np.shape(leaf)}."
            )
    mesh = Mesh(np.array(devices), ("instances",))
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("instances")))
