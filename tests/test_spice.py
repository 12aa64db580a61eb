"""SPICE netlists: ngspice's operating point against `jn.solve`, and netlists read back."""

import os
import re
import shutil
import subprocess

import jax
import numpy as np
import pytest

import jaxnet as jn

pytestmark = pytest.mark.usefixtures("x64")

needs_ngspice = pytest.mark.skipif(
    shutil.which("ngspice") is None,
    reason="ngspice is not installed: `apt-get install -y ngspice` (Debian/Ubuntu) to run these tests",
)


def ngspice_operating_point(text, tmp_path, options):
    """Node voltages `{name: volts}` of ngspice's `.op` on a jaxnet netlist."""
    deck = text.replace(".end\n", f".options {options}\n.control\nset numdgt=15\nop\nprint all\n.endc\n.end\n")
    path = os.path.join(tmp_path, "network.cir")
    with open(path, "w") as f:
        f.write(deck)
    out = subprocess.run(["ngspice", "-b", path], capture_output=True, text=True, timeout=120).stdout
    volts = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\s*(?:v\()?(n\d+)\)?\s*=\s*(\S+)", out, re.M)}
    assert volts, f"ngspice printed no node voltages:\n{out[-2000:]}"
    return volts


def random_case(seed, kinds=None):
    """A random 20-node network; with `kinds`, every node keeps at least one resistor edge."""
    rng = np.random.default_rng(seed)
    net = jn.random_graph(jax.random.key(seed), 20, 40)
    k = rng.uniform(0.1, 10.0, net.n_edges)
    fixed, values = np.array([0, 5, 7]), np.array([1.0, -0.5, 0.0])
    if kinds is not None:
        kinds = rng.choice(kinds, net.n_edges)
        edges = np.asarray(net.edges)
        for node in range(net.n_nodes):
            touching = np.flatnonzero((edges == node).any(1))
            if not np.any(kinds[touching] == "resistor"):
                # A node fed only through reverse-biased diodes sits where picoamperes of
                # leakage balance, and there SPICE's diode leaves Shockley's law on purpose
                # (a cubic law below -3 nV_T); keep every node on a resistor.
                kinds[touching[0]] = "resistor"
        net = net.with_elements(jn.Elements.from_kinds(kinds, threshold=0.2))
    return net, k, fixed, values


@needs_ngspice
@pytest.mark.parametrize("seed", [0, 1])
def test_ngspice_agrees_on_a_random_resistor_network(seed, tmp_path):
    net, k, fixed, values = random_case(seed)
    volts = ngspice_operating_point(jn.to_spice(net, k, fixed, values), tmp_path, "reltol=1e-9 vntol=1e-12 abstol=1e-15")
    ours = np.asarray(jn.solve(net, k, fixed, values))
    theirs = np.array([volts[f"n{i}"] for i in range(net.n_nodes)])
    np.testing.assert_allclose(theirs, ours, rtol=1e-8, atol=1e-8 * np.abs(values).max())


@needs_ngspice
@pytest.mark.parametrize("kinds", [["resistor", "diode"], list(jn.KINDS)], ids=["diodes", "every-kind"])
def test_ngspice_agrees_on_a_nonlinear_network(kinds, tmp_path):
    net, k, fixed, values = random_case(2, kinds)
    # (ngspice's Newton fails on diode networks at reltol 1e-9; 1e-6 with its quadratic
    # convergence leaves far less than the 1e-6 V checked here)
    volts = ngspice_operating_point(jn.to_spice(net, k, fixed, values), tmp_path, "reltol=1e-6 vntol=1e-9")
    ours = np.asarray(jn.solve(net, k, fixed, values))
    theirs = np.array([volts[f"n{i}"] for i in range(net.n_nodes)])
    np.testing.assert_allclose(theirs, ours, atol=1e-6)


def test_netlists_read_back_exactly():
    for kinds in (None, ["resistor", "diode"]):
        net, k, fixed, values = random_case(3, kinds)
        net2, k2, fixed2, values2 = jn.from_spice(jn.to_spice(net, k, fixed, values))
        np.testing.assert_array_equal(np.asarray(net2.edges), np.asarray(net.edges))
        np.testing.assert_allclose(k2, k, rtol=1e-15)
        np.testing.assert_array_equal(fixed2, fixed)
        np.testing.assert_array_equal(values2, values)
        np.testing.assert_allclose(jn.solve(net2, k2, fixed2, values2), jn.solve(net, k, fixed, values), atol=1e-12)


def test_from_spice_reads_hand_written_netlists_and_names_what_it_cannot():
    text = """a divider
    Rtop in mid 1k
    Rbot mid out 3k ; a comment
    Rload out gnd2 2meg
    Vin in 0 DC 5
    Vgnd gnd2 0 0
    .end
    """
    net, k, fixed, values = jn.from_spice(text)
    np.testing.assert_allclose(k, [1e-3, 1 / 3e3, 1 / 2e6])
    v = np.asarray(jn.solve(net, k, fixed, values))
    assert abs(v[1] - 5 * (3e3 + 2e6) / (4e3 + 2e6)) < 1e-9
    with pytest.raises(ValueError, match="reads resistors .* only"):
        jn.from_spice("t\nC1 a b 1u\nV1 a 0 1\n.end\n")
    with pytest.raises(ValueError, match="must return to ground 0"):
        jn.from_spice("t\nR1 a b 1\nV1 a b 1\n.end\n")
    with pytest.raises(ValueError, match="SPICE needs a finite resistance"):
        jn.to_spice(jn.Network.from_edges([[0, 1]]), np.array([0.0]), [0], [1.0])
