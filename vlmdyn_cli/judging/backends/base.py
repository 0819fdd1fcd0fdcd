"""The contract every judge backend implements (registry in backends/__init__.py).

A backend turns rendered prompts into raw completions (and, in score mode,
P(yes) at the verdict position). It knows nothing about the database, the
parser or the cache: judging/runner.py does that around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol


@dataclass
class JudgeRequest:
    key: str                                  # the triple hash (or any unique id)
    messages: list[dict]                      # chat messages [{"role": ..., "content": ...}]
    prompt: str | None = None                 # plain-text prompt for base models without a chat template
    score_only: bool = False                  # score mode: only P(yes) at the verdict position, no decoding
    # additive fields (judging-core):
    item: dict | None = None                  # {"question", "answer", "prediction"}: the raw triple (rules judge)
    grammar: str | None = None                # GBNF overriding the spec's output grammar (e.g. one category letter)
    verdict_prefix: str | None = None         # text the reply starts with before the yes/no token (score mode)


@dataclass
class JudgeResponse:
    key: str
    text: str | None = None                   # raw completion; None when the call failed
    p_yes: float | None = None                # P("yes") / (P("yes") + P("no")) at the verdict position
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    resolved_model: str | None = None         # the model id the backend says answered
    latency_s: float | None = None
    error: str | None = None                  # set when the call failed after retries -> stored unscored
    extra: dict = field(default_factory=dict)


class Backend(Protocol):
    """A judge backend. ``run`` calls ``on_result`` once per request, in any order."""

    id: str

    def run(self, requests: Iterable[JudgeRequest], on_result: Callable[[JudgeResponse], None]) -> None: ...

    def close(self) -> None: ...
