"""Batch API jobs of one judge (the ``openai_batches`` table), so a later run resumes them by id.

The judge runner hands a ``BatchJobs`` to the backend; the backend records a job
before creating it (a crash in between cannot leave an unknown paid job) and keeps
its status current. Every write is its own short transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlite_utils import Database

from vlmdyn_cli.store.db import immediate, now


@dataclass
class Job:
    batch_id: str
    status: str
    items: dict[str, str]          # custom_id -> triple hash


class BatchJobs:
    def __init__(self, db: Database, spec_hash: str):
        self.db, self.spec_hash = db, spec_hash

    def open(self, done_status: str) -> list[Job]:
        """This judge's jobs whose status is not ``done_status``, oldest first."""
        rows = self.db.execute(
            "SELECT batch_id, status, items_json FROM openai_batches WHERE spec_hash = ? AND status != ? "
            "ORDER BY created_at, batch_id", [self.spec_hash, done_status]).fetchall()
        return [Job(b, s, json.loads(items)) for b, s, items in rows]

    def add(self, batch_id: str, status: str, items: dict[str, str]) -> None:
        ts = now()
        with immediate(self.db):
            self.db.conn.execute(
                "INSERT INTO openai_batches(batch_id, spec_hash, status, n_items, items_json, created_at, "
                "updated_at) VALUES (?,?,?,?,?,?,?)",
                (batch_id, self.spec_hash, status, len(items), json.dumps(items), ts, ts))

    def update(self, batch_id: str, status: str, new_id: str | None = None) -> None:
        """Set a job's status (and give it its real id, ``new_id``, once the API has made it)."""
        with immediate(self.db):
            self.db.conn.execute("UPDATE openai_batches SET batch_id = ?, status = ?, updated_at = ? "
                                 "WHERE batch_id = ?", (new_id or batch_id, status, now(), batch_id))
