"""An item's reference answers: one, or several acceptable ones kept apart.

A triple has one ``answer`` string. When a dataset gives several acceptable answers
(Natural Questions: "savior", "save", "rescue"), they are stored in that string as a
JSON list of at least two strings, so nothing is joined away and the triple's hash
still covers all of them:

    encode(["savior", "save"])  -> '["savior", "save"]'
    decode('["savior", "save"]') -> ["savior", "save"]
    decode("red")                -> ["red"]

Features and rules take the best match over the references; an LLM judge is shown
them as alternatives (``display``).
"""

from __future__ import annotations

import json


def encode(references: list[str]) -> str:
    """The answer string of these references (a single one stays plain text)."""
    refs = [r for r in references]
    if len(refs) == 1:
        return refs[0]
    return json.dumps(refs, ensure_ascii=False)


def decode(answer: str) -> list[str]:
    """The references an answer string holds (itself, unless it is a JSON list of >= 2 strings)."""
    s = answer.strip()
    if s.startswith('["') and s.endswith("]"):
        try:
            v = json.loads(s)
        except ValueError:
            return [answer]
        if isinstance(v, list) and len(v) >= 2 and all(isinstance(x, str) for x in v):
            return v
    return [answer]


def display(answer: str) -> str:
    """How a prompt shows the answer: one reference as is, several as quoted alternatives."""
    refs = decode(answer)
    if len(refs) == 1:
        return answer
    return "any of: " + "; ".join(json.dumps(r, ensure_ascii=False) for r in refs)
