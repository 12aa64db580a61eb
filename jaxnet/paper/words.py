"""The report's words for its numbers: one rule says "lower", "the same" or "higher".

Every sentence of the report that compares two numbers takes its word from `compare`, applied
to quartiles of *paired* values (the same network or run under both settings) or of values
against a fixed reference: a ratio or a cosine, compared with 1, or a difference of cosines,
compared with 0. `RULE` states the rule in the
report's words, so what the report says and what it does cannot drift apart.
"""

from __future__ import annotations

#: How far the whole interquartile range must lie from the reference to count as a difference.
MARGIN = 0.01

RULE = (f"*lower* when the whole interquartile range of what is compared (a ratio, against 1; a cosine, against 1; "
        f"a difference of cosines, against 0) lies more than {MARGIN:g} below the reference, *higher* when it lies "
        f"more than {MARGIN:g} above it, *the same* otherwise")


def compare(q: dict, at: float = 1.0) -> str:
    """`"lower"`, `"the same"` or `"higher"` for quartiles `q` (`analysis.quartiles`' dict) of
    paired values against the reference `at`, by `RULE`; `"not measured"` without values."""
    if not q["n"]:
        return "not measured"
    if q["q75"] < at - MARGIN:
        return "lower"
    if q["q25"] > at + MARGIN:
        return "higher"
    return "the same"


def fmt(q: dict, digits: int = 3) -> str:
    """`median [q25, q75]` in a compact notation."""
    if not q["n"]:
        return "n/a"
    f = (lambda v: f"{v:.{digits}g}")
    return f"{f(q['median'])} [{f(q['q25'])}, {f(q['q75'])}]"


def scaled(q: dict, by: float) -> dict:
    """Quartiles `q` divided by `by` (values against a fixed reference, as a ratio)."""
    return dict(q, **{k: q[k] / by for k in ("median", "q25", "q75")})


def listing(items: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def by_word(cases: list[tuple[str, str]], words: dict[str, str]) -> str:
    """`(label, word)` cases grouped by word: `"lower at p = 0.5; the same at p = 0.2"`, each
    word as `words` renders it (in the order of `words`)."""
    parts = []
    for word, said in words.items():
        labels = [label for label, w in cases if w == word]
        if labels:
            parts.append(f"{said} {listing(labels)}")
    return "; ".join(parts)


def count(n, noun: str) -> str:
    """`"1 network"`, `"2 networks"`: a number and its noun, singular or plural."""
    return f"{n} {noun}{'s' * (n != 1)}"
