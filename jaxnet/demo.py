"""The main demo: `python -m jaxnet.demo` (what `make demo` runs)."""

import jax.numpy as jnp

import jaxnet as jn


def main() -> None:
    net = jn.square_lattice(4, 4)
    k = jnp.linspace(0.5, 2.0, net.n_edges)
    fixed = jnp.array([0, 15])
    V = jn.solve(net, k, fixed, jnp.array([1.0, 0.0]))
    print(f"4x4 square lattice: {net.n_nodes} nodes, {net.n_edges} edges; node 0 at 1 V, node 15 grounded")
    print("node voltages (V):\n", jnp.round(V.reshape(4, 4), 4))
    print("edge currents (A):", jnp.round(jn.edge_currents(net, k, V), 4))
    print(f"dissipated power: {float(jn.power(net, k, V)):.6f} W")
    print("source currents (A):", jn.source_currents(net, k, V, fixed))


if __name__ == "__main__":
    main()
