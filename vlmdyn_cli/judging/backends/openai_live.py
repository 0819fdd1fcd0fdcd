"""Live chat completions: a pool of ``concurrency`` workers over the official async SDK.

Retries are the SDK's (``max_retries``): 429, 408, 409, 5xx, timeouts and dropped
connections, honouring ``retry-after-ms`` / ``Retry-After``. Two things it does not do
are done here:

- a 429 pauses the whole pool until the server's retry time (every request, the SDK's
  retries included, waits for it; an httpx event hook sees each attempt), so a rate
  limit slows the pool down instead of spending every worker's retries;
- a 2xx answer whose body is not a chat completion (truncated, not JSON, no choices)
  is asked again, up to ``max_retries`` times.

What still fails comes back as a Completion with ``error`` set (the runner stores the
item unscored with that reason, and the next run tries it again).

A server that cannot be reached at all (refused, DNS, TLS, a scheme that is not http) is not
retried item after item: after ``CONNECT_FAILS`` connection failures in a row, with no answer
in between, the pool stops at once and ``EndpointUnreachable`` (exit 1) names the endpoint;
the items not judged yet stay unjudged for the next run. Timeouts, 429s and 5xx keep the
SDK's retries. ``run`` returns the attempts beyond the first of each item (retries) and the
429s seen, for the run's summary.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Callable, Iterable, Iterator

from vlmdyn_cli.errors import BadInput, Failure, require
from vlmdyn_cli.judging.backends.base import Prompt
from vlmdyn_cli.judging.backends.openai_wire import (INSTALL_HINT, MalformedResponse, OpenAIOptions, connection_detail,
                                                     decode, endpoint, request_body, retry_after_s, scrub,
                                                     server_message)
from vlmdyn_cli.judging.verdict import Completion

RETRY_AFTER_MAX_S = 120.0     # the SDK does not retry when a server asks to wait longer
CONNECT_FAILS = 4             # connection failures in a row (no answer in between) that stop the run


class EndpointUnreachable(Failure):
    """The server cannot be reached at all: the run stops (exit 1), unjudged items stay unjudged."""


def run(prompts: Iterable[Prompt], emit: Callable[[Completion], None], spec, o: OpenAIOptions,
        key: str) -> dict[str, int]:
    """Complete every prompt; returns {"requests", "retries", "429"} for the summary."""
    return asyncio.run(_pool(iter(prompts), emit, spec, o, key))


class _Watch:
    """Counts attempts, 429s and connection failures in a row (every attempt passes through it)."""

    def __init__(self, endpoint: str, key: str):
        self.endpoint, self.key = endpoint, key
        self.attempts = self.throttled = self.failures_in_a_row = 0
        self.stop = asyncio.Event()
        self.reason = ""

    def answered(self, status: int) -> None:
        self.failures_in_a_row = 0
        self.throttled += status == 429

    def failed(self, exc: Exception) -> None:
        self.failures_in_a_row += 1
        if self.failures_in_a_row >= CONNECT_FAILS and not self.stop.is_set():
            self.reason = scrub(f"{type(exc).__name__}: {exc}", self.key)
            self.stop.set()


def _transport(openai, watch: _Watch):
    """The SDK's HTTP transport, watched: connection failures and answers are counted per attempt.

    Built from the HTTP library the SDK's own client class comes from (httpx, or httpx2 in newer SDKs)."""
    import importlib

    httpx = importlib.import_module(openai.DefaultAsyncHttpxClient.__mro__[1].__module__.split(".")[0])

    class Watched(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request):
            watch.attempts += 1
            try:
                response = await super().handle_async_request(request)
            except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
                watch.failed(exc)
                raise
            watch.answered(response.status_code)
            return response

    return Watched()


class _Pause:
    """The pool-wide pause after a 429: every attempt waits until the server's retry time."""

    def __init__(self):
        self.until = 0.0

    async def before(self, request) -> None:
        delay = self.until - time.monotonic()
        if delay > 0:   # (a little jitter so the paused requests do not all return at once)
            await asyncio.sleep(delay + random.uniform(0, 0.05 + 0.1 * delay))

    async def after(self, response) -> None:
        if response.status_code == 429:
            wait = retry_after_s(response.headers)
            if wait is not None and wait <= RETRY_AFTER_MAX_S:
                self.until = max(self.until, time.monotonic() + wait)


