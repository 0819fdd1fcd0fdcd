"""A loopback OpenAI-compatible server for tests and benchmarks (standard library only).

One server, three uses:

* **Fault injection.** A prompt containing ``FAULTS=a,b,c`` gets action ``a`` on its
  first attempt, ``b`` on its second, ... then a normal answer (``FAULTS=500*`` repeats
  forever). Actions: ``429`` (retry-after-ms 50), ``429s`` (Retry-After: 1 second),
  ``500``, ``503``, ``timeout`` (sleeps past the client timeout), ``truncated`` (half
  the body, then the connection closes), ``drop`` (closes without answering),
  ``nonjson``, ``nondict`` (a JSON list), ``nochoices``, ``prose`` (a valid completion
  whose text is not a dict), ``refusal``, ``400``, ``401echo`` (a leaky server that
  echoes the Authorization header into its error), ``echo`` (a 200 answer that echoes it
  in every field it can: the text, the model name, the id, the logprob tokens),
  ``refusalecho`` (a refusal quoting it).
* **Latency and a rate limit** (the concurrency benchmark): ``latency_s`` per request
  and a token bucket of ``rpm`` requests per minute; over the limit -> 429 with
  Retry-After / retry-after-ms.
* **Replay.** With ``answer`` (a function of the request body) set, it gives the reply text
  (replay_verdicts.py serves stored verdicts of a labelled dataset this way).
* **Proxy.** With ``upstream`` set, normal requests are forwarded to a real server
  (llama.cpp) and faults are injected in front of it.

The canned judge answers ``{'p': 'yes', 'MS': 5, 'MD': 4, 'H': 5}`` when the prompt
mentions the rubric (MS) or a test marker, else ``{'p': 'yes'}`` (``VERDICT=no`` in the
prompt makes it ``no``), with top log-probabilities at the verdict token that put
P(yes) at 0.9 / 0.2 (``PYES=0.35`` sets it). The Batch API endpoints live in
``batch_api.py`` and are served by the same server.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_SNAPSHOT = "gpt-4o-mini-2024-07-18"
MAX_SLEEP_S = 10.0   # no handler ever sleeps longer than this


def _prompt_text(body: dict) -> str:
    msgs = body.get("messages") or []
    return "\n".join(str(m.get("content", "")) for m in msgs if isinstance(m, dict))


def canned_completion(body: dict, *, model: str = MODEL_SNAPSHOT, content: str | None = None) -> dict:
    """A deterministic chat completion in OpenAI's shape, logprobs included when asked."""
    text = _prompt_text(body)
    verdict = "no" if "VERDICT=no" in text else "yes"
    m = re.search(r"PYES=([0-9.]+)", text)
    p = float(m.group(1)) if m else (0.9 if verdict == "yes" else 0.2)
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 256
    if content is None:
        rubric = "MS" in text or "FAULTS" in text or "VERDICT" in text or "PYES" in text
        tokens = ["{'p': '", verdict, "', 'MS': 5, 'MD': 4, 'H': 5}" if rubric else "'}"]
        if max_tokens == 1:
            tokens = [verdict]
    else:
        tokens = [content]
    finish = "stop"
    if len(tokens) > max_tokens:
        tokens, finish = tokens[:max_tokens], "length"
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": "".join(tokens)},
        "finish_reason": finish,
    }
    if body.get("logprobs"):
        choice["logprobs"] = {"content": [_position(t, p, verdict) for t in tokens]}
    prompt_tokens = max(1, len(text) // 4)
    return {
        "id": f"chatcmpl-{abs(hash(text)) % 10**12}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens),
                  "total_tokens": prompt_tokens + len(tokens)},
    }


