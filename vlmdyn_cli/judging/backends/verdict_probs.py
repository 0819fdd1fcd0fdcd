"""P(yes) at the verdict position, shared by the judge backends (score mode).

A verdict token is any case, space or quote variant of "yes" / "no" (``Yes``,
`` no``, ``'yes``). From one position's log-probabilities (the API's
``top_logprobs``) ``p_yes = P(yes variants) / (P(yes variants) + P(no variants))``.
"""

from __future__ import annotations

import math
from typing import Any

_STRIP = " \t\r\n'\"`.,:;!?{}()[]*_"


def verdict_word(token: str | None) -> str | None:
    """'yes' / 'no' when a token is one of their case/space/quote variants."""
    if not token:
        return None
    w = token.strip(_STRIP).lower()
    return w if w in ("yes", "no") else None


def _lp(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def p_yes_at(position: Any) -> float | None:
    """P(yes) / (P(yes) + P(no)) from one position's chosen token and top alternatives."""
    seen: dict[str, float] = {}
    chosen = _lp(position, "token")
    if chosen is not None and _lp(position, "logprob") is not None:
        seen[chosen] = float(_lp(position, "logprob"))
    for alt in _lp(position, "top_logprobs") or []:
        tok, lp = _lp(alt, "token"), _lp(alt, "logprob")
        if tok is not None and lp is not None:
            seen.setdefault(tok, float(lp))
    yes = sum(math.exp(lp) for t, lp in seen.items() if verdict_word(t) == "yes")
    no = sum(math.exp(lp) for t, lp in seen.items() if verdict_word(t) == "no")
    if yes + no <= 0:
        return None
    return yes / (yes + no)


def p_yes_from_logprobs(content: list | None, one_token: bool) -> float | None:
    """p_yes at the verdict position: the first yes/no token (or token 0 of a 1-token answer)."""
    if not content:
        return None
    for i, pos in enumerate(content):
        if verdict_word(_lp(pos, "token")) or (one_token and i == 0):
            return p_yes_at(pos)
    return None
