"""SPICE netlists into jaxnet: `from_spice` and the `SpiceCircuit` it returns.

`from_spice` reads netlists of resistors, diodes and DC voltage sources as people write them
(see its docstring for what it honours, accepts and refuses; the cards themselves are read in
`_spice_cards`), `to_spice`'s among them.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

import numpy as np
from jaxtyping import Float, Int

from ._checks import connected_components
from ._elements import THERMAL_VOLTAGE, Elements
from ._network import Network
from ._spice_cards import _is_ground, _key, _logical_lines, _Reader


class _Circuit(NamedTuple):
    net: Network
    conductances: Float[np.ndarray, " edges"]
    fixed_nodes: Int[np.ndarray, " fixed"]
    fixed_values: Float[np.ndarray, " fixed"]


class _NodeNames(dict):
    """`{SPICE node name: node index}`, looked up as SPICE tells nodes apart: keys are the names
    case folded (ground `0`), and a lookup folds case too and takes `gnd` for `0`, so
    `nodes["MID"]`, `nodes["mid"]` and `nodes["Mid"]` are one node, as ngspice's `v(mid)`."""

    def __getitem__(self, name):
        return super().__getitem__(_key(name) if isinstance(name, str) else name)

    def __contains__(self, name):
        return super().__contains__(_key(name) if isinstance(name, str) else name)

    def get(self, name, default=None):
        return self[name] if name in self else default


class SpiceCircuit(_Circuit):
    """What `from_spice` reads: the 4-tuple `(net, conductances, fixed_nodes, fixed_values)`
    it always returned (`net, k, fixed, values = jn.from_spice(text)` unpacks as before;
    `jn.solve(*circuit)` solves it), with the node names in `nodes`.

    - `net`: the `Network` (with `elements` when the netlist has diodes).
    - `conductances`: `(E,)` each edge's learned parameter (`m/R` for a resistor, a diode's
      series conductance `area m / RS`), S.
    - `fixed_nodes`: int `(F,)` nodes held by the voltage sources (and ground, last, when it
      is a network node).
    - `fixed_values`: `(F,)` their voltages, V.
    - `nodes`: `{SPICE node name: node index}`, so `V[circuit.nodes["out"]]` is SPICE's `V(out)`:
      names in lower case (SPICE folds case; ngspice prints `v(out)`), ground as `"0"`, and
      looked up the SPICE way (`nodes["OUT"]` is `nodes["out"]`; `nodes["gnd"]` is `nodes["0"]`).
    """

    nodes: dict[str, int]

    def __new__(cls, net, conductances, fixed_nodes, fixed_values, nodes):
        circuit = super().__new__(cls, net, conductances, fixed_nodes, fixed_values)
        circuit.nodes = nodes
        return circuit