def echoed_completion(body: dict, auth: str) -> dict:
    """A leaky server's answer: the Authorization header it got, in every field of a completion."""
    c = canned_completion(body, model=auth, content=f"{{'p': 'yes'}} {auth}")
    c["id"] = f"chatcmpl-{auth}"
    c["system_fingerprint"] = auth
    if body.get("logprobs"):
        c["choices"][0]["logprobs"] = {"content": [{"token": auth, "logprob": -0.1, "bytes": None,
                                                    "top_logprobs": [{"token": auth, "logprob": -0.1}]}]}
    return c


def _position(token: str, p: float, verdict: str) -> dict:
    if token not in ("yes", "no"):
        return {"token": token, "logprob": -0.01, "bytes": None,
                "top_logprobs": [{"token": token, "logprob": -0.01, "bytes": None}]}
    alts = [("yes", p * 0.8), (" Yes", p * 0.2), ("no", (1 - p) * 0.7), ("No", (1 - p) * 0.3), ("maybe", 0.001)]
    alts = [(t, math.log(max(q, 1e-12))) for t, q in alts]
    chosen = dict(alts)[verdict]
    return {"token": verdict, "logprob": chosen, "bytes": None,
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in alts]}


class TokenBucket:
    """``rpm`` requests per minute with a small burst; ``take()`` -> 0 or seconds to wait."""

    def __init__(self, rpm: float, burst: float):
        self.rate, self.capacity = rpm / 60.0, burst
        self.tokens, self.t = burst, time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.t) * self.rate)
            self.t = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return   # the client gave up (a timeout test): expected
        super().handle_error(request, client_address)


