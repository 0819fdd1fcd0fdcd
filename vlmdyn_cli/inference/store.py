"""Writing generations: one transaction per batch, never a duplicate row.

``UNIQUE(run_id, step, qa_id)``, a check for rows stored meanwhile and one
``BEGIN IMMEDIATE`` transaction per batch make a rerun, a second process or a
kill -9 safe: a batch is either fully stored or not at all, and what is stored
is skipped next time.
"""

from __future__ import annotations

from contextlib import contextmanager

from sqlite_utils import Database

from vlmdyn_cli.inference.config import GenConfig
from vlmdyn_cli.inference.items import GenItem
from vlmdyn_cli.store.db import immediate, now, upsert_triples


def save_config(db: Database, cfg: GenConfig) -> str:
    with immediate(db):
        db.conn.execute("INSERT OR IGNORE INTO gen_configs(hash, config_json) VALUES (?,?)",
                        [cfg.hash, cfg.to_json()])
    return cfg.hash


def done_qa_ids(db: Database, run_id: int, step: int, config_hash: str | None = None) -> set[int]:
    """QA pairs already answered at this checkpoint (with this config, when given)."""
    sql = "SELECT qa_id FROM generations WHERE run_id = ? AND step = ?"
    args: list = [run_id, step]
    if config_hash is not None:
        sql += " AND gen_config_hash = ?"
        args.append(config_hash)
    return {r[0] for r in db.execute(sql, args)}


@contextmanager
def _immediate(db: Database):
    """A write transaction that takes the write lock up front (waits on the busy timeout)."""
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")


def write_batch(db: Database, run_id: int, step: int, items: list[GenItem], predictions: list[str],
                config_hash: str, backend: str, replace: bool = False) -> int:
    """Store one batch atomically (triples + generations); returns the rows written.

    Rows another writer stored meanwhile are left alone (and their triples not
    added) unless ``replace``, which overwrites them (``--regenerate``).
    """
    if len(items) != len(predictions):
        raise ValueError(f"{len(items)} items but {len(predictions)} predictions")
    ts = now()
    with _immediate(db):
        rows = list(zip(items, predictions))
        if not replace:
            have = {r[0] for r in db.conn.execute(
                f"SELECT qa_id FROM generations WHERE run_id = ? AND step = ? AND qa_id IN "
                f"({','.join('?' * len(items))})", [run_id, step, *(it.qa_id for it in items)])}
            rows = [(it, p) for it, p in rows if it.qa_id not in have]
        hashes = upsert_triples(db, [(it.question, it.answer, p) for it, p in rows])
        db.conn.executemany(
            "INSERT INTO generations(run_id, step, qa_id, prediction, triple_hash, gen_config_hash, "
            "backend, created_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(run_id, step, qa_id) DO UPDATE "
            "SET prediction = excluded.prediction, triple_hash = excluded.triple_hash, "
            "gen_config_hash = excluded.gen_config_hash, backend = excluded.backend, "
            "created_at = excluded.created_at",
            [(run_id, step, it.qa_id, p, h, config_hash, backend, ts) for (it, p), h in zip(rows, hashes)])
    return len(rows)
