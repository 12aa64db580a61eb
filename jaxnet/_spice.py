"""SPICE netlists out of and into jaxnet: `to_spice` and `from_spice`.

Node `i` of a network is SPICE node `n{i}`; each fixed node is held by a DC voltage source
`V{j} n{i} 0`, against SPICE's ground `0` (which is not a network node). Elements:

- resistor: `R{e} n{s} n{r} {1/k}`;
- diode: `D{e} n{s} n{r} D{e}` (anode the sender) with `.model D{e} D(IS= N= RS=1/k)`, and
  `.options gmin=` the junction leak (SPICE has one `GMIN` for all junctions);
- smooth diode and transistor: a behavioural current source `B{e} n{s} n{r} I=...` with the
  element's current law written out (ngspice's B sources; SPICE3 dialects).

`from_spice` reads back resistor, diode (with `.model` cards of `IS`, `N`, `RS`) and DC voltage
source netlists, such as `to_spice` writes, with the SI suffixes SPICE allows.
"""

from __future__ import annotations

import re

import numpy as np
from jaxtyping import ArrayLike, Float, Int

from ._elements import DIODE, KINDS, RESISTOR, SMOOTH_DIODE, THERMAL_VOLTAGE, Elements
from ._network import Network

_SUFFIX = {"t": 1e12, "g": 1e9, "meg": 1e6, "k": 1e3, "m": 1e-3, "mil": 25.4e-6, "u": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15}


def _g(x: float) -> str:
    return f"{x:.17g}"


def to_spice(
    net: Network,
    conductances: Float[ArrayLike, " edges"],
    fixed_nodes: Int[ArrayLike, " fixed"],
    fixed_values: Float[ArrayLike, " fixed"],
    *,
    title: str = "jaxnet network",
) -> str:
    """A SPICE netlist of the network, its conductances and its sources, ready for `.op`.

    **Arguments:**

    - `net`: the network (with its `elements`, if any).
    - `conductances`: `(E,)` each edge's parameter (a resistor's or a diode's series
      conductance must be > 0: SPICE writes resistances).
    - `fixed_nodes`: int `(F,)` nodes held by voltage sources; `fixed_values` `(F,)` volts.
    - `title`: the netlist's first line.

    **Returns:** the netlist as a string, ending in `.end`; no analysis card, so add yours
    (`.op`, or a `.control` block).

    ```python
    text = jn.to_spice(net, k, jnp.array([0, 8]), jnp.array([1.0, 0.0]))
    ```
    """
    k = np.asarray(conductances, float)
    nodes, values = np.asarray(fixed_nodes).reshape(-1), np.asarray(fixed_values, float).reshape(-1)
    if k.shape != (net.n_edges,):
        raise ValueError(f"conductances must have shape ({net.n_edges},); got {k.shape}.")
    if nodes.shape != values.shape or nodes.size == 0:
        raise ValueError(f"fixed_nodes and fixed_values must be 1-D of one length (>= 1); got {nodes.shape} and {values.shape}.")
    if not np.all(np.isfinite(k)) or not np.all(np.isfinite(values)):
        raise ValueError("conductances and fixed_values must be finite.")
    senders, receivers = np.asarray(net.senders), np.asarray(net.receivers)
    el = None if net.elements is None else {f: np.asarray(getattr(net.elements, f)) for f in net.elements.__dataclass_fields__}
    kinds = np.full(net.n_edges, RESISTOR) if el is None else el["kind"]
    needs_positive = (kinds == RESISTOR) | (kinds == DIODE)
    if np.any(needs_positive & (k <= 0)):
        e = int(np.flatnonzero(needs_positive & (k <= 0))[0])
        raise ValueError(f"edge {e} ({KINDS[kinds[e]]}) has conductance {k[e]}: SPICE needs a finite resistance (k > 0).")
    lines, models = [f"* {title}"], []
    for e in range(net.n_edges):
        a, b = f"n{senders[e]}", f"n{receivers[e]}"
        kind = kinds[e]
        if kind == RESISTOR:
            lines.append(f"R{e} {a} {b} {_g(1 / k[e])}")
        elif kind == DIODE:
            lines.append(f"D{e} {a} {b} DM{e}")
            n = el["emission_voltage"][e] / THERMAL_VOLTAGE
            models.append(f".model DM{e} D(IS={_g(el['saturation_current'][e])} N={_g(n)} RS={_g(1 / k[e])})")
        elif kind == SMOOTH_DIODE:
            v_on, w, g_off = el["threshold"][e], el["width"][e], el["leak"][e]

            def corner(u):
                return f"(({u})+sqrt(({u})*({u})+{_g(w * w)})-{_g(w)})/2"

            lines.append(f"B{e} {a} {b} I={_g(g_off)}*V({a},{b})+{_g(k[e] - g_off)}*({corner(f'V({a},{b})-{_g(v_on)}')}"
                         f"-{corner(_g(-v_on))})")
        else:
            over, gain, leak = max(k[e] - el["threshold"][e], 0.0), el["gain"][e], el["leak"][e]
            d = f"V({a},{b})"
            lines.append(f"B{e} {a} {b} I={_g(gain)}*(abs({d})<{_g(over)} ? {d}*({_g(over)}-abs({d})/2) : "
                         f"sgn({d})*{_g(over * over / 2)})+{_g(leak)}*{d}")
    for j, (node, value) in enumerate(zip(nodes, values)):
        lines.append(f"V{j} n{node} 0 DC {_g(value)}")
    if models:
        leaks = {float(x) for x in el["leak"][kinds == DIODE]}
        if len(leaks) > 1:
            raise ValueError(f"SPICE has one GMIN for every junction; the diodes' leak values differ ({sorted(leaks)}).")
        lines += models + [f".options gmin={_g(leaks.pop())}"]
    return "\n".join(lines + [".end", ""])


