"""The one chat template shared by training and inference.

LLaVA-1.5 style plain template::

    USER: <image>\\n{q1} ASSISTANT: {a1}</s>USER: {q2} ASSISTANT: {a2}</s>

Training puts the loss on the answer spans (and, with the L2T recipe, on the
question text minus the fixed template pieces of ``training/l2t_fixed_text.toml``,
see ``training/l2t.py``); inference renders one turn
with ``prompt_for(question, has_image)`` and generates until ``</s>``.
Keeping both in this module is what guarantees they cannot drift apart.
"""

from __future__ import annotations

from vlmdyn_cli.training.l2t import fixed_text, split_fixed_text

IMAGE_TOKEN = "<image>"
EOS = "</s>"
USER = "USER:"
ASSISTANT = "ASSISTANT:"

# Fixed instruction suffixes that LLaVA data appends to questions (one data file, shared with L2T).
TEMPLATE_SUFFIXES = fixed_text().suffixes


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
    template text (``l2t.split_fixed_text``) gets the role "template".
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

