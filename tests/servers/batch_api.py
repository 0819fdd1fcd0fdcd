"""The Batch API side of the loopback test server (files + batches), standard library only.

Implements the protocol the `openai` backend relies on:

* ``POST /v1/files`` (multipart: ``purpose=batch`` + ``file``) -> a file object
* ``GET /v1/files/{id}`` and ``GET /v1/files/{id}/content``
* ``POST /v1/batches`` {input_file_id, endpoint, completion_window} -> a batch, ``validating``
* ``GET /v1/batches/{id}``: every retrieve moves the job on: validating -> in_progress
  (or ``failed`` when the input file breaks the rules) -> after ``polls_to_finish``
  retrieves ``completed`` with an output file (and an error file for items whose prompt
  says ``BATCHFAIL``), or ``expired`` with half the items done when ``expire`` is set.
  A prompt saying ``ECHOKEY`` gets the Authorization header the job was created with
  echoed back in its result (the text and model of a success, the message of a failure).
* ``GET /v1/batches`` (newest first) and ``POST /v1/batches/{id}/cancel``

Input validation follows the documented rules: every line a JSON object with a unique
``custom_id``, ``method`` POST, ``url`` equal to the batch endpoint, a ``body`` naming a
model, one model for the whole file.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any


class BatchStore:
    def __init__(self, server: Any, *, polls_to_finish: int = 2, expire: bool = False):
        self.server = server
        self.polls_to_finish, self.expire = polls_to_finish, expire
        self.files: dict[str, dict] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, dict] = {}
        self.polls: dict[str, int] = {}
        self.counts = {"uploads": 0, "creates": 0, "retrieves": 0, "downloads": 0, "cancels": 0}
        self.auth: dict[str, str] = {}           # batch id -> the Authorization header it was created with
        self.lock = threading.Lock()
        self._ids = itertools.count(1)

    # ---- routing (called by the HTTP handler; True when the path was ours)

    def handle_post(self, h: Any, body: bytes) -> bool:
        path = h.path.rstrip("/")
        if path == "/v1/files":
            self._upload(h, body)
        elif path == "/v1/batches":
            self._create(h, body)
        elif m := re.fullmatch(r"/v1/batches/([\w-]+)/cancel", path):
            self._cancel(h, m.group(1))
        else:
            return False
        return True

    def handle_get(self, h: Any) -> bool:
        path = h.path.split("?")[0].rstrip("/")
        if m := re.fullmatch(r"/v1/files/([\w-]+)/content", path):
            fid = m.group(1)
            if fid not in self.contents:
                h._error(404, f"no file {fid}")
            else:
                self.counts["downloads"] += 1
                h.send_raw(200, self.contents[fid], content_type="application/octet-stream")
        elif m := re.fullmatch(r"/v1/files/([\w-]+)", path):
            f = self.files.get(m.group(1))
            h.send_json(200, f) if f else h._error(404, f"no file {m.group(1)}")
        elif m := re.fullmatch(r"/v1/batches/([\w-]+)", path):
            self._retrieve(h, m.group(1))
        elif path == "/v1/batches":
            with self.lock:
                data = [{k: v for k, v in j.items() if k != "lines"} for j in reversed(self.jobs.values())]
            h.send_json(200, {"object": "list", "data": data, "has_more": False,
                              "first_id": data[0]["id"] if data else None,
                              "last_id": data[-1]["id"] if data else None})
        else:
            return False
        return True

    # ---- files

    def _new_file(self, data: bytes, filename: str, purpose: str) -> dict:
        fid = f"file-{next(self._ids)}"
        obj = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
               "filename": filename, "purpose": purpose, "status": "processed"}
        self.files[fid], self.contents[fid] = obj, data
        return obj

    def _upload(self, h: Any, body: bytes) -> None:
        ctype = h.headers.get("content-type", "")
        if "multipart/form-data" not in ctype:
            h._error(400, "files must be uploaded as multipart/form-data")
            return
        msg = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\nMIME-Version: 1.0\r\n\r\n" + body)
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
        if "file" not in fields or fields.get("purpose", (None, b""))[1] != b"batch":
            h._error(400, "expected fields 'file' and purpose=batch")
            return
        filename, data = fields["file"]
        with self.lock:
            self.counts["uploads"] += 1
            obj = self._new_file(data, filename or "upload.jsonl", "batch")
        h.send_json(200, obj)

    # ---- batches

    def _create(self, h: Any, body: bytes) -> None:
        try:
            req = json.loads(body)
        except ValueError:
            h._error(400, "body is not JSON")
            return
        if req.get("completion_window") != "24h":
            h._error(400, "completion_window must be '24h'")
            return
        if req.get("input_file_id") not in self.contents:
            h._error(400, f"no such input file {req.get('input_file_id')!r}")
            return
        with self.lock:
            self.counts["creates"] += 1
            bid = f"batch_{next(self._ids)}"
            job = {
                "id": bid, "object": "batch", "endpoint": req.get("endpoint"),
                "input_file_id": req["input_file_id"], "completion_window": "24h",
                "status": "validating", "created_at": int(time.time()), "errors": None,
                "output_file_id": None, "error_file_id": None, "metadata": req.get("metadata"),
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
            }
            self.jobs[bid], self.polls[bid] = job, 0
            self.auth[bid] = h.headers.get("authorization", "")
        h.send_json(200, job)

    def _cancel(self, h: Any, bid: str) -> None:
        job = self.jobs.get(bid)
        if not job:
            h._error(404, f"no batch {bid}")
            return
        self.counts["cancels"] += 1
        job["status"] = "cancelled"
        h.send_json(200, job)

    def _retrieve(self, h: Any, bid: str) -> None:
        with self.lock:
            job = self.jobs.get(bid)
            if job is None:
                h._error(404, f"no batch {bid}")
                return
            self.counts["retrieves"] += 1
            self.polls[bid] += 1
            self._advance(job, self.polls[bid])
            out = {k: v for k, v in job.items() if k != "lines"}
        h.send_json(200, out)

    def _advance(self, job: dict, polls: int) -> None:
        if job["status"] == "validating":
            lines, problem = self._validate(job)
            if problem:
                job["status"] = "failed"
                job["errors"] = {"object": "list", "data": [problem]}
                return
            job["lines"] = lines
            job["request_counts"]["total"] = len(lines)
            job["status"] = "in_progress"
        elif job["status"] == "in_progress" and polls >= self.polls_to_finish:
            self._finish(job)

    def _validate(self, job: dict) -> tuple[list[dict], dict | None]:
        raw = self.contents[job["input_file_id"]].decode("utf-8", "replace")
        lines, seen, models = [], set(), set()
        for n, text in enumerate(raw.splitlines(), 1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                return [], {"code": "invalid_json_line", "message": "not JSON", "line": n}
            cid = obj.get("custom_id") if isinstance(obj, dict) else None
            if not isinstance(cid, str) or cid in seen:
                return [], {"code": "duplicate_custom_id" if cid in seen else "missing_custom_id",
                            "message": f"bad custom_id {cid!r}", "line": n}
            if obj.get("method") != "POST" or obj.get("url") != job["endpoint"]:
                return [], {"code": "invalid_url", "message": "method must be POST and url the endpoint", "line": n}
            body = obj.get("body")
            if not isinstance(body, dict) or not body.get("model") or not body.get("messages"):
                return [], {"code": "invalid_body", "message": "body needs model and messages", "line": n}
            seen.add(cid)
            models.add(body["model"])
            lines.append(obj)
        if not lines:
            return [], {"code": "empty_file", "message": "no requests", "line": None}
        if len(models) > 1:
            return [], {"code": "mixed_models", "message": "one model per batch", "line": None}
        return lines, None

    def _finish(self, job: dict) -> None:
        from .fake_openai import _prompt_text, canned_completion, echoed_completion

        out, err = [], []
        done_upto = len(job["lines"]) // 2 if self.expire else len(job["lines"])
        for i, line in enumerate(job["lines"]):
            rid = f"batch_req_{job['id']}_{i}"
            body = line["body"]
            if i >= done_upto:
                err.append({"id": rid, "custom_id": line["custom_id"], "response": None,
                            "error": {"code": "batch_expired",
                                      "message": "not executed before the completion window expired"}})
            elif "BATCHFAIL" in _prompt_text(body):
                echo = f" {self.auth[job['id']]}" if "ECHOKEY" in _prompt_text(body) else ""
                err.append({"id": rid, "custom_id": line["custom_id"], "error": None, "response": {
                    "status_code": 500, "request_id": f"req_{i}",
                    "body": {"error": {"message": "injected item failure" + echo, "type": "server_error"}}}})
            else:
                answer = (echoed_completion(body, self.auth[job["id"]]) if "ECHOKEY" in _prompt_text(body)
                          else canned_completion(body, model=self.server.model))
                out.append({"id": rid, "custom_id": line["custom_id"], "error": None, "response": {
                    "status_code": 200, "request_id": f"req_{i}", "body": answer}})
        if out:
            job["output_file_id"] = self._new_file(
                "".join(json.dumps(o) + "\n" for o in out).encode(), "output.jsonl", "batch_output")["id"]
        if err:
            job["error_file_id"] = self._new_file(
                "".join(json.dumps(e) + "\n" for e in err).encode(), "errors.jsonl", "batch_output")["id"]
        job["request_counts"]["completed"] = len(out)
        job["request_counts"]["failed"] = len(err)
        job["status"] = "expired" if self.expire else "completed"
        job["completed_at"] = int(time.time())
