"""Rendering a judge spec's templates into a backend request.

The fixed text (rubric, instructions, few-shot examples) always comes first and
the item last, so local backends reuse the KV cache of the shared prefix.
Placeholders are ``{question}``, ``{answer}`` and ``{prediction}``, substituted
in one pass (a prediction containing "{answer}" stays literal; other braces,
such as the dict example in the rubric, are untouched).
"""

from __future__ import annotations

import re

from vlmdyn_cli.judging.backends.base import JudgeRequest
from vlmdyn_cli.judging.spec import JudgeSpec

_PLACEHOLDER = re.compile(r"\{(question|answer|prediction)\}")
VERDICT_PREFIX = {"rubric-dict": "{'p': '", "verdict-dict": "{'p': '", "yesno": ""}


def fill(template: str, values: dict) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)


def render_request(spec: JudgeSpec, key: str, question: str, answer: str, prediction: str) -> JudgeRequest:
    """The request for one triple. A cascade renders with its last (LLM) stage's templates."""
    item = {"question": question, "answer": answer, "prediction": prediction}
    target = spec.stages[-1] if spec.stages else spec
    t = target.templates
    messages: list[dict] = []
    prompt = None
    if "text_template" in t:
        prompt = fill(t["text_template"], item).rstrip("\n")
    if "system_template" in t:
        messages.append({"role": "system", "content": fill(t["system_template"], item).strip()})
    if "user_template" in t:
        messages.append({"role": "user", "content": fill(t["user_template"], item).strip()})
    return JudgeRequest(key=key, messages=messages, prompt=prompt,
                        score_only=target.score_mode == "only", item=item,
                        verdict_prefix=VERDICT_PREFIX.get(target.output))


def estimate_tokens(request: JudgeRequest) -> int:
    """A rough prompt-token count (4 characters per token) for --dry-run estimates."""
    chars = len(request.prompt or "") + sum(len(m["content"]) + 8 for m in request.messages)
    return max(1, chars // 4)
