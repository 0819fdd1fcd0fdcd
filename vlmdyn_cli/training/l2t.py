"""Learning to Instruct (L2T): which part of an instruction is content and which is fixed template text.

Under ``--loss instruction+answer`` the loss covers the question tokens as well as the answer,
except fixed template text (METHOD.md section 6). The template strings live in one data file,
``l2t_fixed_text.toml`` (prefixes such as LLaVA's fixed Bounding openings, suffixes such as the
short-answer and multiple-choice instructions). ``split_fixed_text`` cuts one question into
(piece, role) parts whose concatenation is the question itself, unchanged, so the training text
is exactly the text the model sees at inference.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

FIXED_TEXT_FILE = Path(__file__).with_name("l2t_fixed_text.toml")
TEMPLATE, QUESTION = "template", "question"


@dataclass(frozen=True)
class FixedText:
    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]


@lru_cache(maxsize=None)
def fixed_text(path: Path = FIXED_TEXT_FILE) -> FixedText:
    """The template strings of the data file (longest first, so a longer string wins)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    lists = {}
    for key in ("prefixes", "suffixes"):
        vals = raw.get(key)
        if not isinstance(vals, list) or not all(isinstance(v, str) and v.strip() for v in vals):
            raise ValueError(f"{path}: '{key}' must be a list of non-empty strings")
        lists[key] = tuple(sorted((v.strip() for v in vals), key=len, reverse=True))
    return FixedText(**lists)


def split_fixed_text(question: str, table: FixedText | None = None) -> list[tuple[str, str]]:
    """``question`` as (piece, role) parts, role ``template`` or ``question``; ''.join(pieces) == question.

    Whitespace next to a template string belongs to the template piece.
    """
    t = table or fixed_text()
    low = question.lower()
    start, end = 0, len(question)
    lead = len(low) - len(low.lstrip())
    for p in t.prefixes:
        if low.startswith(p.lower(), lead):
            start = lead + len(p)
            start += len(low[start:]) - len(low[start:].lstrip())
            break
    while True:
        body_end = len(low[:end].rstrip())
        hit = next((s for s in t.suffixes if body_end - len(s) >= start and low.endswith(s.lower(), start, body_end)),
                   None)
        if hit is None:
            break
        end = body_end - len(hit)
        end = len(low[:end].rstrip()) if low[start:end].strip() else end
    if not question[start:end].strip():
        return [(question, TEMPLATE)] if question else []
    if start == 0 and end == len(question):
        return [(question, QUESTION)]
    pieces = [(question[:start], TEMPLATE), (question[start:end], QUESTION), (question[end:], TEMPLATE)]
    return [(s, role) for s, role in pieces if s]
