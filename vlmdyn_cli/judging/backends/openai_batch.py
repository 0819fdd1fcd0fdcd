"""``--batch``: judging through the OpenAI Batch API, resumable across invocations.

The flow for one ``vlmdyn judge ... --batch`` run:

1. **Resume.** This judge's recorded jobs (``BatchJobs``, lent by the runner) are looked
   at first. One still in flight covers its items (they are not submitted again);
   one already finished whose results include items the runner still asks for
   (a crash between collecting and storing) delivers those results again.
2. **Submit** what no batch covers: one JSONL line per item
   (``custom_id``, ``POST``, ``/v1/chat/completions``, the same body as a live call),
   uploaded with ``purpose=batch``, then a batch with a ``24h`` window. The job is
   recorded after the upload and before the create (as ``pending:<file id>``), so a run
   that dies in between finds the job made from that file, or makes it, next time.
3. **Poll** until every batch ends, or until ``batch_wait`` seconds have passed
   (``0``: submit and return; the same command later collects). Ctrl-C is safe.
4. **Collect**: download the output and error files, map ``custom_id`` back to the
   triple hash and hand each result on (cost at the Batch API's half price). Items
   that failed inside the batch come back with an error (stored unscored, resubmitted
   by the next run).

Control-plane calls (upload, create, poll, download) get the SDK's retries; what
still fails stops the run with a Failure (the jobs are recorded: nothing is lost).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from vlmdyn_cli.errors import Failure, require
from vlmdyn_cli.judging.backends.base import Prompt
from vlmdyn_cli.judging.backends.openai_wire import (INSTALL_HINT, MalformedResponse, OpenAIOptions, decode,
                                                     request_body, scrub)
from vlmdyn_cli.judging.verdict import Completion

ENDPOINT = "/v1/chat/completions"
WINDOW = "24h"
MAX_PER_BATCH = 50_000            # the Batch API's limit on requests per input file
TERMINAL = {"completed", "failed", "expired", "cancelled"}
RETIRED = "retired"               # finished and nothing of it is still wanted
SUBMITTING = "submitting"         # input file uploaded, job not (known to be) created yet
PENDING = "pending:"              # batch_id prefix of a SUBMITTING job (followed by the file id)


@dataclass
class Tracked:
    batch_id: str
    items: dict[str, str]          # custom_id -> triple hash
    status: str
    counts: dict = field(default_factory=dict)


def run(prompts: list[Prompt], emit: Callable[[Completion], None], spec, o: OpenAIOptions, key: str,
        jobs, reporter) -> str | None:
    """Judge ``prompts`` through the Batch API; returns a note on what is still in flight (or None)."""
    in_flight = _BatchRun(prompts, emit, spec, o, key, jobs, reporter).run()
    if not in_flight:
        return None
    n = sum(len(t.items) for t in in_flight)
    ids = ", ".join(f"{t.batch_id} ({t.status}{_counts(t.counts)})" for t in in_flight)
    return (f"{n} items are still in Batch API job(s) {ids}; run the same command again later "
            "to collect them (nothing is submitted twice)")


def _counts(c: dict) -> str:
    if not c or not c.get("total"):
        return ""
    return f", {c.get('completed', 0) + c.get('failed', 0)}/{c['total']} done"


class _BatchRun:
    def __init__(self, prompts: list[Prompt], emit, spec, o: OpenAIOptions, key: str, jobs, reporter):
        openai = require("openai", INSTALL_HINT, "the openai judge backend")
        self.emit, self.spec, self.o, self.key = emit, spec, o, key
        self.jobs, self.reporter = jobs, reporter
        self.wanted: dict[str, Prompt] = {p.key: p for p in prompts}
        self.client = openai.OpenAI(api_key=key, base_url=o.base_url, max_retries=o.max_retries,
                                    timeout=openai.Timeout(o.timeout, connect=min(10.0, o.timeout)))
        self.delivered: set[str] = set()

    # ---- the flow

    def run(self) -> list[Tracked]:
        tracked = self._resume()
        covered = {k for t in tracked for k in t.items.values()} | self.delivered
        todo = [p for k, p in self.wanted.items() if k not in covered]
        for i in range(0, len(todo), MAX_PER_BATCH):
            tracked.append(self._submit(todo[i:i + MAX_PER_BATCH]))
        self._poll(tracked)
        return [t for t in tracked if t.status not in TERMINAL]

    def _resume(self) -> list[Tracked]:
        tracked: list[Tracked] = []
        for job in self.jobs.open(RETIRED):
            batch_id, status, items = job.batch_id, job.status, job.items
            if status == SUBMITTING:
                tracked.append(self._finish_submission(batch_id, items))
            elif status in TERMINAL:
                # collected before: deliver again only successes still wanted (a crash before storing)
                n = None
                if any(k in self.wanted and k not in self.delivered for k in items.values()):
                    n = self._collect(batch_id, items, self._retrieve(batch_id), successes_only=True)
                if n == 0 or n is None and not any(k in self.wanted for k in items.values()):
                    self.jobs.update(batch_id, RETIRED)   # its successes are all stored already
            else:
                tracked.append(Tracked(batch_id, items, status))
        return tracked

    def _submit(self, chunk: list[Prompt]) -> Tracked:
        items: dict[str, str] = {}
        lines = []
        for i, p in enumerate(chunk):
            cid = f"{i}-{p.key[:16]}"
            items[cid] = p.key
            lines.append(json.dumps({"custom_id": cid, "method": "POST", "url": ENDPOINT,
                                     "body": request_body(p, self.spec, self.o)}, ensure_ascii=False))
        data = ("\n".join(lines) + "\n").encode("utf-8")
        f = self._call("upload the batch input file", self.client.files.create,
                       file=(f"vlmdyn-{self.jobs.spec_hash[:12]}.jsonl", data, "application/jsonl"), purpose="batch")
        # recorded before the job is created: a crash in between cannot leave an unknown paid job behind
        self.jobs.add(PENDING + f.id, SUBMITTING, items)
        b = self._create(f.id, len(items))
        self.jobs.update(PENDING + f.id, b.status or "submitted", new_id=b.id)
        return Tracked(b.id, items, b.status or "submitted", _rc(b))

    def _create(self, file_id: str, n: int) -> Any:
        return self._call("create the batch", self.client.batches.create, input_file_id=file_id, endpoint=ENDPOINT,
                          completion_window=WINDOW,
                          metadata={"vlmdyn_spec": self.jobs.spec_hash[:16], "items": str(n)})

    def _finish_submission(self, pending_id: str, items: dict[str, str]) -> Tracked:
        """A run died between uploading and creating: find the job made from that file, or make it now."""
        file_id = pending_id[len(PENDING):]
        page = self._call("list batches", self.client.batches.list, limit=100)
        b = next((x for x in page.data if x.input_file_id == file_id), None)
        if b is None:
            b = self._create(file_id, len(items))
        self.jobs.update(pending_id, b.status or "submitted", new_id=b.id)
        return Tracked(b.id, items, b.status or "submitted", _rc(b))

    def _poll(self, tracked: list[Tracked]) -> None:
        wait = self.o.batch_wait
        deadline = None if wait is None else time.monotonic() + wait
        interval = min(self.o.batch_poll, 1.0)
        while True:
            for t in [t for t in tracked if t.status not in TERMINAL]:
                b = self._retrieve(t.batch_id)
                t.counts = _rc(b)
                if b.status in TERMINAL:
                    if self._collect(t.batch_id, t.items, b, successes_only=False) is not None:
                        t.status = b.status
                        self.jobs.update(t.batch_id, b.status)
                elif b.status != t.status:
                    t.status = b.status
                    self.jobs.update(t.batch_id, b.status)
            open_ = [t for t in tracked if t.status not in TERMINAL]
            if not open_:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            self.reporter.info("batch: " + ", ".join(f"{t.batch_id} {t.status}{_counts(t.counts)}" for t in open_))
            pause = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
            time.sleep(pause)
            interval = min(interval * 2, self.o.batch_poll)

    # ---- collecting

    def _collect(self, batch_id: str, items: dict[str, str], b: Any, *, successes_only: bool) -> int | None:
        """Hand on the results of a finished batch: how many; None when the files could not be read."""
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
            response = line.get("response") if isinstance(line.get("response"), dict) else None
            status_code = response.get("status_code") if response else None
            c: Completion | None = None
            if status_code == 200:
                try:
                    c = decode(self.wanted[key], response.get("body"), self.spec, self.o, batch=True)
                except MalformedResponse as exc:
                    c = Completion(key, error=f"batch item: malformed answer: {exc}")
            elif not successes_only:
                c = Completion(key, error=f"batch {batch_id} item failed: {_item_error(line, status_code)}")
            if c is None or (successes_only and c.error):
                continue
            seen.add(key)
            self.emit(c)
        if not successes_only:
            why = _batch_error(b)
            for key in items.values():
                if key in self.wanted and key not in seen and key not in self.delivered:
                    seen.add(key)
                    self.emit(Completion(key, error=f"batch {batch_id} ended '{b.status}' without a result "
                                                    f"for this item{why}"))
        self.delivered |= seen
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

    def _call(self, what: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """One control-plane call (the SDK retries it); a final error is a Failure, scrubbed of the key."""
        import openai

        try:
            return fn(*args, **kwargs)
        except openai.APIStatusError as exc:
            problem = f"HTTP {exc.status_code}: {exc.message}"
        except openai.APIConnectionError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        raise Failure(scrub(f"Batch API: could not {what}: {problem}", self.key))


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
