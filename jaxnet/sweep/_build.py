"""Building one run of a sweep from its grid point: network, task, rule, solver, initial
conductances and keys. The engine (vmapped over a chunk) and `rebuild_run` (one run, by hand)
both build from here, so they cannot disagree."""

from __future__ import annotations

import jax

from .. import rules as rules_module
from .._network import Network
from .._solver import CG, Auto, CGThenDense, Dense, LinearSolver
from ._config import ConfigError
from ._registry import kind_of, schema


def static_columns() -> tuple[str, ...]:
    """Grid keys that change the compiled program (a group of its own), by column name."""
    return tuple((section if key == "kind" else key)
                 for section, keys in schema().items() for key, spec in keys.items() if spec.grid and spec.static)


def traced_columns() -> tuple[str, ...]:
    """Grid keys that are traced (vmapped inside one program)."""
    return tuple(key for keys in schema().values() for key, spec in keys.items() if spec.grid and not spec.static)


def network_task_columns() -> tuple[str, ...]:
    """The static grid keys that decide a point's networks and tasks (points that share them
    share those)."""
    keys = schema()
    return tuple(c for c in static_columns() if c in ("network", "task") or c in keys["network"] or c in keys["task"])


def make_network(point: dict, key) -> Network:
    """The network of a grid point for a network key (its kind's registered constructor)."""
    return kind_of("network", point["network"]).build(point, key)


def make_task(point: dict, key, net: Network):
    """The task of a grid point on `net` for a task key (its kind's registered constructor)."""
    return kind_of("task", point["task"]).build(point, key, net)


def make_rule(point: dict, hyper: dict, desync: bool = True):
    """The rule of a grid point, its traced hyperparameters taken from `hyper` (arrays), built by
    its kind's registered constructor.

    Wrapped in `desync` with the traced `p` when `desync` (with `p = 1` that is exactly the
    synchronous rule, so a `p` grid stays in one compiled program); a group whose points all
    have `p = 1` skips the wrapper and its per-step mask draws.
    """
    rule = kind_of("rule", point["rule"]).build({**point, **hyper})
    return rules_module.desync(rule, hyper["p"]) if desync else rule


def solver_of(point: dict) -> LinearSolver:
    """The linear solver a config point asks for (keys solver, rtol, atol, max_steps; `train`
    puts it in a `jn.Newton` for a network with elements)."""
    auto = lambda v: None if v == "auto" else v  # noqa: E731
    rtol, atol, max_steps = auto(point["rtol"]), float(point["atol"]), auto(point["max_steps"])
    cg, dense = CG(rtol=rtol, atol=atol, max_steps=max_steps), Dense(rtol=rtol, atol=atol)
    return {"auto": Auto(rtol=rtol, atol=atol, max_steps=max_steps), "dense": dense, "cg": cg,
            "cg_then_dense": CGThenDense(cg, dense)}[point["solver"]]


def train_options(point: dict) -> dict:
    """The keyword arguments of `jn.train` a config point fixes, `steps` and `log_every` aside
    (a group's chunks differ in them under clock = "edge_updates")."""
    return dict(solver=solver_of(point), batch_size=None if point["batch_size"] == "full" else point["batch_size"],
                track_cosine=point["track_cosine"])


def check_x64(points: list[dict]) -> None:
    """float64 points need 64-bit JAX: without it JAX would silently compute in float32."""
    if any(p["dtype"] == "float64" for p in points) and not jax.config.jax_enable_x64:
        raise ConfigError(
            "sweep.dtype = 'float64' needs 64-bit JAX, which is off (JAX would silently use float32): run "
            "under `with jax.enable_x64(True):`, or set JAX_ENABLE_X64=1 (the jaxnet command does it for you).")


def network_keys(seed: int, network_seed: int):
    """The network key and the task key of a network seed, as a `(2,)` key array."""
    return jax.random.split(jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 0), network_seed))


def run_key(seed: int, network_seed: int, init_seed: int):
    """The key of the run (network seed, training seed) of a sweep seeded `seed`."""
    root = jax.random.fold_in(jax.random.key(seed), 1)
    return jax.random.fold_in(jax.random.fold_in(root, network_seed), init_seed)


def run_start(point: dict, rule, hyper: dict, seed: int, network_seed, init_seed, n_edges: int, dtype):
    """`(k0, key)`: the initial conductances and the training key of one run.

    The one derivation both the engine (vmapped, with traced seeds) and `rebuild_run` use:
    the run's key (`run_key`) splits into a key for `k0` and the key `train` gets; `k0` is
    uniform in [k0_low, k0_high], and for the discrete rule the nearest level.
    """
    k0_key, train_key = jax.random.split(run_key(seed, network_seed, init_seed))
    unit = jax.random.uniform(k0_key, (n_edges,), dtype)
    k0 = hyper["k0_low"] + (hyper["k0_high"] - hyper["k0_low"]) * unit
    if point["rule"] == "discrete":
        levels = rule.rule if isinstance(rule, rules_module.Desync) else rule
        k0 = levels.levels.astype(dtype)[levels.state_index(k0)]
    return k0, train_key