async def _pool(prompts: Iterator[Prompt], emit, spec, o: OpenAIOptions, key: str) -> dict[str, int]:
    openai = require("openai", INSTALL_HINT, "the openai judge backend")
    pause = _Pause()
    watch = _Watch(endpoint(o), key)
    try:
        client = openai.AsyncOpenAI(
            api_key=key, base_url=o.base_url, max_retries=o.max_retries,
            timeout=openai.Timeout(o.timeout, connect=min(10.0, o.timeout)),
            http_client=openai.DefaultAsyncHttpxClient(transport=_transport(openai, watch),
                                                       event_hooks={"request": [pause.before],
                                                                    "response": [pause.after]}))
    except Exception as exc:  # noqa: BLE001 - e.g. a malformed base_url
        raise BadInput(f"cannot create the OpenAI client: {scrub(str(exc), key)}") from None
    sent = 0

    async def worker() -> None:
        nonlocal sent
        for p in prompts:   # one shared iterator: each prompt is taken by exactly one worker
            sent += 1
            emit(await _complete(client, openai, p, spec, o))

    workers = asyncio.gather(*(worker() for _ in range(o.concurrency)))
    stopped = asyncio.ensure_future(watch.stop.wait())
    try:
        await asyncio.wait({workers, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if watch.stop.is_set():
            workers.cancel()            # the items in flight are not judged: they stay for the next run
            await asyncio.gather(workers, return_exceptions=True)
            raise EndpointUnreachable(
                f"cannot reach {watch.endpoint}: {CONNECT_FAILS} connection attempts in a row failed "
                f"({watch.reason}); stopped, the items not judged yet stay unjudged. Check --base-url / the "
                "network, then run the same command again")
        workers.result()
    finally:
        stopped.cancel()
        await client.close()
    return {"requests": sent, "retries": max(0, watch.attempts - sent), "429": watch.throttled}


async def _complete(client, openai, p: Prompt, spec, o: OpenAIOptions) -> Completion:
    body = request_body(p, spec, o)
    # [options] extra_body keys (grammar, min_p...) are not SDK parameters: the SDK merges them into the JSON
    sdk_args = {k: v for k, v in body.items() if k not in o.extra_body}
    if o.extra_body:
        sdk_args["extra_body"] = dict(o.extra_body)
    malformed = 0
    while True:
        t0 = time.monotonic()
        try:
            raw = await client.chat.completions.with_raw_response.create(**sdk_args)
            content = raw.http_response.content
            try:
                data = json.loads(content)
            except ValueError:
                raise MalformedResponse(f"the answer is not valid JSON ({len(content)} bytes, truncated?)") from None
            return decode(p, data, spec, o, latency_s=time.monotonic() - t0)
        except MalformedResponse as exc:
            malformed += 1
            if malformed > o.max_retries:
                return Completion(p.key, error=f"malformed answer: {exc} (gave up after {malformed} attempts)")
            await asyncio.sleep(min(8.0, 0.5 * 2 ** (malformed - 1)) * random.uniform(0.75, 1.0))
        except openai.APIStatusError as exc:
            problem = f"HTTP {exc.status_code}: {server_message(exc)}"
            wait = retry_after_s(exc.response.headers)
            if wait is not None and wait > RETRY_AFTER_MAX_S:
                return Completion(p.key, error=f"{problem}; the server asks to wait {wait:.0f}s")
            if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
                problem += f" (gave up after {o.max_retries + 1} attempts)"
            return Completion(p.key, error=problem)           # 400, 401, 403, 404...: retrying cannot help
        except openai.APITimeoutError:
            return Completion(p.key, error=f"timeout after {o.timeout:g}s (gave up after {o.max_retries + 1} "
                                           "attempts)")
        except openai.APIConnectionError as exc:
            return Completion(p.key, error=f"connection error ({connection_detail(exc)}) (gave up after "
                                           f"{o.max_retries + 1} attempts)")
