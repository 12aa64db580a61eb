"""SPICE netlists out of jaxnet: `to_spice`.

Node `i` of a network is SPICE node `n{i}`; each fixed node is held by a DC voltage source
`V{j} n{i} 0`, against SPICE's ground `0` (which is not a network node). Elements:

- resistor: `R{e} n{s} n{r} {1/k}` (the shortest decimal whose reciprocal, as `from_spice` reads
  it, rounds back to `k` to the bit);
- diode: `D{e} n{s} n{r} DM{e}` (anode the sender) with `.model DM{e} D(IS= N= RS=1/k)` (and
  `BV= IBV= NBV=` when it breaks down), and `.options gmin=` the junction leak (SPICE has one
  `GMIN` for all junctions);
- smooth diode and transistor: a behavioural current source `B{e} n{s} n{r} I=...` with the
  element's current law written out (ngspice's B sources; SPICE3 dialects).

`from_spice` (`_spice_read`) reads the netlist back exactly, conductances to the bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Context, Decimal
from fractions import Fraction

import numpy as np
from jaxtyping import ArrayLike, Float, Int

from ._elements import DIODE, KINDS, RESISTOR, SMOOTH_DIODE, THERMAL_VOLTAGE
from ._network import Network
from ._spice_cards import _conductance


def _g(x: float) -> str:
    return f"{x:.17g}"


def _resistance(k: float) -> str:
    """A resistance whose reciprocal, as `from_spice` reads it (`_conductance`: the decimal's
    exact reciprocal, rounded once), is `k` to the bit: the shortest repr of `1/k` or of a float
    next to it when one does, else `1/k` to the fewest digits from 17 on (17 digits are within
    a quarter ulp of `k` and round back to it)."""
    r = 1 / k
    candidates = [r]
    for toward in (0.0, math.inf):
        x = r
        for _ in range(2):
            x = math.nextafter(x, toward)
            candidates.append(x)
    for x in filter(math.isfinite, candidates):
        if _conductance(Fraction(1), Fraction(repr(x))) == k:
            return repr(x)
    for digits in range(17, 40):
        text = str(Context(prec=digits).divide(Decimal(1), Decimal(k))).lower()
        if _conductance(Fraction(1), Fraction(text)) == k:
            return text
    raise AssertionError(f"no resistance reads back as conductance {k!r}")  # 17 digits always do


def to_spice(
    net: Network,
    conductances: Float[ArrayLike, " edges"],
    fixed_nodes: Int[ArrayLike, " fixed"],
    fixed_values: Float[ArrayLike, " fixed"],
    *,
    title: str = "jaxnet network",
    control: Sequence[str] = (),
) -> str:
    """A SPICE netlist of the network, its conductances and its sources, ready for `.op`.

    **Arguments:**

    - `net`: the network (with its `elements`, if any); parallel edges are separate elements.
    - `conductances`: `(E,)` each edge's parameter (a resistor's or a diode's series
      conductance must be > 0: SPICE writes resistances).
    - `fixed_nodes`: int `(F,)` nodes held by voltage sources; `fixed_values` `(F,)` volts.
    - `title`: the netlist's first line.
    - `control`: ngspice commands for a `.control ... .endc` block, e.g. `("op", "print all")`;
      none: no block and no analysis card, so add yours (`.op`).

    **Returns:** the netlist as a string, ending in `.end`; `from_spice` reads it back exactly:
    the same edges and sources, and conductances to the bit (each resistance, and a diode's `RS`,
    is written as the shortest decimal whose exact reciprocal rounds to `k`: usually `1/k`'s or
    a neighbouring float's shortest repr, else `1/k` to 17 digits or more).

    ```python
    text = jn.to_spice(net, k, jnp.array([0, 8]), jnp.array([1.0, 0.0]), control=["op", "print all"])
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
            lines.append(f"R{e} {a} {b} {_resistance(float(k[e]))}")
        elif kind == DIODE:
            lines.append(f"D{e} {a} {b} DM{e}")
            i_s, bv = el["saturation_current"][e], el["breakdown_voltage"][e]
            card = f"IS={_g(i_s)} N={_g(el['emission_voltage'][e] / THERMAL_VOLTAGE)} RS={_resistance(float(k[e]))}"
            if np.isfinite(bv):
                # An IBV below IS BV / V_T makes SPICE skip its knee matching: BV is used as is.
                card += f" BV={_g(bv)} IBV={_g(i_s * bv / THERMAL_VOLTAGE / 2)} NBV={_g(el['breakdown_emission'][e] / THERMAL_VOLTAGE)}"
            models.append(f".model DM{e} D({card})")
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
    if control:
        lines += [".control", *control, ".endc"]
    return "\n".join(lines + [".end", ""])
