"""Measured inference speed (``infer_timings``): written while `infer` runs, read by `infer --dry-run`.

One row per checkpoint load and one per generated batch, with the seconds the
backend took (the database write is not counted). A batch's row is written in
the same transaction as its generations, so the measurements never claim work
that was not stored. The estimate of what is left uses this run's own recent
batches with the same backend, else another run of the same model with that
backend, and says which.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from sqlite_utils import Database

from vlmdyn_cli.store.db import now

RECENT_BATCHES = 200     # the estimate uses at most this many of the latest batches


@dataclass(frozen=True)
class Timer:
    """What every timing row of one inference process shares."""

    run_id: int
    backend: str
    device: str | None
    batch_size: int
    max_new_tokens: int
    shard: str | None

    def write(self, conn: sqlite3.Connection, step: int, kind: str, n_items: int, seconds: float,
              db_seconds: float | None = None) -> None:
        """Insert one row; the caller owns the transaction."""
        conn.execute("INSERT INTO infer_timings(run_id, step, kind, n_items, seconds, db_seconds, backend, device, "
                     "batch_size, max_new_tokens, shard, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                     [self.run_id, step, kind, n_items, seconds, db_seconds, self.backend, self.device,
                      self.batch_size, self.max_new_tokens, self.shard, now()])


@dataclass(frozen=True)
class Speed:
    items_per_s: float           # per process: answers / generation seconds
    load_s: float | None         # mean seconds to load one checkpoint
    n_batches: int
    n_items: int
    source: str                  # which measurements, in words

    def seconds(self, items: int, loads: int) -> float:
        return items / self.items_per_s + loads * (self.load_s or 0.0)


def measured(db: Database, run_id: int, run_name: str, model_id: str, backend: str) -> Speed | None:
    """Throughput of recent batches: this run's, else the latest run of the same model; None if none."""
    for scope, where, args in (
            (f"run {run_name}", "t.run_id = ?", [run_id]),
            (f"another run of model {model_id}", "r.model_id = ? AND t.run_id != ?", [model_id, run_id])):
        batches = db.execute(
            f"SELECT t.n_items, t.seconds, t.device, t.batch_size FROM infer_timings t JOIN runs r ON r.id = t.run_id "
            f"WHERE {where} AND t.backend = ? AND t.kind = 'batch' AND t.seconds > 0 ORDER BY t.id DESC LIMIT ?",
            [*args, backend, RECENT_BATCHES]).fetchall()
        if not batches:
            continue
        n = sum(b[0] for b in batches)
        secs = sum(b[1] for b in batches)
        loads = [r[0] for r in db.execute(
            f"SELECT t.seconds FROM infer_timings t JOIN runs r ON r.id = t.run_id WHERE {where} AND t.backend = ? "
            f"AND t.kind = 'load' ORDER BY t.id DESC LIMIT 20", [*args, backend])]
        devices = ",".join(sorted({str(b[2]) for b in batches}))
        sizes = ",".join(str(s) for s in sorted({b[3] for b in batches if b[3] is not None}))
        return Speed(n / secs, sum(loads) / len(loads) if loads else None, len(batches), n,
                     f"{scope}: {len(batches)} recent batches of {backend} on {devices} (batch size {sizes})")
    return None
