"""SPICE netlists out of and into jaxnet: `to_spice` and `from_spice`.

Node `i` of a network is SPICE node `n{i}`; each fixed node is held by a DC voltage source
`V{j} n{i} 0`, against SPICE's ground `0` (which is not a network node). Elements:

- resistor: `R{e} n{s} n{r} {1/k}` (the shortest decimal whose reciprocal, as `from_spice` reads
  it, rounds back to `k` to the bit);
- diode: `D{e} n{s} n{r} DM{e}` (anode the sender) with `.model DM{e} D(IS= N= RS=1/k)` (and
  `BV= IBV= NBV=` when it breaks down), and `.options gmin=` the junction leak (SPICE has one
  `GMIN` for all junctions);
- smooth diode and transistor: a behavioural current source `B{e} n{s} n{r} I=...` with the
  element's current law written out (ngspice's B sources; SPICE3 dialects).

`from_spice` reads netlists of resistors, diodes and DC voltage sources as people write them
(see its docstring for what it honours, accepts and refuses), `to_spice`'s among them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from decimal import Context, Decimal
from fractions import Fraction
from typing import NamedTuple

import numpy as np
from jaxtyping import ArrayLike, Float, Int

from ._checks import connected_components
from ._elements import DIODE, KINDS, RESISTOR, SMOOTH_DIODE, THERMAL_VOLTAGE, Elements
from ._network import Network

_SUFFIX = {"t": 1e12, "g": 1e9, "meg": 1e6, "k": 1e3, "m": 1e-3, "mil": 25.4e-6, "u": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15}
_CELSIUS_TO_KELVIN = 273.15
_K_OVER_Q = THERMAL_VOLTAGE / (27.0 + _CELSIUS_TO_KELVIN)  # ngspice's k_B / q (V/K)

# Diode `.model` parameters (SPICE's names, lower case; aliases map to one name).
_DIODE_ALIASES = {"js": "is", "ib": "ibv", "tref": "tnom"}
DIODE_HONOURED = ("is", "n", "rs", "bv", "ibv", "nbv", "eg", "xti", "tnom", "area", "level")
"""Diode model parameters `from_spice` honours, as ngspice-39's diode (level 1) does: saturation
current, emission coefficient, series resistance, breakdown voltage and current (with SPICE's
knee matching) and breakdown emission coefficient, the saturation current's temperature law
(`EG`, `XTI`, `TNOM`), the area factor. Aliases `JS`, `IB`, `TREF`."""
DIODE_ACCEPTED = (
    "cjo", "cj0", "cj", "m", "mj", "vj", "pb", "fc", "fcs", "tt", "ttt1", "ttt2", "kf", "af", "cjp", "cjsw", "php",
    "mjsw", "tm1", "tm2", "cta", "ctc", "ctp", "tpb", "tvj", "tphp", "tlevc", "pj", "fv_max", "bv_max", "id_max",
    "pd_max", "te_max", "lm", "lp", "wm", "wp", "xom", "xoi", "xm", "xp", "iave", "vpk", "mfg", "type",
)
"""Diode model parameters `from_spice` accepts and ignores: they do not change the DC operating
point (capacitances, transit time, noise, their temperature laws, safe-operating limits, the
datasheet notes `Iave`, `Vpk`, `mfg`, `type`). Every other parameter (`IKF`, `IKR`, `ISR`, `NR`,
`JSW`, `NS`, `TRS1`, `TCV`, tunnelling, self-heating, ...) is refused, naming it and the line."""

# `.options`: honoured, and accepted because they only steer the solver or the output.
_OPTIONS_HONOURED = ("gmin", "temp", "tnom", "reltol")
_OPTIONS_ACCEPTED = (
    "abstol", "vntol", "chgtol", "trtol", "pivrel", "pivtol", "itl1", "itl2", "itl3", "itl4", "itl5", "itl6",
    "gminsteps", "srcsteps", "noopiter", "method", "maxord", "acct", "noacct", "norefvalue", "noinit", "nopage",
    "list", "node", "opts", "numdgt", "savecurrents", "keepopinfo", "klu", "sparse", "warn", "maxwarns", "interp",
)
# `.control` commands that neither change the circuit nor run another analysis (output and
# bookkeeping); every other command (`alter`, `altermod`, `reset`, `source`, `dc`, `tran`, ...)
# is refused by name.
_CONTROL_ACCEPTED = (
    "op", "run", "print", "echo", "quit", "exit", "set", "unset", "write", "wrdata", "show", "showmod", "display",
    "listing", "plot", "destroy", "rusage", "version", "save", "let", "setplot", "status", "where",
)
_OUTPUT_CARDS = (".op", ".title", ".save", ".print", ".probe", ".width")


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


def _conductance(scale: Fraction, resistance: Fraction) -> float:
    """`scale / resistance` (`m/R`, a diode's `area m / RS`) from the netlist's exact decimals,
    rounded once to float64 (so `to_spice`'s `_resistance` reads back bit-exact); `inf` or 0
    where float64 cannot hold it."""
    try:
        return float(scale / resistance)
    except OverflowError:
        return math.inf


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


def _number(token: str, line: str, exact: bool = False) -> float | Fraction:
    """A SPICE number (`exact`: as the exact rational its decimal and suffix write)."""
    m = re.fullmatch(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]*)", token)
    if not m:
        raise ValueError(f"cannot read the number {token!r} in SPICE line {line!r}.")
    suffix, number = m.group(2).lower(), Fraction if exact else float
    for name in sorted(_SUFFIX, key=len, reverse=True):  # 'meg' and 'mil' before 'm'
        if suffix.startswith(name):
            return number(m.group(1)) * (Fraction(repr(_SUFFIX[name])) if exact else _SUFFIX[name])
    return number(m.group(1))  # units such as 'ohm' or 'V' carry no scale


def _split(line: str) -> tuple[list[str], dict[str, str]]:
    """A card's positional tokens and its `name=value` pairs (names lower case); parentheses
    and commas count as spaces, as in SPICE."""
    tokens = re.sub(r"\s*=\s*", "=", re.sub(r"[(),]", " ", line)).split()
    positional = [t for t in tokens if "=" not in t]
    named = dict(t.lower().split("=", 1) for t in tokens if "=" in t)
    return positional, named


def _logical_lines(text: str) -> list[str]:
    """The netlist's cards after its title line: comments (`*` lines; `;`, ` $ `, `//` to the
    end of a line) and blank lines dropped, `+` continuation lines joined, up to `.end`."""
    cards: list[str] = []
    for raw in text.splitlines()[1:]:  # the first line is the title
        line = re.split(r";|\s\$|//", raw, maxsplit=1)[0].strip()
        if not line or line.startswith("*"):
            continue
        if line.startswith("+"):
            if not cards:
                raise ValueError(f"SPICE line {raw.strip()!r} continues nothing (a '+' line must follow a card).")
            cards[-1] += " " + line[1:].strip()
        elif line.lower() in (".end", ".end."):
            break
        else:
            cards.append(line)
    return cards


class _Reader:
    """State of one `from_spice` read: settings from `.options`, `.temp` and `.control`,
    diode models, and the element and source cards in netlist order."""

    def __init__(self):
        self.options = {"gmin": 1e-12, "temp": 27.0, "tnom": 27.0, "reltol": 1e-3}
        # where each honoured setting was given: SPICE's precedence between `.temp`, `.options`
        # and a `.control` block's `option` depends on the order and kind of card, so a setting
        # given twice with different values is refused, naming both lines.
        self.set_at: dict[str, str] = {}
        self.models: dict[str, tuple[dict[str, str], str]] = {}
        self.model_lines: dict[str, str] = {}  # every .model name (any device type): its card
        self.names: dict[str, str] = {}  # element and source names, case folded: their line
        # (kind, first node, second node, a resistor's resistance or a diode's (words, named, line))
        self.elements: list[tuple[str, str, str, object]] = []
        self.sources: list[tuple[str, str, float, str]] = []  # (+ node, - node, volts, line)
        self.ran = False  # an analysis (`op`, `run`) already in the .control block

    def option(self, name: str, value: str | None, line: str, after_analysis: bool = False) -> None:
        if name in _OPTIONS_HONOURED:
            if value is None:
                raise ValueError(f"SPICE line {line!r}: option {name} needs a value.")
            if after_analysis:
                raise ValueError(f"SPICE line {line!r}: option {name} after an analysis asks for a second operating "
                                 "point; jaxnet reads one.")
            self.setting(name, _number(value, line), line)
        elif name not in _OPTIONS_ACCEPTED:
            raise ValueError(f"SPICE line {line!r}: jaxnet does not honour option {name!r} (it honours "
                             f"{', '.join(_OPTIONS_HONOURED)}; it accepts {', '.join(_OPTIONS_ACCEPTED)}).")

    def setting(self, name: str, value: float, line: str) -> None:
        if name in self.set_at and value != self.options[name]:
            first = self.set_at[name]
            where = f"twice in SPICE line {line!r}" if first == line else f"in SPICE lines {first!r} and {line!r}"
            raise ValueError(f"{name} is set to different values {where}: ngspice's precedence between .temp, "
                             ".options and a .control block's option depends on their order; jaxnet reads one "
                             f"{name}, so set it once.")
        self.options[name] = value
        self.set_at.setdefault(name, line)

    def options_card(self, words: list[str], line: str, after_analysis: bool = False) -> None:
        for word in re.sub(r"\s*=\s*", "=", " ".join(words)).split():
            name, _, value = word.partition("=")
            self.option(name.lower(), value or None, line, after_analysis)

    def control(self, line: str) -> None:
        words = line.split()
        command = words[0].lower()
        if command in ("option", "options", "opt"):
            self.options_card(words[1:], line, self.ran)
        elif command == "set" and re.match(r"set\s+(temp|tnom)\b", line, re.IGNORECASE):
            raise ValueError(f"SPICE line {line!r}: jaxnet does not honour `set temp`/`set tnom` in a .control block; "
                             "use `.temp`, `.options temp=` or `option temp=` before `op`.")
        elif command in _CONTROL_ACCEPTED:
            self.ran |= command in ("op", "run")
        else:
            raise ValueError(f"SPICE line {line!r}: jaxnet does not honour the control command {command!r} in a "
                             f".control block (it reads option, and accepts {', '.join(_CONTROL_ACCEPTED)}).")

    def card(self, line: str) -> None:
        words = line.split()
        head = words[0].lower()
        if head == ".model":
            positional, named = _split(line)
            if len(positional) < 3:
                raise ValueError(f"SPICE line {line!r}: a .model card needs a name and a type (.model NAME D ...).")
            first = self.model_lines.get(positional[1].lower())
            if first is not None:  # ngspice-39 keeps the first card, silently
                raise ValueError(f"SPICE line {line!r} redefines model {positional[1]} of SPICE line {first!r}: "
                                 "give each model one .model card.")
            self.model_lines[positional[1].lower()] = line
            if positional[2].lower() == "d":
                if len(positional) > 3:
                    raise ValueError(f"SPICE line {line!r}: cannot read {positional[3]!r} in a diode model (parameters "
                                     "are NAME=value).")
                self.models[positional[1].lower()] = (named, line)
            # models of other devices are only refused where an element uses them
        elif head in (".options", ".option", ".opt"):
            self.options_card(words[1:], line)
        elif head == ".temp":
            if len(words) != 2:
                raise ValueError(f"SPICE line {line!r}: jaxnet reads one temperature in .temp (one operating point).")
            self.setting("temp", _number(words[1], line), line)
        elif head not in _OUTPUT_CARDS:
            raise ValueError(f"SPICE line {line!r}: jaxnet does not read the {words[0]} card (it reads .model, "
                             f".options, .temp, .control, and accepts {', '.join(_OUTPUT_CARDS)}, .end).")

    def element(self, line: str) -> None:
        positional, named = _split(line)
        kind = positional[0][0].upper()
        if kind not in "RDV" or len(positional) < 3:
            raise ValueError(f"SPICE line {line!r}: jaxnet reads resistors (R), diodes (D) and DC voltage sources (V) "
                             "only.")
        name, a, b = positional[:3]
        first = self.names.get(name.lower())
        if first is not None:  # ngspice stops: "device already exists"
            raise ValueError(f"SPICE line {line!r}: element {name} already exists (SPICE line {first!r}; names are "
                             "case-insensitive): give each element its own name.")
        self.names[name.lower()] = line
        if kind == "V":
            self.sources.append((a, b, self.source_value(positional[3:], named, line), line))
            return
        if _key(a) == _key(b):
            raise ValueError(f"SPICE line {line!r}: both ends of {name} are on node {a}.")
        if kind == "R":
            self.elements.append(("resistor", a, b, self.conductance(positional[3:], named, line)))
        else:
            if len(positional) < 4:
                raise ValueError(f"SPICE line {line!r}: a diode needs a model name (D1 anode cathode MODEL).")
            self.elements.append(("diode", a, b, (positional[3:], named, line)))  # read once every .model is in

    @staticmethod
    def source_value(words: list[str], named: dict[str, str], line: str) -> float:
        if named:
            raise ValueError(f"SPICE line {line!r}: jaxnet does not read {next(iter(named))}= on a voltage source.")
        value, rest = 0.0, [w.lower() for w in words]
        if rest and rest[0] == "dc":
            rest = rest[1:]
        if rest and re.match(r"[+-]?[\d.]", rest[0]):
            value, rest = _number(rest[0], line), rest[1:]
        if rest and rest[0] == "ac":  # a small-signal amplitude and phase: no effect on the operating point
            rest = [w for w in rest[1:] if not re.match(r"[+-]?[\d.]", w)]
        if rest:
            raise ValueError(f"SPICE line {line!r}: jaxnet reads DC voltage sources only; it cannot read {rest[0]!r}.")
        return value

    @staticmethod
    def conductance(words: list[str], named: dict[str, str], line: str) -> float:
        """A resistor's `k = m/R`."""
        given = [key for key in ("r", "resistance") if key in named]
        if given and len(words) + len(given) > 1:
            raise ValueError(f"SPICE line {line!r}: the resistance is given twice ("
                             f"{', '.join(words[:1] + [key + '=' for key in given])}); give it once.")
        if len(words) > 1:
            raise ValueError(f"SPICE line {line!r}: jaxnet does not read {words[1]!r} after the resistance "
                             "(ngspice reads it as a model name).")
        if not words and not given:
            raise ValueError(f"SPICE line {line!r}: the resistor has no value (R name a b value, or r=value).")
        resistance, m = _number(words[0] if words else named[given[0]], line, exact=True), Fraction(1)
        for key, value in named.items():
            if key == "m":
                m = _number(value, line, exact=True)  # m resistors in parallel
                if not m > 0:  # m=0: no resistor (ngspice leaves the nodes open); m < 0: a negative one
                    raise ValueError(f"SPICE line {line!r}: m={value} makes no resistor of positive conductance "
                                     "(jaxnet needs m > 0).")
            elif key not in ("w", "l", "ac", "r", "resistance"):  # geometry and AC resistance: no DC effect
                raise ValueError(f"SPICE line {line!r}: jaxnet does not honour {key}= on a resistor (it honours r=, "
                                 "m=, and accepts w=, l=, ac=).")
        k = _conductance(m, resistance) if resistance > 0 else 0.0
        if not 0 < k < math.inf:
            raise ValueError(f"SPICE line {line!r}: the resistance must be > 0 and its conductance m/R a finite "
                             "float64 > 0 (jaxnet learns k = m/R).")
        return k

    def diode(self, words: list[str], named: dict[str, str], line: str) -> dict[str, float]:
        """One diode instance's effective parameters at the circuit's temperature, as
        ngspice-39's level-1 diode computes them (`diotemp.c`)."""
        entry = self.models.get(words[0].lower())
        if entry is None:
            raise ValueError(f"SPICE line {line!r}: no diode model {words[0]!r} (.model {words[0]} D ...).")
        card, model_line = entry
        card = {_DIODE_ALIASES.get(key, key): value for key, value in card.items()}
        refused = [key.upper() for key in card if key not in DIODE_HONOURED + DIODE_ACCEPTED]
        if refused:
            raise ValueError(f"SPICE line {model_line!r}: jaxnet does not model the diode parameter"
                             f"{'s' if len(refused) > 1 else ''} {', '.join(refused)} (it honours "
                             f"{', '.join(p.upper() for p in DIODE_HONOURED)}).")
        params = {key: _number(value, model_line) for key, value in card.items() if key in DIODE_HONOURED}
        if params.get("level", 1) != 1:
            raise ValueError(f"SPICE line {model_line!r}: jaxnet models the level-1 diode only.")
        if len(words) > 1:  # ngspice stops there too
            raise ValueError(f"SPICE line {line!r}: jaxnet does not read {words[1]!r} after a diode's model (give "
                             "the area as area=).")
        scale = {"area": params.get("area", 1.0), "m": 1.0}
        for key, value in named.items():
            if key in scale:
                scale[key] = _number(value, line)
            elif key not in ("ic", "pj"):  # a transient initial condition; the (refused) sidewall's perimeter
                raise ValueError(f"SPICE line {line!r}: jaxnet does not honour {key}= on a diode (it honours area=, m=).")
        area, m = scale["area"], scale["m"]
        if not (area > 0 and m > 0):
            raise ValueError(f"SPICE line {line!r}: area and m must be > 0.")
        if not (params.get("rs", 0.0) > 0 and params.get("is", 1e-14) > 0 and params.get("n", 1.0) > 0):
            raise ValueError(f"SPICE line {model_line!r}: jaxnet needs IS > 0, N > 0 and RS > 0 (a diode's learned "
                             "parameter is its series conductance area m / RS).")
        temp = self.options["temp"] + _CELSIUS_TO_KELVIN
        tnom = params.get("tnom", self.options["tnom"]) + _CELSIUS_TO_KELVIN
        vt, n = _K_OVER_Q * temp, params.get("n", 1.0)
        i_s = params.get("is", 1e-14) * area * m * math.exp(
            (temp / tnom - 1) * params.get("eg", 1.11) / (n * vt) + params.get("xti", 3.0) / n * math.log(temp / tnom))
        n_bv = params.get("nbv", n) * vt
        exact = {key: _number(value, line, exact=True) for key, value in named.items() if key in scale}
        k = _conductance(exact.get("area", _number(card.get("area", "1"), model_line, exact=True)) * exact.get("m", 1),
                         _number(card["rs"], model_line, exact=True))  # rounded once, as to_spice's RS reads back
        if not 0 < k < math.inf:
            raise ValueError(f"SPICE line {line!r}: a diode's series conductance area m / RS must be a finite "
                             "float64 > 0.")
        out = {"k": k, "saturation_current": i_s, "emission_voltage": n * vt,
               "breakdown_voltage": math.inf, "breakdown_emission": n_bv}
        if "bv" in params:
            out["breakdown_voltage"] = _knee(params["bv"], m * params.get("ibv", 1e-3), i_s, vt, n_bv,
                                             self.options["reltol"], model_line)
        return out


def _knee(bv: float, ibv: float, i_s: float, vt: float, n_bv: float, reltol: float, line: str) -> float:
    """SPICE's breakdown voltage matched to the breakdown current `ibv` at `bv` (the knee):
    the junction voltage `-x` where `I_s (exp((bv - x) / n_bv) - 1 + x / V_T) = ibv`, by
    ngspice's fixed-point iteration (to `reltol ibv`); `bv` itself when `ibv < I_s bv / V_T`."""
    if not bv > 0:
        raise ValueError(f"SPICE line {line!r}: jaxnet needs BV > 0.")
    if ibv < i_s * bv / vt:
        return bv
    x = bv - n_bv * math.log(1 + ibv / i_s)
    for _ in range(25):
        x = bv - n_bv * math.log(ibv / i_s + 1 - x / vt)
        if abs(i_s * (math.exp((bv - x) / n_bv) - 1 + x / vt) - ibv) <= reltol * ibv:
            break
    return x


def _is_ground(name: str) -> bool:
    return name == "0" or name.lower() == "gnd"


def _key(name: str) -> str:
    """A node name as SPICE tells nodes apart: case folded, `gnd` being ground `0`."""
    return "0" if _is_ground(name) else name.lower()


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
