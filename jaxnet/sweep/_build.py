"""Building one run of a sweep from its grid point: network, task, rule, solver, initial
conductances and keys. The engine (vmapped over a chunk) and `rebuild_run` (one run, by hand)
both build from here, so they cannot disagree."""

from __future__ import annotations

import jax
import optax

from .. import rules as rules_module
from .._generators import LAB_TERMINALS, disordered_network, lab_network, random_graph, square_lattice, triangular_lattice
from .._network import Network
from .._solver import Solver
from .._tasks import allostery_task, iris_task, regression_task
from ._config import SCHEMA, ConfigError

#: Grid keys that change the compiled program (a group of its own), by column name.
STATIC = tuple(
    (section if key == "kind" else key)
    for section, keys in SCHEMA.items() for key, spec in keys.items() if spec.grid and spec.static
)
#: Grid keys that are traced (vmapped inside one program).
TRACED = tuple(
    key for section, keys in SCHEMA.items() for key, spec in keys.items() if spec.grid and not spec.static
)


def make_network(point: dict, key) -> Network:
    """The network of a grid point for a network key (positions dropped: not needed to train)."""
    kind = point["network"]
    if kind == "disordered":
        net = disordered_network(key, point["n_nodes"], point["coordination"])
    elif kind == "square":
        net = square_lattice(point["rows"], point["cols"])
    elif kind == "triangular":
        net = triangular_lattice(point["rows"], point["cols"])
    elif kind == "lab":
        return lab_network()
    else:
        net = random_graph(key, point["n_nodes"], point["n_edges"])
    return Network(net.senders, net.receivers, net.n_nodes)


def make_task(point: dict, key, net: Network):
    """The task of a grid point on `net` for a task key."""
    kind = point["task"]
    if kind == "regression":
        return regression_task(key, net, n_train=point["n_train"], n_test=point["n_test"],
                               random_matrix=point["random_matrix"])
    if kind == "allostery":
        return allostery_task(key, net, n_outputs=point["n_outputs"])
    bias = () if point["bias"] == "none" else (float(point["bias"]),)
    terminals = None
    if point["network"] == "lab":
        t = LAB_TERMINALS
        terminals = (t["features"] + (t["bias"] if bias else ()), t["output"], t["ground"])
    return iris_task(key, net, n_train=point["n_train"], encoding=point["encoding"], readout=point["readout"],
                     bias=bias, terminals=terminals)


def make_rule(point: dict, hyper: dict, desync: bool = True):
    """The rule of a grid point, its traced hyperparameters taken from `hyper` (arrays).

    Wrapped in `desync` with the traced `p` when `desync` (with `p = 1` that is exactly the
    synchronous rule, so a `p` grid stays in one compiled program); a group whose points all
    have `p = 1` skips the wrapper and its per-step mask draws. Gradient descent's learning rate goes through
    `optax.inject_hyperparams`, so it is traced too.
    """
    kind = point["rule"]
    if kind == "coupled_learning":
        rule = rules_module.coupled_learning(hyper["alpha"], hyper["eta"], hyper["k_min"], hyper["k_max"])
    elif kind == "equilibrium_propagation":
        rule = rules_module.equilibrium_propagation(hyper["alpha"], hyper["beta"], point["centered"], hyper["k_min"],
                                                    hyper["k_max"])
    elif kind == "discrete":
        rule = rules_module.discrete(
            hyper["eta"], point["n_states"], hyper["k_min"], hyper["k_max"], spacing=point["spacing"],
            threshold=hyper["threshold"], offset_std=hyper["offset_std"], noise_std=hyper["noise_std"])
    else:
        optimizer = optax.inject_hyperparams({"sgd": optax.sgd, "adam": optax.adam}[point["optimizer"]])
        rule = rules_module.gradient_descent(optimizer(learning_rate=hyper["learning_rate"]), hyper["k_min"], hyper["k_max"])
    return rules_module.desync(rule, hyper["p"]) if desync else rule


def solver_of(point: dict) -> Solver:
    """The `jn.Solver` a config point asks for (keys method, rtol, atol, max_steps)."""
    auto = lambda v: None if v == "auto" else v  # noqa: E731
    return Solver(point["method"], rtol=auto(point["rtol"]), atol=float(point["atol"]),
                  max_steps=auto(point["max_steps"]))


def train_options(point: dict) -> dict:
    """The keyword arguments of `jn.train` a config point fixes, `steps` and `log_every` aside
    (a group's chunks differ in them under clock = "edge_updates")."""
    return dict(method=solver_of(point), batch_size=None if point["batch_size"] == "full" else point["batch_size"],
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
