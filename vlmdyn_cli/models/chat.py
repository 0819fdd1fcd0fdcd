"""The one chat template shared by training and inference.

LLaVA-1.5 style plain template::

    USER: <image>\\n{q1} ASSISTANT: {a1}</s>USER: {q2} ASSISTANT: {a2}</s>

Training puts the loss on the answer spans (and, with the L2T recipe, on the
question text minus its fixed template text: ``split_fixed_text`` below, with the
strings of ``l2t_fixed_text.toml``); inference renders one turn
with ``prompt_for(question, has_image)`` and generates until ``</s>``.
Keeping both in this module is what guarantees they cannot drift apart.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

IMAGE_TOKEN = "<image>"
EOS = "</s>"
USER = "USER:"
ASSISTANT = "ASSISTANT:"


def clean_question(text: str) -> tuple[str, bool]:
    """Strip the <image> marker (start or end of a turn); returns (question, had_marker)."""
    had = IMAGE_TOKEN in text
    q = text.replace(IMAGE_TOKEN, " ")
    return " ".join(q.split()) if had else q.strip(), had


def user_turn(question: str, with_image: bool) -> str:
    img = f"{IMAGE_TOKEN}\n" if with_image else ""
    return f"{USER} {img}{question} {ASSISTANT}"


def prompt_for(question: str, has_image: bool) -> str:
    """The inference prompt for one QA pair (the answer is generated after it)."""
    return user_turn(question, has_image)


def render_conversation(turns: list[tuple[str, str]], has_image: bool) -> list[tuple[str, str]]:
    """Training text as (segment, role) pieces, role in {"template", "question", "answer"}.

    The image marker goes into the first user turn only. Concatenating the
    segments gives the training string (each turn exactly as ``prompt_for``
    renders it, then the answer); roles drive the loss mask. A question's fixed
    template text (``split_fixed_text``) gets the role "template".
    """
    pieces: list[tuple[str, str]] = []
    for i, (q, a) in enumerate(turns):
        pieces.append((f"{USER} ", "template"))
        if i == 0 and has_image:
            pieces.append((f"{IMAGE_TOKEN}\n", "template"))
        pieces.extend(split_fixed_text(q))
        pieces.append((f" {ASSISTANT} ", "template"))
        pieces.append((a, "answer"))
        pieces.append((EOS, "answer"))
    return pieces


# ---------------------------------------------------------------- fixed template text inside questions (L2T)
# Under ``--loss instruction+answer`` (Learning to Instruct, METHOD.md section 6) the loss covers the
# question tokens too, except fixed template text: LLaVA's fixed Bounding openings, the short-answer and
# multiple-choice suffixes, all listed in one data file, ``l2t_fixed_text.toml``. The pieces of a split
# concatenate to the question unchanged, so the training text is exactly what the model sees at inference.
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


# Fixed instruction suffixes that LLaVA data appends to questions (the data import's dependent-turn filter
# treats a question ending in one as templated).
TEMPLATE_SUFFIXES = fixed_text().suffixes