class FakeOpenAI:
    """Start with ``with FakeOpenAI(...) as srv: srv.base_url``; stopped on exit."""

    def __init__(self, *, latency_s: float = 0.0, rpm: float | None = None, burst: float = 4,
                 upstream: str | None = None, timeout_sleep_s: float = 2.0, model: str = MODEL_SNAPSHOT,
                 batch_polls: int = 2, batch_expire: bool = False, answer=None):
        from .batch_api import BatchStore

        self.answer = answer                      # body -> reply text (None: the canned answer)
        self.latency_s, self.upstream, self.model = latency_s, upstream, model
        self.timeout_sleep_s = min(timeout_sleep_s, MAX_SLEEP_S)
        self.bucket = TokenBucket(rpm, burst) if rpm else None
        self.batches = BatchStore(self, polls_to_finish=batch_polls, expire=batch_expire)
        self.lock = threading.Lock()
        self.attempts: dict[str, int] = {}        # prompt -> attempts seen
        self.counts: dict[str, int] = {}          # action / status -> count
        self.in_flight = 0
        self.max_in_flight = 0
        self.auth_headers: set[str] = set()
        self.completed_prompts: list[str] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> "FakeOpenAI":
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = _QuietServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def next_action(self, prompt: str) -> str:
        m = re.search(r"FAULTS=([A-Za-z0-9_,*]+)", prompt)
        with self.lock:
            n = self.attempts.get(prompt, 0)
            self.attempts[prompt] = n + 1
        if not m:
            return "ok"
        plan = m.group(1).split(",")
        if plan[-1].endswith("*") and n >= len(plan) - 1:
            return plan[-1].rstrip("*")
        return plan[n] if n < len(plan) else "ok"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: FakeOpenAI

    def log_message(self, *args) -> None:   # quiet
        pass

    # ---- plumbing

    def _read_body(self) -> bytes:
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def send_json(self, status: int, obj: Any, headers: dict | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_raw(status, data, headers=headers)

    def send_raw(self, status: int, data: bytes, *, headers: dict | None = None,
                 content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict | None = None) -> None:
        self.send_json(status, {"error": {"message": message, "type": "test_fault", "code": str(status)}},
                       headers)

    # ---- routes

    def do_GET(self) -> None:  # noqa: N802
        st = self.server_state
        if self.path.rstrip("/") == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": st.model, "object": "model"}]})
        elif not st.batches.handle_get(self):
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        st = self.server_state
        body = self._read_body()
        if self.path.rstrip("/") == "/v1/chat/completions":
            self._chat(body)
        elif not st.batches.handle_post(self, body):
            self._error(404, f"no route {self.path}")

    def _chat(self, raw: bytes) -> None:
        st = self.server_state
        st.auth_headers.add(self.headers.get("authorization", ""))
        with st.lock:
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
        try:
            st.count("requests")
            if st.bucket is not None:
                wait = st.bucket.take()
                if wait > 0:
                    st.count("429")
                    self._error(429, "Rate limit reached for requests (test server)", {
                        "retry-after": str(max(1, math.ceil(wait))),
                        "retry-after-ms": str(int(math.ceil(wait * 1000)))})
                    return
            try:
                body = json.loads(raw)
            except ValueError:
                self._error(400, "request body is not JSON")
                return
            prompt = _prompt_text(body)
            action = st.next_action(prompt)
            st.count(action)
            if st.latency_s:
                time.sleep(min(st.latency_s, MAX_SLEEP_S))
            if self._fault(action, body):
                return
            answer = self._answer(body, raw)
            if answer is None:
                return
            with st.lock:
                st.completed_prompts.append(prompt)
            self.send_raw(200, answer)
        finally:
            with st.lock:
                st.in_flight -= 1

    def _answer(self, body: dict, raw: bytes) -> bytes | None:
        st = self.server_state
        if not st.upstream:
            content = st.answer(body) if st.answer else None
            return json.dumps(canned_completion(body, model=st.model, content=content)).encode()
        req = urllib.request.Request(st.upstream.rstrip("/") + "/chat/completions", data=raw,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.read()
        except Exception as exc:  # noqa: BLE001 - report upstream trouble as a 502
            self._error(502, f"upstream failed: {exc}")
            return None

    def _fault(self, action: str, body: dict) -> bool:
        """Play ``action``; True when the request has been answered (or dropped)."""
        st = self.server_state
        if action == "ok":
            return False
        if action == "429":
            self._error(429, "Rate limit reached (injected)", {"retry-after-ms": "50", "retry-after": "1"})
        elif action == "429s":
            self._error(429, "Rate limit reached (injected)", {"retry-after": "1"})
        elif action in ("500", "503"):
            self._error(int(action), "The server had an error (injected)")
        elif action == "400":
            self._error(400, "Invalid request (injected)")
        elif action == "401echo":
            self._error(401, f"Incorrect API key provided: {self.headers.get('authorization', '')}")
        elif action == "timeout":
            time.sleep(st.timeout_sleep_s)
            try:
                self.send_raw(200, json.dumps(canned_completion(body, model=st.model)).encode())
            except OSError:
                pass
        elif action == "truncated":
            data = json.dumps(canned_completion(body, model=st.model)).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif action == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
        elif action == "nonjson":
            self.send_raw(200, b"<html>upstream proxy error</html>")
        elif action == "nondict":
            self.send_json(200, ["not", "a", "completion"])
        elif action == "nochoices":
            self.send_json(200, {"id": "x", "object": "chat.completion", "model": st.model})
        elif action == "prose":
            self.send_json(200, canned_completion(body, model=st.model,
                                                  content="I think the prediction is basically right."))
        elif action == "refusal":
            c = canned_completion(body, model=st.model)
            c["choices"][0]["message"] = {"role": "assistant", "content": None,
                                          "refusal": "I can't help with that."}
            self.send_json(200, c)
        elif action == "echo":
            self.send_json(200, echoed_completion(body, self.headers.get("authorization", "")))
        elif action == "refusalecho":
            c = canned_completion(body, model=st.model)
            c["choices"][0]["message"] = {"role": "assistant", "content": None,
                                          "refusal": f"I will not repeat {self.headers.get('authorization', '')}"}
            self.send_json(200, c)
        else:
            self._error(500, f"unknown injected action {action!r}")
        return True
