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


TIGHT = "reltol=1e-9 vntol=1e-12 abstol=1e-15"


def ngspice_operating_point(text, tmp_path, options):
    """Node voltages `{name: volts}` of ngspice's `.op` on a netlist (names lower case, as
    ngspice prints them)."""
    deck = re.sub(r"^\.end\s*$", "", text, flags=re.M | re.I).rstrip()
    deck += f"\n.options {options}\n.control\nset numdgt=15\nop\nprint all\n.endc\n.end\n"
    path = os.path.join(tmp_path, "network.cir")
    with open(path, "w") as f:
        f.write(deck)
    out = subprocess.run(["ngspice", "-b", path], capture_output=True, text=True, timeout=120).stdout
    volts = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\s*(?:v\()?([\w.]+?)\)?\s*=\s*(\S+)$", out, re.M)}
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
    volts = ngspice_operating_point(jn.to_spice(net, k, fixed, values), tmp_path, TIGHT)
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
        np.testing.assert_array_equal(k2, k)
        np.testing.assert_array_equal(fixed2, fixed)
        np.testing.assert_array_equal(values2, values)
        np.testing.assert_allclose(jn.solve(net2, k2, fixed2, values2), jn.solve(net, k, fixed, values), atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_conductances_read_back_bit_exact_on_multigraphs(seed):
    # A float r with 1/r == k does not always exist (about 1 k in 7 of U[0.1, 10]); to_spice
    # then writes 1/k to 17+ digits and from_spice rounds the decimal's reciprocal once.
    net = jn.random_graph(jax.random.key(seed), 6, 14, parallel_edges=True)
    rng = np.random.default_rng(seed)
    fixed, values = np.array([0, 5]), np.array([1.0, 0.0])
    for k in (rng.uniform(0.1, 10.0, net.n_edges), 10 ** rng.uniform(-12, 12, net.n_edges),
              np.array([1e-300, 1e300, 5e-324, 1.7e308, 0.1, 1 / 3, 3.0, 1e-3, 2e-3, 7.0, 0.7, 1.1, 1.5, 9.9])):
        for elements in (None, jn.Elements.from_kinds(["diode" if e % 2 else "resistor" for e in range(14)])):
            case = net if elements is None else net.with_elements(elements)
            text = jn.to_spice(case, k, fixed, values)
            back = jn.from_spice(text)
            np.testing.assert_array_equal(back.conductances, k)  # to the bit
            np.testing.assert_array_equal(np.asarray(back.net.senders), np.asarray(net.senders))
            np.testing.assert_array_equal(np.asarray(back.net.receivers), np.asarray(net.receivers))
            assert jn.to_spice(*back) == text


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
    with pytest.raises(ValueError, match="exactly one end on ground 0"):
        jn.from_spice("t\nR1 a b 1\nV1 a b 1\n.end\n")
    with pytest.raises(ValueError, match="SPICE needs a finite resistance"):
        jn.to_spice(jn.Network.from_edges([[0, 1]]), np.array([0.0]), [0], [1.0])


# Netlists as people write them, each with ngspice-39's operating point at the tight options
# (`reltol=1e-9 vntol=1e-12 abstol=1e-15`, `numdgt=15`): checked against these numbers always,
# and against a live ngspice where it is installed.
WRITTEN = {
    "bridge, resistors to ground": ("""resistor bridge
V1 1 0 10
R1 1 2 2k
R2 1 3 1k
R3 2 0 1k
R4 3 0 2k
R5 3 2 2k
.end
""", {"2": 4.0, "3": 6.0}),
    "parallel resistors": ("""parallel resistors
Vs a 0 3
R1 a b 1k
R2 b g 2k
R3 b g 2k
Vg g 0 0
.end
""", {"b": 1.5}),
    "antiparallel diodes": ("""antiparallel diodes
V1 in 0 1
R1 in a 1k
D1 a 0 DX
D2 0 a DX
.model DX D(IS=1e-14 N=1 RS=1)
.end
""", {"a": 0.6297867586538155}),
    "continuation lines, model without parentheses": ("""continuation lines and a model card without parentheses
* a comment
V1 in 0 DC 5
R1 in a
+ 1k ; the value on the next line
D1 a 0 DMOD
.model DMOD D IS=5e-9
+ RS=0.8 n=2
.op
.end
""", {"a": 0.7101813117814078}),
    "zener in breakdown": ("""zener
V1 in 0 12
R1 in k 1k
D1 0 k DZ
.model DZ D(IS=1e-14 N=1 RS=1 BV=5.1 IBV=1m)
.end
""", {"k": 5.156589051092301}),
    "area=10": ("""area factor
V1 in 0 5
R1 in a 1k
D1 a 0 D1N area=10
.model D1N D(IS=5.84n N=1.94 RS=0.7017)
.end
""", {"a": 0.5642066387733868}),
    ".temp 100": ("""temperature
V1 in 0 5
R1 in a 1k
D1 a 0 D1N
.model D1N D(IS=5.84n N=1.94 RS=0.7017)
.temp 100
.end
""", {"a": 0.556942757798866}),
    "option temp in a .control block": ("""temperature from the control block
V1 in 0 5
R1 in a 1k
D1 a 0 D1N
.model D1N D(IS=5.84n N=1.94 RS=0.7017)
.control
option temp=100
set numdgt=15
op
print all
.endc
.end
""", {"a": 0.556942757798866}),
    "temperature set alike in three places": ("""temperature set alike by .temp, .options and the control block
V1 in 0 5
R1 in a 1k
D1 a 0 D1N
.model D1N D(IS=5.84n N=1.94 RS=0.7017)
.options temp=100 gmin=1e-12
.temp 100.0
.control
option temp=1e2
op
.endc
.end
""", {"a": 0.556942757798866}),
    "resistor m=, w=, l=": ("""resistor instance parameters
V1 in 0 5
R1 in a 1k w=1u l=2u
R2 a 0 1k m=2
R3 a 0 4k
.end
""", {"a": 1.538461538461538}),
    "names in any case": ("""names in any case: SPICE folds them (ngspice prints v(mid))
V1 IN Gnd DC 12V
r1 in Mid 4.7K
R2 MID gnd 2.2k
.end
""", {"MID": 12 * 2.2 / 6.9, "Mid": 12 * 2.2 / 6.9, "in": 12.0}),
    "save all in a .control block": ("""output commands in a control block
V1 a 0 1
R1 a b 1k
R2 b 0 3k
.control
save all
op
let vb = v(b)
echo done
print all
.endc
.end
""", {"b": 0.75}),
    "resistance as r=": ("""the resistance given as r=, R = and resistance=
V1 a 0 1
R1 a b R=1k
R2 b 0 r = 2k
R3 b 0 resistance=2k
R4 b 0 R=4k m=2
.end
""", {"b": 0.4}),
    "every honoured diode parameter": ("""honoured diode parameters, all at once
.options temp=60 tnom=20
Vp top 0 dc 9 ac 1
Vn 0 bot 3
R1 top a 2.2k m=2
Da a 0 DLIB area=3
Dz bot a DZEN m=2
R2 a bot 10k
.model DLIB D(IS=1e-12 N=1.3 RS=2 EG=0.69 XTI=2 TNOM=35 CJO=2p M=0.33 VJ=0.7 FC=0.5 TT=5n KF=0 AF=1)
.model DZEN D(IS=2e-14 N=1.1 RS=5 BV=3.3 IBV=5m NBV=1.5 AREA=2)
.end
""", {"a": 0.2975539719948981, "bot": -3.0}),
}


@pytest.mark.parametrize("case", list(WRITTEN))
def test_written_netlists_give_ngspices_operating_point(case, tmp_path):
    text, expected = WRITTEN[case]
    circuit = jn.from_spice(text)
    v = np.asarray(jn.solve(*circuit))
    for name, volts in expected.items():  # looked up as SPICE does: any case
        assert abs(v[circuit.nodes[name]] - volts) < 1e-6, (name, v[circuit.nodes[name]], volts)
    if shutil.which("ngspice") is None:
        pytest.skip("ngspice is not installed (`apt-get install -y ngspice`): checked against its stored values only")
    theirs = ngspice_operating_point(text, tmp_path, TIGHT)
    for name, i in circuit.nodes.items():  # names as ngspice prints them (ground 0 is not printed)
        assert name == "0" or name in theirs, (name, theirs)
        assert abs(v[i] - theirs.get(name, 0.0)) < 1e-6, (name, v[i], theirs)


def test_to_spice_control_block_is_read_back_and_run_by_ngspice(tmp_path):
    net, k, fixed, values = random_case(4, ["resistor", "diode"])
    net = net.with_elements(jn.Elements.from_kinds(np.asarray(net.elements.kind), breakdown_voltage=0.3))
    text = jn.to_spice(net, k, fixed, values, control=["set numdgt=15", "op", "print all"])
    assert ".control\nset numdgt=15\nop\nprint all\n.endc\n.end" in text
    back = jn.from_spice(text)
    np.testing.assert_array_equal(np.asarray(back.net.edges), np.asarray(net.edges))
    np.testing.assert_array_equal(back.conductances, k)
    np.testing.assert_array_equal(back.net.elements.kind, net.elements.kind)
    diode = np.asarray(net.elements.kind) == jn.KINDS.index("diode")
    for field in ("saturation_current", "emission_voltage", "breakdown_voltage", "breakdown_emission", "leak"):
        np.testing.assert_allclose(np.asarray(getattr(back.net.elements, field))[diode],
                                   np.asarray(getattr(net.elements, field))[diode], rtol=1e-15)
    assert back.nodes == {f"n{i}": i for i in range(net.n_nodes)}
    if shutil.which("ngspice") is None:
        pytest.skip("ngspice is not installed (`apt-get install -y ngspice`)")
    theirs = ngspice_operating_point(text, tmp_path, "reltol=1e-6 vntol=1e-9")
    ours = np.asarray(jn.solve(net, k, fixed, values))
    np.testing.assert_allclose([theirs[f"n{i}"] for i in range(net.n_nodes)], ours, atol=1e-6)


def test_written_netlists_read_back_through_to_spice():
    for text, _ in WRITTEN.values():
        circuit = jn.from_spice(text)
        again = jn.from_spice(jn.to_spice(*circuit))
        np.testing.assert_array_equal(np.asarray(again.net.edges), np.asarray(circuit.net.edges))
        np.testing.assert_array_equal(again.conductances, circuit.conductances)
        np.testing.assert_array_equal(again.fixed_nodes, circuit.fixed_nodes)
        np.testing.assert_array_equal(again.fixed_values, circuit.fixed_values)
        if circuit.net.elements is not None:
            for field in ("saturation_current", "emission_voltage", "breakdown_voltage", "breakdown_emission"):
                np.testing.assert_allclose(getattr(again.net.elements, field), getattr(circuit.net.elements, field),
                                           rtol=1e-15)


def test_node_names_are_looked_up_as_spice_folds_them():
    circuit = jn.from_spice("t\nV1 IN Gnd DC 12V\nr1 in Mid 4.7K\nR2 mid GND 2.2k\n.end\n")
    assert circuit.nodes == {"in": 0, "mid": 1, "0": 2}  # lower case, ground 0, as ngspice prints them
    assert circuit.nodes["MID"] == circuit.nodes["Mid"] == circuit.nodes.get("mid") == 1
    assert circuit.nodes["gnd"] == circuit.nodes["Gnd"] == circuit.nodes["0"] == 2
    assert "In" in circuit.nodes and "out" not in circuit.nodes and circuit.nodes.get("out") is None
    with pytest.raises(KeyError):
        circuit.nodes["out"]
    assert list(circuit.fixed_nodes) == [0, 2]
    only_sources = jn.from_spice("t\nV1 a 0 1\nR1 a B 1k\nR2 b c 1k\nV2 C 0 0\n.end\n")
    assert only_sources.nodes == {"a": 0, "b": 1, "c": 2} and "0" not in only_sources.nodes


SOURCE = "t\nV1 in 0 5\nR1 in a 1k\n"
REFUSED = [
    (SOURCE + "D1 a 0 1N4148\n.model 1N4148 D(Is=2.52n Rs=.568 N=1.752 Cjo=4p M=.4 tt=20n Iave=200m Vpk=75\n"
     "+ Ikf=0.1 Isr=1n Nr=2)\n.end\n", r"\.model 1N4148.*diode parameters IKF, ISR, NR "),
    (SOURCE + "R3 a 0 4k layer1\n", r"'R3 a 0 4k layer1'.*'layer1'"),
    (SOURCE + "R2 a 0 1k tc1=0.01\n", r"'R2 a 0 1k tc1=0.01'.*tc1="),
    (SOURCE + "D1 a 0 DX temp=50\n.model DX D(RS=1)\n", r"'D1 a 0 DX temp=50'.*temp="),
    (SOURCE + "D1 a 0 DX 3\n.model DX D(RS=1)\n", r"'3' after a diode's model"),
    (SOURCE + "D1 a 0 DX\n.model DX D(IS=1e-14)\n", r"RS > 0"),
    (SOURCE + "D1 a 0 DX\n.model DX D(RS=1 LEVEL=3)\n", r"level-1 diode only"),
    (SOURCE + "R2 a 0 1k\n.options rshunt=1e9\n", r"option 'rshunt'"),
    (SOURCE + "R2 a 0 1k\n.control\nalter R2 2k\nop\n.endc\n", r"'alter R2 2k'.*'alter'"),
    (SOURCE + "R2 a 0 1k\n.control\nset temp=100\nop\n.endc\n", r"set temp"),
    (SOURCE + "R2 a 0 1k\n.control\nsave all\nreset\nop\n.endc\n", r"'reset'.*control command 'reset'"),
    (SOURCE + "R2 a 0 1k\n.control\nop\noption temp=100\nop\n.endc\n", r"second operating point"),
    (SOURCE + "R2 a 0 1k\n.control\nop\n", r"no \.endc"),
    (SOURCE + "R2 a 0 1k\n.tran 1n 1u\n", r"\.tran card"),
    (SOURCE + "R2 a 0 1k\n.temp 27 100\n", r"one temperature"),
    (SOURCE + "R2 a 0 1k\nC1 a 0 1u\n", r"'C1 a 0 1u'.*resistors \(R\), diodes \(D\)"),
    (SOURCE + "R2 a b 1k\nV2 b a 1\n", r"'V2 b a 1'.*exactly one end on ground"),
    (SOURCE + "R2 a 0 1k\nV2 a 0 PULSE(0 1 1n)\n", r"cannot read 'pulse'"),
    (SOURCE + "R2 a 0 1k\nV2 in 0 2\n", r"'V2 in 0 2'.*node in is already held by 'V1 in 0 5'"),
    (SOURCE + "R2 a 0 1k\nV2 x 0 2\n", r"'V2 x 0 2'.*no resistor or diode touches node x"),
    (SOURCE + "R2 b c 1k\nV2 b 0 2\n", r"node b has no path of resistors and diodes to node in"),
    (SOURCE + "R2 a A 1k\n", r"both ends of R2 are on node a"),
    (SOURCE + "R2 0 GND 1k\n", r"both ends of R2 are on node 0"),
    ("t\n+ R1 a 0 1\n", r"continues nothing"),
    # a model defined twice: ngspice-39 keeps the first card silently
    (SOURCE + "D1 a 0 DX\n.model DX D(IS=1e-14 RS=2)\n.model dx D(IS=1e-12 RS=2)\n",
     r"'\.model dx D\(IS=1e-12 RS=2\)' redefines model dx of SPICE line '\.model DX D\(IS=1e-14 RS=2\)'"),
    (SOURCE + "D1 a 0 DX\n.model DX D(IS=1e-14 RS=2)\n.model DX NPN(BF=100)\n", r"redefines model DX"),
    # a setting given twice with different values: ngspice's precedence depends on the cards'
    # order and kind (.temp over .options temp= in either order; a later .options over an
    # earlier; a control block's option over a .temp card after it)
    (SOURCE + "R2 a 0 1k\n.temp 100\n.options temp=50\n",
     r"temp is set to different values in SPICE lines '\.temp 100' and '\.options temp=50'"),
    (SOURCE + "R2 a 0 1k\n.options temp=50\n.temp 100\n", r"'\.options temp=50' and '\.temp 100'"),
    (SOURCE + "R2 a 0 1k\n.temp 50\n.temp 100\n", r"temp is set to different values .*'\.temp 50' and '\.temp 100'"),
    (SOURCE + "R2 a 0 1k\n.control\noption temp=50\nop\n.endc\n.temp 100\n",
     r"temp is set to different values in SPICE lines 'option temp=50' and '\.temp 100'"),
    (SOURCE + "R2 a 0 1k\n.options temp=50 temp=60\n", r"temp is set to different values twice in SPICE line"),
    (SOURCE + "R2 a 0 1k\n.options tnom=40\n.control\noption tnom=30\nop\n.endc\n",
     r"tnom is set to different values in SPICE lines '\.options tnom=40' and 'option tnom=30'"),
    (SOURCE + "R2 a 0 1k\n.options gmin=1e-9\n.opt gmin=1e-10\n", r"gmin is set to different values"),
    # m=0 is no resistor (ngspice: open), m < 0 a negative one (ngspice: singular matrix)
    (SOURCE + "R2 a 0 1k m=0\n", r"'R2 a 0 1k m=0': m=0 makes no resistor .*m > 0"),
    (SOURCE + "R2 a 0 1k m=-1\n", r"'R2 a 0 1k m=-1': m=-1 makes no resistor"),
    (SOURCE + "R2 a 0 1k r=2k\n", r"'R2 a 0 1k r=2k': the resistance is given twice \(1k, r=\)"),
    (SOURCE + "R2 a 0 m=2\n", r"'R2 a 0 m=2': the resistor has no value \(R name a b value, or r=value\)"),
    # two elements of one name: ngspice stops ("device already exists")
    (SOURCE + "R1 a 0 1k\n", r"'R1 a 0 1k': element R1 already exists \(SPICE line 'R1 in a 1k'"),
    (SOURCE + "r1 a 0 1k\n", r"element r1 already exists .*case-insensitive"),
    (SOURCE + "R2 a b 1k\nV1 b 0 2\n", r"'V1 b 0 2': element V1 already exists"),
]


@pytest.mark.parametrize("text, match", REFUSED, ids=[m for _, m in REFUSED])
def test_from_spice_refuses_what_it_does_not_honour_naming_it(text, match):
    with pytest.raises(ValueError, match=match):
        jn.from_spice(text)
