"""The `openai` judge backend: chat completions through the official SDK.

Works with api.openai.com and with any OpenAI-compatible server (`base_url`:
vLLM, llama.cpp server, Ollama). Requests run concurrently (a pool of
``concurrency`` workers); each call is retried by *our* loop (the SDK's own
retries are off, so every retry is counted here) with exponential backoff and
jitter, honouring ``retry-after-ms`` / ``Retry-After`` on 429 and 5xx. A 429
pauses every worker until the server's retry time, so a rate limit slows the
pool down instead of burning retries. After the retry budget an item comes back
with ``error`` set (the runner stores it unscored with that reason).

Score mode reads the token log-probabilities at the verdict position (the first
generated token that is "yes"/"no"; the first token when only one is asked for)
and gives ``p_yes = P(yes) / (P(yes) + P(no))`` summed over case and space
variants. The same log-probabilities are requested in full mode too, so a
verdict-first dict yields both the verdict and ``p_yes`` in one call.

The API key is read from the environment only (``OPENAI_API_KEY`` or the env
var the spec names) and is scrubbed from every error text this module returns.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from vlmdyn_cli.errors import BadInput, require
from vlmdyn_cli.judging import prices
from vlmdyn_cli.judging.backends.base import JudgeRequest, JudgeResponse
from vlmdyn_cli.judging.backends.verdict_probs import p_yes_from_logprobs

INSTALL_HINT = "pip install openai"
NO_KEY_PLACEHOLDER = "sk-no-key-needed"    # sent to keyless local servers (they ignore it)


class MalformedResponse(Exception):
    """A 2xx answer whose body is not a chat completion (truncated, not JSON, not an object)."""


# --------------------------------------------------------------------------- settings


@dataclass
class OpenAISettings:
    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    api_key_env_explicit: bool = False       # the spec named the variable: it must be set
    concurrency: int = 8
    max_retries: int = 6                     # failed attempts (5xx, timeout, bad body) per item
    max_throttled: int = 100                 # 429 answers per item before giving up
    timeout_s: float = 60.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    retry_after_max_s: float = 600.0         # a longer Retry-After ends the item with an error
    temperature: float | None = 0.0
    max_tokens: int | None = 128
    score_max_tokens: int = 8                # score mode: decode at most this many tokens to reach the verdict
    logprobs: bool = True
    top_logprobs: int = 20
    seed: int | None = None
    extra_body: dict = field(default_factory=dict)
    price: prices.Price | None = None        # spec override; else looked up from the resolved model
    max_cost_usd: float | None = None
    batch: bool = False
    batch_wait_s: float | None = None        # None: poll until done; 0: submit / check once
    batch_poll_s: float = 10.0


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def settings_from_spec(spec: Any, **opts: Any) -> OpenAISettings:
    """Settings from a judge spec (``JudgeSpec`` or a dict) plus runtime options (which win).

    Read from the spec: ``model``, ``[decoding]`` (temperature, max_tokens, score_mode) and
    ``[options]`` (base_url, api_key_env, concurrency, timeout, max_retries, top_logprobs,
    score_max_tokens, logprobs, seed, price_in/price_out, extra_body, batch_poll...).
    """
    params: dict = {}
    for section in ("decoding", "options", "params"):
        sec = _get(spec, section)
        if isinstance(sec, dict):
            params.update(sec)

    def pick(name: str, default: Any = None) -> Any:
        if opts.get(name) is not None:
            return opts[name]
        v = params.get(name)
        if v is None and name == "model":
            v = _get(spec, "model")
        return default if v is None else v

    model = pick("model")
    if not model:
        raise BadInput("the openai judge spec has no `model` (e.g. model = \"gpt-4o-mini\")")
    d = OpenAISettings(model=str(model))
    key_env = str(pick("api_key_env", d.api_key_env))
    s = OpenAISettings(
        model=str(model),
        base_url=pick("base_url"),
        api_key_env=key_env,
        api_key_env_explicit=key_env != d.api_key_env,
        concurrency=int(pick("concurrency", d.concurrency)),
        max_retries=int(pick("max_retries", d.max_retries)),
        max_throttled=int(pick("max_throttled", d.max_throttled)),
        timeout_s=float(pick("timeout", d.timeout_s)),
        backoff_base_s=float(pick("backoff_base", d.backoff_base_s)),
        backoff_max_s=float(pick("backoff_max", d.backoff_max_s)),
        retry_after_max_s=float(pick("retry_after_max", d.retry_after_max_s)),
        temperature=pick("temperature", d.temperature),
        max_tokens=pick("max_tokens", d.max_tokens),
        score_max_tokens=int(pick("score_max_tokens", d.score_max_tokens)),
        logprobs=bool(pick("logprobs", pick("score_mode", "with-verdict") != "off")),
        top_logprobs=int(pick("top_logprobs", d.top_logprobs)),
        seed=pick("seed"),
        extra_body=dict(pick("extra_body", {}) or {}),
        price=prices.price_from_spec(None, pick("price_in"), pick("price_out"), pick("price_cached_in")),
        max_cost_usd=opts.get("max_cost"),
        batch=bool(opts.get("batch") or False),
        batch_wait_s=opts.get("batch_wait"),
        batch_poll_s=float(pick("batch_poll", d.batch_poll_s)),
    )
    if s.concurrency < 1:
        raise BadInput(f"--concurrency must be at least 1 (got {s.concurrency})")
    if s.max_cost_usd is not None and s.max_cost_usd < 0:
        raise BadInput(f"--max-cost must be >= 0 (got {s.max_cost_usd})")
    if not 0 <= s.top_logprobs <= 20:
        raise BadInput(f"top_logprobs must be between 0 and 20 (got {s.top_logprobs})")
    return s


# --------------------------------------------------------------------------- secrets


_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{3})[A-Za-z0-9_\-]{6,}")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")


def scrub(text: str | None, secret: str | None, *, keylike: bool = True) -> str | None:
    """Remove the API key from a text we are about to return (and, in error texts, anything key-shaped)."""
    if text is None:
        return None
    if secret and len(secret) >= 6:
        text = text.replace(secret, "[redacted]")
    if not keylike:
        return text
    text = _BEARER.sub(r"\1[redacted]", text)
    return _KEYLIKE.sub(r"\1[redacted]", text)


def read_api_key(s: OpenAISettings) -> str:
    key = os.environ.get(s.api_key_env, "").strip()
    if key:
        return key
    if s.base_url and not s.api_key_env_explicit:
        return NO_KEY_PLACEHOLDER
    where = f" for {s.base_url}" if s.base_url else ""
    raise BadInput(
        f"no API key{where}: set the environment variable {s.api_key_env} "
        "(keys are read from the environment only, never from files or flags)"
    )


# --------------------------------------------------------------------------- one completion -> response


def response_from_completion(
    key: str, data: Any, s: OpenAISettings, *, one_token: bool, batch: bool = False,
    latency_s: float | None = None, secret: str | None = None,
) -> JudgeResponse:
    """Turn a chat-completion JSON object into a JudgeResponse (raises MalformedResponse)."""
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
    details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    model = data.get("model") if isinstance(data.get("model"), str) else None
    price = price_of(s, model)
    logprobs = choice.get("logprobs") if isinstance(choice.get("logprobs"), dict) else {}
    error = None
    if text is None:
        refusal = message.get("refusal")
        error = f"refusal: {refusal}" if refusal else f"empty answer (finish_reason={choice.get('finish_reason')})"
    elif choice.get("finish_reason") == "content_filter":
        error = "refusal: the provider's content filter stopped the answer"
    return JudgeResponse(
        key=key,
        text=scrub(text, secret, keylike=False),
        p_yes=p_yes_from_logprobs(logprobs.get("content"), one_token),
        prompt_tokens=pt if isinstance(pt, int) else None,
        completion_tokens=ct if isinstance(ct, int) else None,
        cost_usd=prices.cost_usd(price, pt, ct, cached_tokens=details.get("cached_tokens"), batch=batch),
        resolved_model=model,
        latency_s=latency_s,
        error=scrub(error, secret),
        extra={"finish_reason": choice.get("finish_reason")},
    )


def token_budget(req: JudgeRequest, s: OpenAISettings) -> int | None:
    """max_tokens for a request: in score mode just enough to reach the verdict token."""
    if not req.score_only:
        return s.max_tokens
    if req.verdict_prefix == "":      # the verdict is the very first token
        return 1
    return s.score_max_tokens


def uses_openai_prices(s: OpenAISettings) -> bool:
    """OpenAI's price table applies to api.openai.com only; another server costs what the spec says."""
    return not s.base_url or "api.openai.com" in s.base_url


