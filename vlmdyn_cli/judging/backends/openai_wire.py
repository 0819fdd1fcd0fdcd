"""The OpenAI chat-completions protocol as the judge uses it, shared by live calls and the Batch API.

- ``OpenAIOptions``: what a spec's [options] and the command line may set;
- ``request_body``: the JSON body of one judge prompt (a Batch API line carries the same body);
- ``decode``: a chat-completion object -> ``Completion`` (text, P(yes) from the log-probabilities
  at the verdict token, usage, cost, the model that answered);
- ``scrubbed``: every text field of a completion with the API key removed. Everything a server
  sends back passes through it before it reaches the runner (openai_backend.py applies it);
- ``price``: which price applies (OpenAI's table only for api.openai.com).

The API key is read from the environment only (``OPENAI_API_KEY`` or the variable the spec
names in ``api_key_env``).
"""

from __future__ import annotations

import email.utils
import math
import os
import re
import time
from dataclasses import dataclass, field, fields, replace
from typing import Any

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.judging import prices
from vlmdyn_cli.judging.backends.base import Options, Prompt
from vlmdyn_cli.judging.backends.verdict_probs import p_yes_from_logprobs
from vlmdyn_cli.judging.verdict import Completion

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
NO_KEY_PLACEHOLDER = "sk-no-key-needed"    # sent to keyless local servers (they ignore it)
INSTALL_HINT = "pip install 'openai>=1.40'"


class MalformedResponse(Exception):
    """A 2xx answer whose body is not a chat completion (truncated, not JSON, not an object)."""


@dataclass(frozen=True)
class OpenAIOptions(Options):
    base_url: str | None = None           # any OpenAI-compatible server (vLLM, llama.cpp server, Ollama)
    api_key_env: str = DEFAULT_KEY_ENV    # the NAME of the environment variable holding the key
    concurrency: int = 8                  # requests in flight at once
    timeout: float = 60.0                 # seconds per request
    max_retries: int = 6                  # the SDK's retries (429, 408, 409, 5xx, timeouts, connection
                                          # errors) and ours of a malformed body, per item
    logprobs: bool | None = None          # ask for log-probabilities (default: unless score_mode = "off")
    top_logprobs: int = 20
    score_max_tokens: int = 8             # score mode: tokens allowed to reach the verdict token
    seed: int | None = None
    extra_body: dict = field(default_factory=dict)   # merged into every request body
    price_in: float | None = None         # USD per 1M prompt tokens (both in and out: overrides the table)
    price_out: float | None = None
    price_cached_in: float | None = None
    batch: bool = False                   # the Batch API: half price, results within 24 h
    batch_wait: float | None = None       # seconds to wait for Batch API jobs (None: until done; 0: return)
    batch_poll: float = 10.0              # seconds between polls of a Batch API job (at most)

    def __post_init__(self):
        if self.concurrency < 1:
            raise BadInput(f"--concurrency must be at least 1 (got {self.concurrency})")
        if not 0 <= self.top_logprobs <= 20:
            raise BadInput(f"top_logprobs must be between 0 and 20 (got {self.top_logprobs})")
        if self.max_retries < 0:
            raise BadInput(f"max_retries must be >= 0 (got {self.max_retries})")
        if self.timeout <= 0:
            raise BadInput(f"timeout must be more than 0 seconds (got {self.timeout})")
        for name in ("price_in", "price_out", "price_cached_in"):   # a negative price would never reach --max-cost
            if (getattr(self, name) or 0) < 0:
                raise BadInput(f"{name} is USD per 1M tokens and cannot be negative (got {getattr(self, name)})")
        if self.batch_wait is not None and self.batch_wait < 0:
            raise BadInput(f"--batch-wait is seconds and cannot be negative (got {self.batch_wait})")
        if self.batch_poll <= 0:
            raise BadInput(f"batch_poll must be more than 0 seconds (got {self.batch_poll})")

    @property
    def pays_later(self) -> bool:
        return self.batch


def endpoint(o: OpenAIOptions) -> str:
    """The server a judge talks to, for messages."""
    return o.base_url or "https://api.openai.com/v1"


def connection_detail(exc) -> str:
    """What lies under an SDK connection error (refused, DNS, TLS, unsupported scheme...)."""
    cause = exc.__cause__ or exc.__context__
    return f"{type(cause).__name__}: {cause}" if cause else str(exc)


# --------------------------------------------------------------------------- the key


def read_api_key(o: OpenAIOptions) -> str:
    key = os.environ.get(o.api_key_env, "").strip()
    if key:
        return _checked_key(key, o.api_key_env)
    if o.base_url and o.api_key_env == DEFAULT_KEY_ENV:
        return NO_KEY_PLACEHOLDER            # a local server needs none (unless the spec names a variable)
    where = f" for {o.base_url}" if o.base_url else ""
    raise BadInput(f"no API key{where}: set the environment variable {o.api_key_env} "
                   "(keys are read from the environment only, never from files or flags)")


