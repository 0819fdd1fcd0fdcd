"""Strict parsing of judge outputs (DESIGN.md convention 3: parse strictly, never guess).

Three output formats:

- ``rubric-dict``: exactly ``{'p': 'yes'|'no', 'MS': 1-5, 'MD': 1-5, 'H': 1-5}`` (Python-dict-like,
  single or double quotes, any key order);
- ``verdict-dict``: exactly ``{'p': 'yes'|'no'}``;
- ``yesno``: the single word yes or no (a trailing full stop allowed).

Tolerated around the answer: whitespace and one Markdown code fence. Anything else
is ``unscored`` with the reason; the raw text is kept by the caller. Unscored is
never "no".
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

FORMATS = ("rubric-dict", "verdict-dict", "yesno")
RUBRIC_KEYS = ("MS", "MD", "H")

_FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\n?(.*?)\n?```$", re.S)
# the exact canonical shapes, checked first (a fast path giving the same result as the full check)
_FAST = {
    "rubric-dict": re.compile(r"""\{(['"])p\1: (['"])(yes|no)\2, (['"])MS\4: ([1-5]), (['"])MD\6: ([1-5]), """
                              r"""(['"])H\8: ([1-5])\}"""),
    "verdict-dict": re.compile(r"""\{(['"])p\1: (['"])(yes|no)\2\}"""),
}


@dataclass
class Parsed:
    status: str                     # scored | unscored
    verdict: str | None = None      # yes | no when scored
    ms: int | None = None
    md: int | None = None
    h: int | None = None
    reason: str | None = None       # why unscored

    @classmethod
    def fail(cls, reason: str) -> "Parsed":
        return cls("unscored", reason=reason)


def strip_wrapping(text: str) -> str:
    """Remove surrounding whitespace and one code fence, nothing else."""
    t = text.strip()
    m = _FENCE.match(t)
    return m.group(1).strip() if m else t


def _verdict(value) -> str | None:
    if isinstance(value, str) and value.strip().lower() in ("yes", "no"):
        return value.strip().lower()
    return None


def _literal_dict(t: str) -> dict | str:
    if not (t.startswith("{") and t.endswith("}")):
        return "not a dict: expected the output to be only {...}"
    try:
        value = ast.literal_eval(t)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        return f"not a valid dict literal ({type(exc).__name__})"
    if not isinstance(value, dict):
        return "not a dict: expected the output to be only {...}"
    return value


def parse_output(text: str | None, fmt: str) -> Parsed:
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if text is None or not text.strip():
        return Parsed.fail("empty output")
    t = strip_wrapping(text)
    if fmt == "yesno":
        word = t[:-1] if t.endswith(".") else t
        v = _verdict(word)
        return Parsed("scored", v) if v else Parsed.fail("expected the single word yes or no")
    fast = _FAST[fmt].fullmatch(t)
    if fast:
        g = fast.groups()
        if fmt == "verdict-dict":
            return Parsed("scored", g[2])
        return Parsed("scored", g[2], int(g[4]), int(g[6]), int(g[8]))
    d = _literal_dict(t)
    if isinstance(d, str):
        return Parsed.fail(d)
    want = {"p"} | (set(RUBRIC_KEYS) if fmt == "rubric-dict" else set())
    keys = set(d)
    if keys != want:
        missing, extra = sorted(map(str, want - keys)), sorted(map(str, keys - want))
        parts = ([f"missing keys {missing}"] if missing else []) + ([f"unexpected keys {extra}"] if extra else [])
        return Parsed.fail("; ".join(parts))
    v = _verdict(d["p"])
    if v is None:
        return Parsed.fail(f"'p' must be 'yes' or 'no', got {d['p']!r}")
    out = Parsed("scored", v)
    if fmt == "rubric-dict":
        for k in RUBRIC_KEYS:
            s = d[k]
            if type(s) is not int or not 1 <= s <= 5:
                return Parsed.fail(f"{k!r} must be an integer 1-5, got {s!r}")
            setattr(out, k.lower(), s)
    return out