def _number(token: str, line: str) -> float:
    m = re.fullmatch(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]*)", token)
    if not m:
        raise ValueError(f"cannot read the number {token!r} in SPICE line {line!r}.")
    suffix = m.group(2).lower()
    for name in sorted(_SUFFIX, key=len, reverse=True):  # 'meg' and 'mil' before 'm'
        if suffix.startswith(name):
            return float(m.group(1)) * _SUFFIX[name]
    return float(m.group(1))  # units such as 'ohm' or 'V' carry no scale


def from_spice(text: str):
    """Read a netlist of resistors, diodes and DC voltage sources back into jaxnet.

    Nodes may be named anything; they are numbered in order of first appearance (`to_spice`'s
    `n{i}` names map back to `i` when the netlist came from jaxnet). The sources must all
    return to ground `0`, which is not a network node. Diode cards need a `.model ... D(...)`
    with `IS`, `N` and `RS > 0`; `.options gmin=` sets their junction leak (SPICE's default
    1e-12 otherwise).

    **Returns:** `(net, conductances, fixed_nodes, fixed_values)`: a `Network` (with
    `elements` when the netlist has diodes), `(E,)` conductances (`1/R`, a diode's `1/RS`),
    `(F,)` source nodes and `(F,)` volts.

    **Raises:** `ValueError` naming the line for an element it cannot read, a source not
    returning to ground, or a parallel pair of edges.
    """
    names, edges, k, kinds, diode_models, sources = {}, [], [], [], [], []
    models, gmin = {}, 1e-12

    def node(name, line):
        if name == "0" or name.lower() == "gnd":
            raise ValueError(f"SPICE line {line!r}: only voltage sources may touch ground 0 (it is not a network node).")
        return names.setdefault(name, len(names))

    lines = [raw.split(";")[0].strip() for raw in text.splitlines()[1:]]  # the first line is the title
    for line in lines:
        low = line.lower()
        if low.startswith(".model"):
            m = re.fullmatch(r"\.model\s+(\S+)\s+d\s*\((.*)\)", line, re.IGNORECASE)
            if not m:
                raise ValueError(f"cannot read the diode model {line!r} (expected .model NAME D(IS=... N=... RS=...)).")
            params = dict(re.findall(r"(\w+)\s*=\s*(\S+)", m.group(2)))
            models[m.group(1).lower()] = {p.lower(): _number(v, line) for p, v in params.items()}
        elif low.startswith(".options") or low.startswith(".option"):
            m = re.search(r"gmin\s*=\s*(\S+)", line, re.IGNORECASE)
            if m:
                gmin = _number(m.group(1), line)
    for line in lines:
        if not line or line.startswith("*") or line.startswith("."):
            continue
        parts = line.split()
        kind = parts[0][0].upper()
        if kind == "R" and len(parts) >= 4:
            edges.append((node(parts[1], line), node(parts[2], line)))
            resistance = _number(parts[3], line)
            if not resistance > 0:
                raise ValueError(f"SPICE line {line!r}: resistance must be > 0.")
            k.append(1 / resistance)
            kinds.append("resistor")
            diode_models.append(None)
        elif kind == "D" and len(parts) >= 4:
            model = models.get(parts[3].lower())
            if model is None or not model.get("rs", 0) > 0:
                raise ValueError(f"SPICE line {line!r}: needs a .model {parts[3]} D(IS=... N=... RS=...) with RS > 0.")
            edges.append((node(parts[1], line), node(parts[2], line)))
            k.append(1 / model["rs"])
            kinds.append("diode")
            diode_models.append(model)
        elif kind == "V" and len(parts) >= 4:
            plus, minus = parts[1], parts[2]
            if minus != "0" and minus.lower() != "gnd":
                raise ValueError(f"SPICE line {line!r}: a voltage source must return to ground 0.")
            value = parts[4] if parts[3].upper() == "DC" and len(parts) > 4 else parts[3]
            sources.append((node(plus, line), _number(value, line)))
        else:
            raise ValueError(f"SPICE line {line!r}: jaxnet reads resistors (R), diodes (D) and DC voltage sources (V) only.")
    if not edges:
        raise ValueError("the netlist has no resistor or diode.")
    if not sources:
        raise ValueError("the netlist has no voltage source: nothing fixes the voltages.")
    numbered = {int(n[1:]) for n in names if re.fullmatch(r"n\d+", n)}
    if len(numbered) == len(names) and numbered == set(range(len(names))):  # jaxnet's own names
        order = {name: int(name[1:]) for name in names}
        remap = np.empty(len(names), int)
        for name, i in names.items():
            remap[i] = order[name]
        edges = [(remap[a], remap[b]) for a, b in edges]
        sources = [(remap[a], v) for a, v in sources]
    net = Network.from_edges(np.array(edges), len(names))
    if "diode" in kinds:
        diodes = [m or {"is": 1e-14, "n": 1.0} for m in diode_models]
        net = net.with_elements(Elements.from_kinds(
            kinds,
            saturation_current=[m.get("is", 1e-14) for m in diodes],
            emission_voltage=[m.get("n", 1.0) * THERMAL_VOLTAGE for m in diodes],
            leak=gmin,
        ))
    fixed = np.array([s[0] for s in sources])
    return net, np.array(k), fixed, np.array([s[1] for s in sources])