def from_spice(text: str) -> SpiceCircuit:
    """Read a SPICE netlist of resistors, diodes and DC voltage sources into jaxnet, at the
    operating point ngspice-39 would compute, or refuse it naming what is not honoured.

    **Reads:** the title (first line), comments (`*` lines; `;`, ` $ `, `//` tails), `+`
    continuation lines, numbers with SPICE's suffixes (`f p n u m k meg g t mil`, units after
    them ignored), names in any case, and up to `.end`:

    - `R name a b value [m=] [w=] [l=] [ac=]` (or `r=value`, `resistance=value`, spaces around
      `=` allowed): `m > 0` resistors in parallel (one edge of conductance `m/R`, computed from
      the decimals as written and rounded once, so `to_spice`'s values read back to the bit;
      `m=0`, an open, is refused); `w`, `l`, `ac` do not change a valued resistor's DC
      resistance. Any other token (a model or layer name, `tc1=`, `temp=`) is refused, and so is
      a value given twice (`1k r=2k`).
    - `D name anode cathode model [area=] [m=] [ic=] [pj=]`, with a `.model name D(...)`
      or `.model name D ...` card: `DIODE_HONOURED` parameters are modelled (ngspice's level-1
      equations: area and `m` scale `IS` and `1/RS`, `m` scales `IBV`; `IS` follows `EG`, `XTI`
      from `TNOM` to the circuit's temperature; the thermal voltage is taken there; `BV`, `IBV`
      set the breakdown, at SPICE's knee), `DIODE_ACCEPTED` ones are ignored (no DC effect), any
      other is refused. `RS > 0` is needed (the learned parameter is `area m / RS`).
    - `V name plus minus [DC] value [AC mag [phase]]`: one end on ground (`0` or `gnd`).
    - `.model` (one card per name: a redefined model is refused, naming both cards; ngspice
      keeps the first silently), `.options` (`gmin`, `temp`, `tnom`, `reltol` honoured; solver
      and output settings accepted), `.temp T`, `.op`, `.title`, `.save`, `.print`, `.probe`,
      `.width`. A setting given in several places (`.temp`, `.options`, a control block's
      `option`) must agree: different values are refused, naming both lines, since ngspice's
      precedence depends on their kind and order (`.temp` over `.options temp=` either way, a
      control block's `option` over a later `.temp`).
    - Element names (`R1`, `D2`, `V1`, case-insensitive) once each: a repeated name is refused,
      naming both lines, as ngspice stops ("device already exists").
    - `.control ... .endc`: `option(s)` read as `.options` (before `op`/`run`), output and
      analysis commands (`op`, `run`, `save`, `print`, `set`, `let`, `echo`, `write`, `quit`,
      ...) accepted; `alter`, `altermod`, `reset`, `set temp` and anything else refused.

    SPICE's ground is a network node held at 0 V where a resistor or diode touches it; where
    only sources do (as in `to_spice`'s output) it stays out of the network. Nodes are
    numbered in order of first appearance on resistors and diodes, except that `to_spice`'s names `n{i}` map back to
    `i`. Parallel elements are parallel edges.

    **Returns:** a `SpiceCircuit`: the tuple `(net, conductances, fixed_nodes, fixed_values)`
    (`net, k, fixed, values = jn.from_spice(text)`), with `.nodes` mapping each SPICE node name
    to its node index: names in lower case and ground as `"0"`, as ngspice prints them, looked up
    case-insensitively with `gnd` for `0` (`circuit.nodes["Mid"]` is `circuit.nodes["mid"]`).

    **Raises:** `ValueError` naming the line, the element or node, and what jaxnet does not
    read, for anything that would change the operating point and is not honoured.

    ```python
    circuit = jn.from_spice("divider\\nV1 in 0 10\\nR1 in out 2k\\nR2 out 0 1k\\n.end\\n")
    V = jn.solve(*circuit)
    assert abs(V[circuit.nodes["out"]] - 10 / 3) < 1e-5
    ```
    """
    reader, in_control = _Reader(), False
    for line in _logical_lines(text):
        head = line.split()[0].lower()
        if head == ".control":
            in_control = True
        elif head == ".endc":
            in_control = False
        elif in_control:
            reader.control(line)
        elif head.startswith("."):
            reader.card(line)
        else:
            reader.element(line)
    if in_control:
        raise ValueError("the netlist's .control block has no .endc.")
    if not reader.elements:
        raise ValueError("the netlist has no resistor or diode.")
    if not reader.sources:
        raise ValueError("the netlist has no voltage source: nothing fixes the voltages.")

    # Nodes in order of first appearance; ground only where a resistor or diode touches it.
    spelled: dict[str, str] = {}
    for _, a, b, _ in reader.elements:
        for name in (a, b):
            spelled.setdefault(_key(name), name)
    names = list(spelled)
    numbered = [re.fullmatch(r"n(\d+)", name) for name in names]
    if all(numbered) and sorted(int(m.group(1)) for m in numbered) == list(range(len(names))):  # to_spice's names
        names = sorted(names, key=lambda name: int(name[1:]))
    index = {name: i for i, name in enumerate(names)}

    edges = np.array([(index[_key(a)], index[_key(b)]) for _, a, b, _ in reader.elements])
    labels = connected_components(edges, len(names))
    if labels.max() > 0:
        apart = names[int(np.flatnonzero(labels != labels[0])[0])]
        raise ValueError(f"node {spelled[apart]} has no path of resistors and diodes to node {spelled[names[0]]}: "
                         "jaxnet reads one connected network.")
    fixed: dict[int, tuple[float, str]] = {}  # node: (volts, the source's line)
    for plus, minus, volts, line in reader.sources:
        if _is_ground(plus) == _is_ground(minus):
            raise ValueError(f"SPICE line {line!r}: jaxnet reads voltage sources with exactly one end on ground 0 "
                             "(they hold a node's voltage).")
        held, volts = (plus, volts) if _is_ground(minus) else (minus, -volts)
        if _key(held) not in index:
            raise ValueError(f"SPICE line {line!r}: no resistor or diode touches node {held}.")
        i = index[_key(held)]
        if i in fixed:
            raise ValueError(f"SPICE line {line!r}: node {held} is already held by {fixed[i][1]!r}.")
        fixed[i] = (volts, line)
    if "0" in index:
        fixed[index["0"]] = (0.0, "ground")

    kinds = [kind for kind, *_ in reader.elements]
    rows = [{"k": made} if kind == "resistor" else reader.diode(*made) for kind, _, _, made in reader.elements]
    net = Network.from_edges(edges, len(names))
    if "diode" in kinds:
        unused = {"saturation_current": 1e-12, "emission_voltage": THERMAL_VOLTAGE, "breakdown_voltage": math.inf,
                  "breakdown_emission": THERMAL_VOLTAGE}  # a resistor's, never read
        net = net.with_elements(Elements.from_kinds(
            kinds, leak=reader.options["gmin"], **{f: [row.get(f, x) for row in rows] for f, x in unused.items()}))
    return SpiceCircuit(
        net=net,
        conductances=np.array([row["k"] for row in rows]),
        fixed_nodes=np.array(list(fixed)),
        fixed_values=np.array([volts for volts, _ in fixed.values()]),
        nodes=_NodeNames((name, i) for i, name in enumerate(names)),
    )
