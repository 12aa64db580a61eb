"""What an experimenter measures on a solved state: currents, power, K_eff.

Every observable of a state lives here, each written once on the incidence operator of
`_network` (`edge_drops`, `outflow`): edge drops and currents, node and source currents, the
dissipated power, and the effective conductance among a task's outputs.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from ._checks import check_conductances, check_no_floating, is_concrete
from ._network import Network, edge_drops, outflow
from ._solve import solver_for, unit_rhs
from ._solver import AbstractSolver
from ._system import free_mask, laplacian_apply
from ._tasks import Task

__all__ = ["edge_drops", "edge_currents", "power", "source_currents", "node_currents", "effective_conductance"]


def edge_currents(
    net: Network, conductances: Float[ArrayLike, " edges"], voltages: Float[ArrayLike, "*examples nodes"]
) -> Float[Array, "*examples edges"]:
    """Current through each edge from sender to receiver (amperes): `k_e ΔV_e` for a resistor,
    the element's current (`Elements.current`) on a network with elements.

    **Arguments:** `net`; `conductances` `(E,)` (each element's parameter); `voltages` `(..., N)`.
    **Returns:** `(..., E)`.
    """
    k, drops = jnp.asarray(conductances), edge_drops(net, voltages)
    return k * drops if net.linear else net.elements.current(drops, k)


def power(
    net: Network, conductances: Float[ArrayLike, " edges"], voltages: Float[ArrayLike, "*examples nodes"]
) -> Float[Array, "*examples"]:
    """Total dissipated power `sum_e I_e ΔV_e` (watts); `sum_e k_e ΔV_e²` for resistors.

    **Arguments:** `net`; `conductances` `(E,)`; `voltages` `(..., N)`. **Returns:** `(...)`.
    """
    return jnp.sum(edge_currents(net, conductances, voltages) * edge_drops(net, voltages), axis=-1)


def source_currents(
    net: Network,
    conductances: Float[ArrayLike, " edges"],
    voltages: Float[ArrayLike, "*examples nodes"],
    fixed_nodes: Int[ArrayLike, " fixed"],
) -> Float[Array, "*examples fixed"]:
    """Current each voltage source injects into the network at its fixed node (amperes).

    Positive means current flows from the source into the network. At a solved state these
    sum to zero over the fixed nodes (charge conservation), and the current at every free
    node is zero (Kirchhoff's current law).

    **Arguments:** `net`; `conductances` `(E,)`; `voltages` `(..., N)`; `fixed_nodes` `(F,)`.
    **Returns:** `(..., F)`.
    """
    return node_currents(net, conductances, voltages)[..., jnp.asarray(fixed_nodes)]


def node_currents(
    net: Network, conductances: Float[ArrayLike, " edges"], voltages: Float[ArrayLike, "*examples nodes"]
) -> Float[Array, "*examples nodes"]:
    """Net current leaving each node through its edges, `(L V)_i` (amperes).

    Zero at every free node of a solved state (Kirchhoff's current law); at a fixed node it is
    the current its source injects. **Returns:** `(..., N)`.
    """
    return outflow(net, edge_currents(net, conductances, voltages))


def effective_conductance(
    net: Network, task: Task, conductances: Float[ArrayLike, " edges"], *, solver: AbstractSolver | None = None,
    method=None,
) -> Float[Array, "outputs outputs"]:
    """Effective conductance matrix `K_eff` among the task's outputs, inputs and ground held (siemens).

    `K_eff[i, j]` is the current (amperes) a source at output `i` injects into the network when
    output `j` is held at 1 V and every other output, input and ground node at 0 V, the hidden
    nodes free: the Schur complement `L_OO - L_OH L_HH^-1 L_HO` of the Laplacian onto the
    outputs, with the inputs and ground eliminated as held nodes (their conductances to the
    outputs are in `L_OO`). Symmetric positive definite, to rounding. It depends on the
    conductances and the terminals, not on the examples; it is the inverse of the outputs'
    block of the Green's function the learning states use (`Physics.responses`).

    In coupled learning it weights the output errors: holding the outputs at
    `V_O^F + eta e` (`e = y - V_O^F`) dissipates `power` `eta² e^T K_eff e` more than the free
    state, exactly on a linear network.

    One solve of the shared solver (a column per output) and one Laplacian product;
    differentiable in `conductances`. Linear (resistor) networks only.

    **Arguments:** `net`; `task` (its `inputs`, `outputs`, `ground`); `conductances` `(E,)`
    (siemens); `solver` a linear solver object (None: `jn.Auto()`); `method` its deprecated name.
    **Returns:** `(n_out, n_out)` in the conductances' dtype (NaN if the solve fails).

    **Raises:** `ValueError` for concrete bad input, as `solve` does: a terminal out of range, a
    negative or non-finite conductance, a node left floating.
    """
    if not net.linear:
        raise ValueError("effective_conductance is the Schur complement of the Laplacian of a linear "
                         "(resistor) network, and this network has nonlinear elements.")
    k = jnp.asarray(conductances)
    k = k.astype(jnp.result_type(k, float))
    if k.shape != (net.n_edges,):
        raise ValueError(f"conductances must have shape ({net.n_edges},) (one per edge); got {k.shape}.")
    held = jnp.concatenate([task.inputs, task.ground, task.outputs])
    if is_concrete(k, held, net.senders):  # the checks `solve` makes, on the same helpers
        task.check(net)
        check_conductances(net, k)
        check_no_floating(net, k, held)
    return _schur_complement(net, k, held, task.outputs, solver_for(net, solver, method))


@eqx.filter_jit  # one program per shapes and solver: called eagerly, not op by op
def _schur_complement(net, k, held, outputs, solver):
    free = free_mask(net, held, k.dtype)
    response, _, _ = solver.solve(net, k, free, unit_rhs(net, k, free, outputs))  # NaN if failed
    return laplacian_apply(net, k, response)[outputs]