def price_of(s: OpenAISettings, resolved_model: str | None = None) -> prices.Price | None:
    if s.price is not None:
        return s.price
    if not uses_openai_prices(s):
        return None
    return prices.price_for(resolved_model) or prices.price_for(s.model)


def request_body(req: JudgeRequest, s: OpenAISettings) -> dict:
    """The chat-completions JSON body for one judge request (also one Batch API line's body)."""
    messages = req.messages or [{"role": "user", "content": req.prompt or ""}]
    body: dict = {"model": s.model, "messages": messages}
    if s.temperature is not None:
        body["temperature"] = s.temperature
    max_tokens = token_budget(req, s)
    if max_tokens is not None:
        body["max_tokens"] = int(max_tokens)
    if s.logprobs or req.score_only:
        body["logprobs"] = True
        body["top_logprobs"] = s.top_logprobs
    if s.seed is not None:
        body["seed"] = int(s.seed)
    body.update(s.extra_body)
    return body


def one_token_budget(req: JudgeRequest, s: OpenAISettings) -> bool:
    return token_budget(req, s) == 1


def finish_score_only(resp: JudgeResponse) -> JudgeResponse:
    """Score mode "only": the judgement is p_yes alone (the runner thresholds it), no text."""
    if resp.error:
        return resp
    resp.extra["text"] = resp.text
    if resp.p_yes is None:
        resp.error = ("score mode: no 'yes'/'no' token among the top log-probabilities at the verdict "
                      f"position (answer started {str(resp.text)[:40]!r}); does the server return logprobs?")
    resp.text = None
    return resp


