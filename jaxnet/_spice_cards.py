"""SPICE's netlist language as `from_spice` reads it: numbers, lines and cards.

`_Reader` reads a netlist's cards one at a time (`.model`, `.options`, `.temp`, a `.control`
block's commands, resistor, diode and source cards) into the settings, models, elements and
sources `from_spice` builds a network from; what it honours, accepts and refuses is listed
here (`DIODE_HONOURED`, `DIODE_ACCEPTED`, the options and control commands). A diode is read
at the circuit's temperature as ngspice-39's level-1 diode computes it.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from ._elements import THERMAL_VOLTAGE

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


def _conductance(scale: Fraction, resistance: Fraction) -> float:
    """`scale / resistance` (`m/R`, a diode's `area m / RS`) from the netlist's exact decimals,
    rounded once to float64 (so `to_spice`'s `_resistance` reads back bit-exact); `inf` or 0
    where float64 cannot hold it."""
    try:
        return float(scale / resistance)
    except OverflowError:
        return math.inf


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
