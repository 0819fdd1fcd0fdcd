"""``--batch``: judging through the OpenAI Batch API, resumable across invocations.

The flow for one ``vlmdyn judge ... --batch`` run:

1. **Resume.** Batches recorded in ``openai_batches`` for this spec hash are looked
   at first. One still in flight covers its items (they are not submitted again);
   one already finished whose results include items the runner still asks for
   (a crash between collecting and storing) delivers those results again.
2. **Submit** what no batch covers: one JSONL line per item
   (``custom_id``, ``POST``, ``/v1/chat/completions``, the same body as a live call),
   uploaded with ``purpose=batch``, then a batch with a ``24h`` window. The batch id
   and the ``custom_id -> triple hash`` map are stored at once.
3. **Poll** until every batch ends, or until ``batch_wait`` seconds have passed
   (``0``: submit and return; the same command later collects). Ctrl-C is safe.
4. **Collect**: download the output and error files, map ``custom_id`` back to the
   triple hash and hand each result to the runner (cost at the Batch API's half
   price). Items that failed inside the batch come back with an error (stored
   unscored, resubmitted by the next run).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from vlmdyn_cli.errors import Failure
from vlmdyn_cli.judging.backends.base import JudgeRequest, JudgeResponse
from vlmdyn_cli.store.db import now

if TYPE_CHECKING:
    from vlmdyn_cli.judging.backends.openai_backend import OpenAIBackend

ENDPOINT = "/v1/chat/completions"
WINDOW = "24h"
MAX_PER_BATCH = 50_000            # the Batch API's limit on requests per input file
TERMINAL = {"completed", "failed", "expired", "cancelled"}
RETIRED = "retired"               # finished and nothing of it is still wanted
SUBMITTING = "submitting"         # input file uploaded, job not (known to be) created yet
PENDING = "pending:"              # batch_id prefix of a SUBMITTING row (followed by the file id)


@dataclass
class Tracked:
    batch_id: str
    items: dict[str, str]          # custom_id -> triple hash
    status: str
    counts: dict = field(default_factory=dict)


@dataclass
class BatchState:
    """What a run left in flight (for the CLI's closing note)."""

    in_flight: list[Tracked] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    collected: list[str] = field(default_factory=list)

    def summary(self) -> str | None:
        if not self.in_flight:
            return None
        n = sum(len(t.items) for t in self.in_flight)
        ids = ", ".join(f"{t.batch_id} ({t.status}{_counts(t.counts)})" for t in self.in_flight)
        return (f"{n} items are still in Batch API job(s) {ids}; run the same command again later "
                "to collect them (nothing is submitted twice)")


def _counts(c: dict) -> str:
    if not c or not c.get("total"):
        return ""
    return f", {c.get('completed', 0) + c.get('failed', 0)}/{c['total']} done"


def run_batch(backend: "OpenAIBackend", requests: list[JudgeRequest],
              on_result: Callable[[JudgeResponse], None]) -> BatchState:
    return _BatchRun(backend, requests, on_result).run()


class _BatchRun:
    def __init__(self, backend: "OpenAIBackend", requests: list[JudgeRequest],
                 on_result: Callable[[JudgeResponse], None]):
        self.be, self.s, self.db = backend, backend.s, backend.db
        self.spec_hash = backend.spec_hash
        self.wanted: dict[str, JudgeRequest] = {r.key: r for r in requests}
        self.on_result = on_result
        self.client = backend.sync_client()
        self.state = BatchState()
        self.delivered: set[str] = set()

    # ---- the flow

    def run(self) -> BatchState:
        tracked = self._resume()
        covered = {k for t in tracked for k in t.items.values()} | self.delivered
        todo = [r for k, r in self.wanted.items() if k not in covered]
        todo = self._within_budget(todo)
        for i in range(0, len(todo), MAX_PER_BATCH):
            tracked.append(self._submit(todo[i:i + MAX_PER_BATCH]))
        self._poll(tracked)
        self.state.in_flight = [t for t in tracked if t.status not in TERMINAL]
        return self.state

    def _resume(self) -> list[Tracked]:
        rows = self.db.execute(
            "SELECT batch_id, status, items_json FROM openai_batches WHERE spec_hash = ? AND status != ? "
            "ORDER BY created_at, batch_id", [self.spec_hash, RETIRED]).fetchall()
        tracked: list[Tracked] = []
        for batch_id, status, items_json in rows:
            items = json.loads(items_json)
            if status == SUBMITTING:
                tracked.append(self._finish_submission(batch_id, items))
            elif status in TERMINAL:
                # collected before: deliver again only successes the runner still lacks
                n = None
                if any(k in self.wanted and k not in self.delivered for k in items.values()):
                    n = self._collect(batch_id, items, self._retrieve(batch_id), successes_only=True)
                if n == 0 or n is None and not any(k in self.wanted for k in items.values()):
                    self._set_status(batch_id, RETIRED)   # its successes are all stored already
            else:
                tracked.append(Tracked(batch_id, items, status))
        return tracked

    def _within_budget(self, todo: list[JudgeRequest]) -> list[JudgeRequest]:
        """--max-cost with --batch: submit only what the estimated (half-price) cost allows."""
        if self.s.max_cost_usd is None or not todo:
            return todo
        from vlmdyn_cli.judging import prices
        from vlmdyn_cli.judging.backends.openai_backend import price_of, token_budget

        price = price_of(self.s)
        keep: list[JudgeRequest] = []
        spent = 0.0
        for r in todo:
            chars = len(r.prompt or "") + sum(len(str(m.get("content", ""))) + 8 for m in r.messages)
            est = prices.cost_usd(price, max(1, chars // 4), token_budget(r, self.s) or 64, batch=True) or 0.0
            if spent + est > self.s.max_cost_usd:
                self.on_result(JudgeResponse(
                    key=r.key, extra={"not_sent": True},
                    error=f"not sent: the --max-cost budget of ${self.s.max_cost_usd:.4f} would be exceeded"))
                continue
            spent += est
            keep.append(r)
        return keep

    def _submit(self, chunk: list[JudgeRequest]) -> Tracked:
        from vlmdyn_cli.judging.backends.openai_backend import request_body

        items: dict[str, str] = {}
        lines = []
        for i, r in enumerate(chunk):
            cid = f"{i}-{r.key[:16]}"
            items[cid] = r.key
            lines.append(json.dumps({"custom_id": cid, "method": "POST", "url": ENDPOINT,
                                     "body": request_body(r, self.s)}, ensure_ascii=False))
        data = ("\n".join(lines) + "\n").encode("utf-8")
        f = self._call("upload the batch input file", self.client.files.create,
                       file=(f"vlmdyn-{self.spec_hash[:12]}.jsonl", data, "application/jsonl"), purpose="batch")
        # recorded before the job is created: a crash in between cannot leave an unknown paid job behind
        ts = now()
        with self.db.atomic():
            self.db.conn.execute(
                "INSERT INTO openai_batches(batch_id, spec_hash, status, n_items, items_json, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (PENDING + f.id, self.spec_hash, SUBMITTING, len(items), json.dumps(items), ts, ts))
        b = self._create(f.id, len(items))
        self._adopt(PENDING + f.id, b)
        self.state.submitted.append(b.id)
        return Tracked(b.id, items, b.status or "submitted", _rc(b))

    def _create(self, file_id: str, n: int) -> Any:
        return self._call("create the batch", self.client.batches.create, input_file_id=file_id, endpoint=ENDPOINT,
                          completion_window=WINDOW, metadata={"vlmdyn_spec": self.spec_hash[:16], "items": str(n)})

    def _adopt(self, pending_id: str, b: Any) -> None:
        with self.db.atomic():
            self.db.conn.execute("UPDATE openai_batches SET batch_id = ?, status = ?, updated_at = ? "
                                 "WHERE batch_id = ?", (b.id, b.status or "submitted", now(), pending_id))

    def _finish_submission(self, pending_id: str, items: dict[str, str]) -> Tracked:
        """A run died between uploading and creating: find the job made from that file, or make it now."""
        file_id = pending_id[len(PENDING):]
        page = self._call("list batches", self.client.batches.list, limit=100)
        b = next((x for x in page.data if x.input_file_id == file_id), None)
        if b is None:
            b = self._create(file_id, len(items))
        self._adopt(pending_id, b)
        return Tracked(b.id, items, b.status or "submitted", _rc(b))

    def _poll(self, tracked: list[Tracked]) -> None:
        wait = self.s.batch_wait_s
        deadline = None if wait is None else time.monotonic() + wait
        interval = min(self.s.batch_poll_s, 1.0)
        reporter = self.be.reporter
        while True:
            for t in [t for t in tracked if t.status not in TERMINAL]:
                b = self._retrieve(t.batch_id)
                t.counts = _rc(b)
                if b.status in TERMINAL:
                    if self._collect(t.batch_id, t.items, b, successes_only=False) is not None:
                        t.status = b.status
                        self._set_status(t.batch_id, b.status)
                elif b.status != t.status:
                    t.status = b.status
                    self._set_status(t.batch_id, b.status)
            open_ = [t for t in tracked if t.status not in TERMINAL]
            if not open_:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            if reporter is not None:
                reporter.info("batch: " + ", ".join(f"{t.batch_id} {t.status}{_counts(t.counts)}" for t in open_))
            pause = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
            time.sleep(pause)
            interval = min(interval * 2, self.s.batch_poll_s)

    # ---- collecting

    def _collect(self, batch_id: str, items: dict[str, str], b: Any, *, successes_only: bool) -> int | None:
        """Hand the runner the results of a finished batch: how many; None when the files could not be read."""
        from vlmdyn_cli.judging.backends.openai_backend import (
            MalformedResponse, finish_score_only, one_token_budget, response_from_completion)

        try:
            out_lines = self._download(b.output_file_id)
            err_lines = [] if successes_only else self._download(b.error_file_id)
        except Failure:
            if successes_only:
                return None
            raise
        seen: set[str] = set()
        for line in out_lines + err_lines:
            cid = line.get("custom_id") if isinstance(line, dict) else None
            key = items.get(cid) if isinstance(cid, str) else None
            if key is None or key not in self.wanted or key in self.delivered or key in seen:
                continue
            req = self.wanted[key]
            response = line.get("response") if isinstance(line.get("response"), dict) else None
            status_code = response.get("status_code") if response else None
            resp: JudgeResponse | None = None
            if status_code == 200:
                try:
                    resp = response_from_completion(key, response.get("body"), self.s,
                                                    one_token=one_token_budget(req, self.s), batch=True,
                                                    secret=self.be._key)
                    if req.score_only:
                        finish_score_only(resp)
                except MalformedResponse as exc:
                    resp = JudgeResponse(key=key, error=f"batch item: malformed answer: {exc}")
            elif not successes_only:
                resp = JudgeResponse(key=key, error=self.be.scrub(f"batch {batch_id} item failed: "
                                                                   f"{_item_error(line, status_code)}"))
            if resp is None or (successes_only and resp.error):
                continue
            resp.extra["batch_id"] = batch_id
            seen.add(key)
            self.on_result(resp)
        if not successes_only:
            why = _batch_error(b)
            for key in items.values():
                if key in self.wanted and key not in seen and key not in self.delivered:
                    seen.add(key)
                    self.on_result(JudgeResponse(
                        key=key, extra={"batch_id": batch_id},
                        error=self.be.scrub(f"batch {batch_id} ended '{b.status}' without a result for "
                                            f"this item{why}")))
        self.delivered |= seen
        self.state.collected.append(batch_id)
        return len(seen)

    def _download(self, file_id: str | None) -> list[dict]:
        if not file_id:
            return []
        content = self._call("download the batch results", self.client.files.content, file_id)
        lines = []
        for raw in content.text.splitlines():
            raw = raw.strip()
            if not raw:
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                continue   # an unreadable line: its item ends 'without a result' and is resubmitted later
            if isinstance(obj, dict):
                lines.append(obj)
        return lines

    # ---- plumbing

    def _retrieve(self, batch_id: str) -> Any:
        return self._call(f"poll batch {batch_id}", self.client.batches.retrieve, batch_id)

    def _set_status(self, batch_id: str, status: str) -> None:
        with self.db.atomic():
            self.db.conn.execute("UPDATE openai_batches SET status = ?, updated_at = ? WHERE batch_id = ?",
                                 (status, now(), batch_id))

    def _call(self, what: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """One control-plane call with our retries (429/5xx/timeouts), errors scrubbed of the key."""
        import openai

        from vlmdyn_cli.judging.backends.openai_backend import backoff_s, retry_after_s

        failures = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except openai.APIStatusError as exc:
                retryable = exc.status_code == 429 or exc.status_code >= 500 or exc.status_code in (408, 409)
                problem = f"HTTP {exc.status_code}: {exc.message}"
                delay = retry_after_s(exc.response.headers)
            except openai.APIConnectionError as exc:
                retryable, problem, delay = True, f"{type(exc).__name__}: {exc}", None
            failures += 1
            if not retryable or failures > self.s.max_retries:
                raise Failure(self.be.scrub(f"Batch API: could not {what}: {problem}")) from None
            if delay is None or delay > self.s.retry_after_max_s:
                delay = backoff_s(failures, self.s.backoff_base_s, self.s.backoff_max_s)
            time.sleep(delay)


def _rc(b: Any) -> dict:
    rc = getattr(b, "request_counts", None)
    if rc is None:
        return {}
    return {"total": rc.total, "completed": rc.completed, "failed": rc.failed}


def _item_error(line: dict, status_code: Any) -> str:
    err = line.get("error")
    if isinstance(err, dict) and (err.get("code") or err.get("message")):
        return f"{err.get('code') or 'error'}: {err.get('message') or ''}".strip()
    body = (line.get("response") or {}).get("body") if isinstance(line.get("response"), dict) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return f"HTTP {status_code}: {body['error'].get('message') or body['error']}"
    return f"HTTP {status_code}"


def _batch_error(b: Any) -> str:
    errs = getattr(getattr(b, "errors", None), "data", None) or []
    if not errs:
        return ""
    e = errs[0]
    where = f" (input line {e.line})" if getattr(e, "line", None) else ""
    return f": {getattr(e, 'code', '')} {getattr(e, 'message', '')}{where}".rstrip()