# --------------------------------------------------------------------------- retry timing


def retry_after_s(headers: Any) -> float | None:
    """Seconds the server asks us to wait: retry-after-ms, Retry-After seconds or HTTP date."""
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
            when = email.utils.parsedate_to_datetime(raw)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return None


def backoff_s(failures: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: half the step fixed, half random."""
    step = min(cap, base * (2 ** max(failures - 1, 0)))
    return step / 2 + random.uniform(0, step / 2)


# --------------------------------------------------------------------------- the backend


@dataclass
class Stats:
    calls: int = 0          # HTTP attempts
    retries: int = 0        # attempts after a failure (not counting 429)
    throttled: int = 0      # 429 answers
    errors: int = 0         # items that ended with an error
    not_sent: int = 0       # items skipped by --max-cost
    spent_usd: float = 0.0


class OpenAIBackend:
    """Chat completions over the OpenAI API or any compatible server."""

    id = "openai"

    def __init__(self, settings: OpenAISettings, *, db: Any = None, spec_hash: str | None = None,
                 reporter: Any = None):
        require("openai", INSTALL_HINT, "the openai judge backend")
        self.s = settings
        self.db, self.spec_hash, self.reporter = db, spec_hash, reporter
        self._key = read_api_key(settings)
        self.stats = Stats()
        self._pause_until = 0.0
        self._batch_state: Any = None
        if settings.max_cost_usd is not None and price_of(settings) is None:
            where = f"served by {settings.base_url}" if settings.base_url else "(not in the price table)"
            raise BadInput(
                f"--max-cost needs a price for model {settings.model!r} {where}: add price_in and "
                "price_out (USD per 1M tokens) to the spec's [options]"
            )
        if settings.batch and (db is None or not spec_hash):
            raise BadInput("--batch needs the experiment database (the batch ids are stored there to resume)")

    # ---- public contract

    def run(self, requests: Iterable[JudgeRequest], on_result: Callable[[JudgeResponse], None]) -> None:
        if self.s.batch:
            from vlmdyn_cli.judging.backends import openai_batch

            self._batch_state = openai_batch.run_batch(self, list(requests), on_result)
            return
        _run_coroutine(self._run_async(iter(requests), on_result))

    def close(self) -> None:
        pass

    def pending_summary(self) -> str | None:
        """For --batch: what is still in flight (None when nothing is)."""
        return self._batch_state.summary() if self._batch_state is not None else None

    def scrub(self, text: str | None) -> str | None:
        return scrub(text, self._key)

    # ---- clients

    def sync_client(self):
        openai = require("openai", INSTALL_HINT, "the openai judge backend")
        return openai.OpenAI(api_key=self._key, base_url=self.s.base_url, max_retries=0,
                             timeout=self._timeout())

    def _timeout(self):
        import openai

        return openai.Timeout(self.s.timeout_s, connect=min(10.0, self.s.timeout_s))

    # ---- the concurrent loop

    async def _run_async(self, it, on_result) -> None:
        openai = require("openai", INSTALL_HINT, "the openai judge backend")
        try:
            client = openai.AsyncOpenAI(api_key=self._key, base_url=self.s.base_url, max_retries=0,
                                        timeout=self._timeout())
        except Exception as exc:  # noqa: BLE001 - e.g. a malformed base_url
            raise BadInput(f"cannot create the OpenAI client: {self.scrub(str(exc))}") from None

        async def worker() -> None:
            for req in it:   # one shared iterator: each request is taken by exactly one worker
                if self._over_budget():
                    self.stats.not_sent += 1
                    on_result(JudgeResponse(
                        key=req.key, extra={"not_sent": True},
                        error=f"not sent: the --max-cost budget of ${self.s.max_cost_usd:.4f} was reached"))
                    continue
                resp = await self._judge_one(client, openai, req)
                if resp.cost_usd:
                    self.stats.spent_usd += resp.cost_usd
                if resp.error and resp.text is None:
                    self.stats.errors += 1
                on_result(resp)

        try:
            await asyncio.gather(*(worker() for _ in range(self.s.concurrency)))
        finally:
            await client.close()

    def _over_budget(self) -> bool:
        return self.s.max_cost_usd is not None and self.stats.spent_usd >= self.s.max_cost_usd

    async def _wait_for_pause(self) -> None:
        while True:
            delay = self._pause_until - time.monotonic()
            if delay <= 0:
                return
            await asyncio.sleep(delay)

    async def _judge_one(self, client, openai, req: JudgeRequest) -> JudgeResponse:
        body = request_body(req, self.s)
        one_token = one_token_budget(req, self.s)
        failures = throttled = 0
        t_first = time.monotonic()
        while True:
            await self._wait_for_pause()
            self.stats.calls += 1
            t0 = time.monotonic()
            try:
                raw = await client.chat.completions.with_raw_response.create(**body)
                http = raw.http_response
                try:
                    data = json.loads(http.content)
                except ValueError:
                    raise MalformedResponse(
                        f"the answer is not valid JSON ({len(http.content)} bytes, truncated?)") from None
                resp = response_from_completion(req.key, data, self.s, one_token=one_token,
                                                latency_s=time.monotonic() - t0, secret=self._key)
                if req.score_only:
                    finish_score_only(resp)
                resp.extra.update(attempts=failures + throttled + 1, throttled=throttled,
                                  total_s=round(time.monotonic() - t_first, 3))
                return resp
            except openai.APIStatusError as exc:
                status = exc.status_code
                problem = f"HTTP {status}: {_short(exc)}"
                if status == 429:
                    throttled += 1
                    self.stats.throttled += 1
                    wait = retry_after_s(exc.response.headers)
                    if throttled > self.s.max_throttled:
                        return self._give_up(req, f"rate limited {throttled} times; last {problem}", t_first)
                    if wait is not None:
                        if wait > self.s.retry_after_max_s:
                            return self._give_up(
                                req, f"{problem}; the server asks to wait {wait:.0f}s "
                                     f"(more than {self.s.retry_after_max_s:.0f}s)", t_first)
                        wait += random.uniform(0, 0.05 + 0.1 * wait)   # do not all return at once
                        self._pause_until = max(self._pause_until, time.monotonic() + wait)
                    else:
                        wait = backoff_s(throttled, self.s.backoff_base_s, self.s.backoff_max_s)
                    continue_after = wait
                elif status >= 500 or status in (408, 409):
                    failures += 1
                    wait = retry_after_s(exc.response.headers)
                    if failures > self.s.max_retries:
                        return self._give_up(req, f"{problem} (gave up after {failures} attempts)", t_first)
                    if wait is None or wait > self.s.retry_after_max_s:
                        wait = backoff_s(failures, self.s.backoff_base_s, self.s.backoff_max_s)
                    continue_after = wait
                    self.stats.retries += 1
                else:   # 400, 401, 403, 404...: retrying cannot help
                    return self._give_up(req, problem, t_first)
            except openai.APITimeoutError:
                failures += 1
                problem = f"timeout after {self.s.timeout_s:g}s"
                if failures > self.s.max_retries:
                    return self._give_up(req, f"{problem} (gave up after {failures} attempts)", t_first)
                continue_after = backoff_s(failures, self.s.backoff_base_s, self.s.backoff_max_s)
                self.stats.retries += 1
            except (openai.APIConnectionError, MalformedResponse) as exc:
                failures += 1
                cause = exc.__cause__ or exc.__context__
                detail = f"{type(cause).__name__}: {cause}" if isinstance(exc, openai.APIConnectionError) and cause else str(exc)
                problem = f"connection error ({detail})" if isinstance(exc, openai.APIConnectionError) \
                    else f"malformed answer: {detail}"
                if failures > self.s.max_retries:
                    return self._give_up(req, f"{problem} (gave up after {failures} attempts)", t_first)
                continue_after = backoff_s(failures, self.s.backoff_base_s, self.s.backoff_max_s)
                self.stats.retries += 1
            await asyncio.sleep(continue_after)

    def _give_up(self, req: JudgeRequest, reason: str, t_first: float) -> JudgeResponse:
        return JudgeResponse(key=req.key, error=self.scrub(reason),
                             extra={"total_s": round(time.monotonic() - t_first, 3)})


def _short(exc: Any) -> str:
    """The server's error message (from a JSON error body when there is one), one line."""
    body = getattr(exc, "body", None)
    msg = None
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else str(err)
    msg = msg or getattr(exc, "message", None) or str(exc)
    msg = " ".join(str(msg).split())
    return msg[:300]


def _run_coroutine(coro) -> None:
    """asyncio.run here, or in a helper thread when this thread already runs a loop (the TUI)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    box: dict = {}

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["exc"] = exc

    t = threading.Thread(target=target, name="vlmdyn-openai", daemon=True)
    t.start()
    t.join()
    if "exc" in box:
        raise box["exc"]


def make_backend(spec: Any, **opts: Any) -> OpenAIBackend:
    """Registry entry: ``openai`` (spec fields + CLI options base_url, concurrency, batch, max_cost...)."""
    db, spec_hash, reporter = opts.pop("db", None), opts.pop("spec_hash", None), opts.pop("reporter", None)
    return OpenAIBackend(settings_from_spec(spec, **opts), db=db, spec_hash=spec_hash, reporter=reporter)
