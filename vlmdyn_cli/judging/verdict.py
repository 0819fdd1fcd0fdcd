"""What a judge hands back: a Verdict per item, and how a model's Completion becomes one.

Every backend hands the runner one ``Verdict`` per item: ``scored`` (yes / no) or
``unscored`` with the reason (the model's output broke the format, the call failed,
the rules cannot decide). Unscored is never "no" (DESIGN.md convention 3).

Free-text backends turn a model's answer into a verdict with ``from_completion``,
which parses strictly. Three output formats:

- ``rubric-dict``: exactly ``{'p': 'yes'|'no', 'MS': 1-5, 'MD': 1-5, 'H': 1-5}`` (Python-dict-like,
  single or double quotes, any key order);
- ``verdict-dict``: exactly ``{'p': 'yes'|'no'}``;
- ``yesno``: the single word yes or no (a trailing full stop allowed).

Tolerated around the answer: whitespace and one Markdown code fence. Anything else
is unscored with the reason, and the raw text is kept.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import NamedTuple

FORMATS = ("rubric-dict", "verdict-dict", "yesno")
RUBRIC_KEYS = ("MS", "MD", "H")
SCORED, UNSCORED = "scored", "unscored"

_FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\n?(.*?)\n?```$", re.S)
# the exact canonical shapes, checked first (a fast path giving the same result as the full check)
_FAST = {
    "rubric-dict": re.compile(r"""\{(['"])p\1: (['"])(yes|no)\2, (['"])MS\4: ([1-5]), (['"])MD\6: ([1-5]), """
                              r"""(['"])H\8: ([1-5])\}"""),
    "verdict-dict": re.compile(r"""\{(['"])p\1: (['"])(yes|no)\2\}"""),
}


class Scores(NamedTuple):
    """The rubric's three scores, 1-5, 5 best (METHOD.md section 4)."""

    ms: int   # major subjects
    md: int   # missed details
    h: int    # hallucinations


@dataclass(slots=True)
class Verdict:
    """One judgement of one item (``key``: the triple hash), as the runner stores it."""

    key: str
    status: str                       # scored | unscored
    verdict: str | None = None        # yes | no when scored
    reason: str | None = None         # why unscored; for rules and score mode, how it was decided
    scores: Scores | None = None
    p_yes: float | None = None        # P(yes) / (P(yes) + P(no)) at the verdict position
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None     # None: unknown (no price), never a pretended 0
    latency_s: float | None = None
    resolved_model: str | None = None  # the model the backend says answered
    decided_by: str | None = None     # the judge (a cascade's stage) that decided; None: this judge
    raw: str | None = None            # the model's text, verbatim; None when there was none
    defer_priority: float | None = None  # a fitted judge's: what a cascade gains by passing it on (not stored)

    @property
    def scored(self) -> bool:
        return self.status == SCORED


@dataclass(slots=True)
class Completion:
    """What a model answered to one prompt, before parsing (a free-text backend's raw result)."""

    key: str
    text: str | None = None           # the completion; None when the call failed or nothing was generated
    p_yes: float | None = None        # P(yes) / (P(yes) + P(no)) at the verdict position, when read
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    resolved_model: str | None = None
    latency_s: float | None = None
    error: str | None = None          # why there is no usable answer (after the backend's retries)


def decided(key: str, verdict: str, **fields) -> Verdict:
    return Verdict(key, SCORED, verdict, **fields)


def unscored(key: str, reason: str, **fields) -> Verdict:
    """A first-class "no verdict": the reason says why (never counted as "no")."""
    return Verdict(key, UNSCORED, None, reason, **fields)


# ---------------------------------------------------------------- strict parsing


@dataclass
class Parsed:
    verdict: str | None = None        # yes | no; None when the text does not parse
    scores: Scores | None = None
    problem: str | None = None        # why it does not parse


def strip_wrapping(text: str) -> str:
    """Remove surrounding whitespace and one code fence, nothing else."""
    t = text.strip()
    m = _FENCE.match(t)
    return m.group(1).strip() if m else t


def _yes_no(value) -> str | None:
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
    """The verdict (and rubric scores) in ``text`` if it is exactly of form ``fmt``; else the problem."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if text is None or not text.strip():
        return Parsed(problem="empty output")
    t = strip_wrapping(text)
    if fmt == "yesno":
        v = _yes_no(t[:-1] if t.endswith(".") else t)
        return Parsed(v) if v else Parsed(problem="expected the single word yes or no")
    fast = _FAST[fmt].fullmatch(t)
    if fast:
        g = fast.groups()
        return Parsed(g[2], Scores(int(g[4]), int(g[6]), int(g[8])) if fmt == "rubric-dict" else None)
    d = _literal_dict(t)
    if isinstance(d, str):
        return Parsed(problem=d)
    want = {"p"} | (set(RUBRIC_KEYS) if fmt == "rubric-dict" else set())
    if set(d) != want:
        missing, extra = sorted(map(str, want - set(d))), sorted(map(str, set(d) - want))
        parts = ([f"missing keys {missing}"] if missing else []) + ([f"unexpected keys {extra}"] if extra else [])
        return Parsed(problem="; ".join(parts))
    v = _yes_no(d["p"])
    if v is None:
        return Parsed(problem=f"'p' must be 'yes' or 'no', got {d['p']!r}")
    if fmt == "verdict-dict":
        return Parsed(v)
    for k in RUBRIC_KEYS:
        s = d[k]
        if type(s) is not int or not 1 <= s <= 5:
            return Parsed(problem=f"{k!r} must be an integer 1-5, got {s!r}")
    return Parsed(v, Scores(d["MS"], d["MD"], d["H"]))


def from_completion(spec, c: Completion) -> Verdict:
    """The verdict in a model's completion for ``spec``: parsed strictly from its text, or, in score
    mode "only", P(yes) against the spec's threshold. A failed call is unscored with its error."""
    if c.error:
        return _with_usage(c, UNSCORED, None, c.error)
    if spec.score_mode == "only":
        if c.p_yes is None:
            return _with_usage(c, UNSCORED, None, "score mode: no P(yes) at the verdict position")
        threshold = float(spec.decoding.get("threshold", 0.5))
        return _with_usage(c, SCORED, "yes" if c.p_yes >= threshold else "no",
                           f"p_yes {c.p_yes:.4f} vs threshold {threshold}")
    parsed = parse_output(c.text, spec.output)
    if parsed.verdict is None:
        return _with_usage(c, UNSCORED, None, f"parse: {parsed.problem}")
    return _with_usage(c, SCORED, parsed.verdict, None, parsed.scores)


def _with_usage(c: Completion, status: str, verdict: str | None, reason: str | None,
                scores: Scores | None = None) -> Verdict:
    return Verdict(c.key, status, verdict, reason, scores, c.p_yes, c.prompt_tokens, c.completion_tokens,
                   c.cost_usd, c.latency_s, c.resolved_model, None, c.text)