def _checked_key(key: str, env: str) -> str:
    """A key an HTTP header can carry: printable ASCII without spaces. Anything else (a pasted line
    break, a non-ASCII quote) is BadInput saying where, never showing the key: sent as it is, it would
    fail every request (and the client's error quotes the header)."""
    for i, ch in enumerate(key):
        if not " " < ch <= "~":
            what = ("a space" if ch == " " else "a non-ASCII character" if ord(ch) > 127
                    else "a control character (a line break, tab...)")
            raise BadInput(f"the environment variable {env} holds {what} at position {i + 1} of its "
                           f"{len(key)} characters: an API key is printable ASCII without spaces; set it "
                           f"again (the key is not shown)")
    return key


_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{3})[A-Za-z0-9_\-]{6,}")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")


def scrub(text: str | None, secret: str | None) -> str | None:
    """``text`` without the API key, an Authorization value or anything key-shaped (sk-...)."""
    if text is None:
        return None
    if secret and len(secret) >= 6:
        text = text.replace(secret, "[redacted]")
    text = _BEARER.sub(r"\1[redacted]", text)
    return _KEYLIKE.sub(r"\1[redacted]", text)


def scrubbed(c: Completion, secret: str | None) -> Completion:
    """The completion with ``scrub`` applied to every text field (text, error, resolved model...)."""
    return replace(c, **{f.name: scrub(getattr(c, f.name), secret) for f in fields(c)
                         if f.name != "key" and isinstance(getattr(c, f.name), str)})


# --------------------------------------------------------------------------- prices


def price(spec, o: OpenAIOptions, resolved_model: str | None = None) -> prices.Price | None:
    """The spec's own price (price_in + price_out), else OpenAI's table, which applies to
    api.openai.com only: another server's model costs None (unknown), not zero."""
    if o.price_in is not None and o.price_out is not None:
        return prices.Price(o.price_in, o.price_out, o.price_cached_in)
    if o.base_url and "api.openai.com" not in o.base_url:
        return None
    return prices.price_for(resolved_model) or prices.price_for(spec.model)


# --------------------------------------------------------------------------- request and answer


def token_budget(p: Prompt, spec, o: OpenAIOptions) -> int:
    """max_tokens for a prompt: in score mode just enough to reach the verdict token."""
    if not p.score_only:
        return int(spec.decoding["max_tokens"])
    return 1 if p.verdict_prefix == "" else o.score_max_tokens   # yes/no format: the verdict is token 1


def request_body(p: Prompt, spec, o: OpenAIOptions) -> dict:
    """The chat-completions JSON body for one prompt (also one Batch API line's body)."""
    body: dict = {"model": spec.model, "messages": p.messages or [{"role": "user", "content": p.text or ""}]}
    if spec.decoding.get("temperature") is not None:
        body["temperature"] = spec.decoding["temperature"]
    body["max_tokens"] = token_budget(p, spec, o)
    if (o.logprobs if o.logprobs is not None else spec.score_mode != "off") or p.score_only:
        body["logprobs"] = True
        body["top_logprobs"] = o.top_logprobs
    if o.seed is not None:
        body["seed"] = o.seed
    body.update(o.extra_body)
    return body


def decode(p: Prompt, data: Any, spec, o: OpenAIOptions, *, batch: bool = False,
           latency_s: float | None = None) -> Completion:
    """A chat-completion JSON object as a Completion (raises MalformedResponse when it is not one)."""
    if not isinstance(data, dict):
        raise MalformedResponse(f"the answer is a JSON {type(data).__name__}, not an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedResponse("the answer has no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    text = message.get("content")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
    pt, ct = (pt if isinstance(pt, int) else None), (ct if isinstance(ct, int) else None)
    details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    model = data.get("model") if isinstance(data.get("model"), str) else None
    logprobs = choice.get("logprobs") if isinstance(choice.get("logprobs"), dict) else {}
    p_yes = p_yes_from_logprobs(logprobs.get("content"), token_budget(p, spec, o) == 1)
    error = None
    if text is None:
        refusal = message.get("refusal")
        error = f"refusal: {refusal}" if refusal else f"empty answer (finish_reason={choice.get('finish_reason')})"
    elif choice.get("finish_reason") == "content_filter":
        error = "refusal: the provider's content filter stopped the answer"
    elif p.score_only and p_yes is None:
        error = ("score mode: no 'yes'/'no' token among the top log-probabilities at the verdict position "
                 f"(answer started {text[:40]!r}); does the server return logprobs?")
    cost = prices.cost_usd(price(spec, o, model), pt, ct, cached_tokens=details.get("cached_tokens"), batch=batch)
    return Completion(key=p.key, text=text, p_yes=p_yes, prompt_tokens=pt, completion_tokens=ct, cost_usd=cost,
                      resolved_model=model, latency_s=latency_s, error=error)


def retry_after_s(headers: Any) -> float | None:
    """Seconds a server asks us to wait: retry-after-ms, Retry-After seconds or an HTTP date."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            v = float(raw) / scale
        except ValueError:
            continue
        if math.isfinite(v) and v >= 0:
            return v
    raw = headers.get("retry-after")
    if raw:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(raw).timestamp() - time.time())
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return None


def server_message(exc: Any) -> str:
    """The server's error message (from a JSON error body when there is one), one line."""
    body = getattr(exc, "body", None)
    msg = None
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else str(err)
    msg = msg or getattr(exc, "message", None) or str(exc)
    return " ".join(str(msg).split())[:300]
