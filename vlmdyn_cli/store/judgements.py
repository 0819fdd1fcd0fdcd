"""Writing judgements: the judge_specs, judgements and triples tables as the judge runner uses them.

One judgement row per (judge spec hash, triple hash): writing it again updates it
(``ON CONFLICT ... DO UPDATE``), so a rerun never duplicates a row. The caller
batches rows into transactions (``upsert`` writes one batch in one transaction).
Reading judgements for people (list, status, export) is judgement_queries' business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from operator import attrgetter

from sqlite_utils import Database
from vlmdyn_cli.store.db import immediate

CHUNK = 500   # hashes per IN (...) query


@dataclass(slots=True)
class JudgementRow:
    """One row of ``judgements`` (columns in README's schema section), without its id."""

    spec_hash: str
    triple_hash: str
    judge_name: str
    resolved_model: str | None
    status: str                    # scored | unscored
    verdict: str | None            # yes | no, NULL when unscored
    reason: str | None
    decided_by: str | None
    raw: str | None
    ms: int | None
    md: int | None
    h: int | None
    p_yes: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    latency_s: float | None
    created_at: str


COLUMNS = tuple(f.name for f in fields(JudgementRow))
_values = attrgetter(*COLUMNS)
_INSERT = f"INSERT INTO judgements({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
UPSERT_SQL = (_INSERT + "ON CONFLICT(spec_hash, triple_hash) DO UPDATE SET "
              + ", ".join(f"{c}=excluded.{c}" for c in COLUMNS[2:]))
INSERT_NEW_SQL = _INSERT + "ON CONFLICT(spec_hash, triple_hash) DO NOTHING"   # the stored row stands


def register_spec(db: Database, spec_hash: str, name: str, record: dict, created_at: str) -> None:
    """Store a judge spec (everything needed to rebuild it, no secrets) once under its hash."""
    db.conn.execute("INSERT OR IGNORE INTO judge_specs(hash, name, spec_json, created_at) VALUES (?,?,?,?)",
                    (spec_hash, name, json.dumps(record, ensure_ascii=False), created_at))


def upsert(db: Database, rows: list[JudgementRow]) -> None:
    """Write rows in one transaction (a row already stored for its spec and triple is replaced)."""
    with immediate(db):
        db.conn.executemany(UPSERT_SQL, [_values(r) for r in rows])


def insert_new(db: Database, rows) -> int:
    """Write rows whose (spec, triple) has no judgement yet, keeping stored ones (the first verdict
    of a triple stands: a bulk load where identical triples recur); the caller owns the transaction.
    Returns the number of rows added."""
    return db.conn.executemany(INSERT_NEW_SQL, map(_values, rows)).rowcount


def scored_hashes(db: Database, spec_hash: str) -> set[str]:
    """Triples this judge has a scored judgement of: the cache (unscored ones are judged again)."""
    return {r[0] for r in db.conn.execute(
        "SELECT triple_hash FROM judgements WHERE spec_hash = ? AND status = 'scored'", (spec_hash,))}


def scored_row(db: Database, spec_hash: str, triple_hash: str) -> tuple[int, JudgementRow] | None:
    """This judge's scored judgement of one triple, with its row id, or None."""
    row = db.conn.execute(f"SELECT id, {', '.join(COLUMNS)} FROM judgements WHERE spec_hash = ? "
                          "AND triple_hash = ? AND status = 'scored'", (spec_hash, triple_hash)).fetchone()
    return None if row is None else (row[0], JudgementRow(*row[1:]))


def rows_of(db: Database, spec_hash: str, triple_hashes: list[str]) -> dict[str, JudgementRow]:
    """This judge's judgements (scored or not) of the given triples, by triple hash."""
    out: dict[str, JudgementRow] = {}
    for i in range(0, len(triple_hashes), CHUNK):
        chunk = triple_hashes[i:i + CHUNK]
        sql = (f"SELECT {', '.join(COLUMNS)} FROM judgements WHERE spec_hash = ? "
               f"AND triple_hash IN ({','.join('?' * len(chunk))})")
        out.update((r[1], JudgementRow(*r)) for r in db.conn.execute(sql, [spec_hash, *chunk]))
    return out


def fetch_triples(db: Database, hashes: list[str]) -> dict[str, tuple[str, str, str]]:
    """hash -> (question, answer, prediction) of stored triples."""
    out: dict[str, tuple[str, str, str]] = {}
    for i in range(0, len(hashes), CHUNK):
        chunk = hashes[i:i + CHUNK]
        q = f"SELECT hash, question, answer, prediction FROM triples WHERE hash IN ({','.join('?' * len(chunk))})"
        out.update({h: (qq, a, p) for h, qq, a, p in db.conn.execute(q, chunk)})
    return out


def run_triple_hashes(db: Database, run_id: int, sets: list[str] | None = None,
                      checkpoints: list[int] | None = None) -> list[str]:
    """Triple hashes of a run's generations (optionally only those in the named eval sets and at
    the given steps), oldest step first. Generations whose triple is not stored yet get it first."""
    where, args, join = ["g.run_id = ?"], [run_id], ""
    if sets:
        join = ("JOIN eval_set_members m ON m.qa_id = g.qa_id "
                "JOIN eval_sets s ON s.id = m.set_id AND s.run_id = g.run_id")
        where.append(f"s.name IN ({','.join('?' * len(sets))})")
        args += sets
    if checkpoints:
        where.append(f"g.step IN ({','.join('?' * len(checkpoints))})")
        args += list(checkpoints)
    _store_missing_triples(db, run_id)
    sql = (f"SELECT g.triple_hash FROM generations g {join} WHERE {' AND '.join(where)} "
           "GROUP BY g.triple_hash ORDER BY MIN(g.step), MIN(g.id)")
    return [r[0] for r in db.conn.execute(sql, args)]


def eval_set_names(db: Database, run_id: int) -> list[str]:
    return [r[0] for r in db.conn.execute("SELECT name FROM eval_sets WHERE run_id = ? ORDER BY id", (run_id,))]


def _store_missing_triples(db: Database, run_id: int) -> None:
    missing = db.conn.execute(
        "SELECT g.triple_hash, q.question, q.answer, g.prediction FROM generations g "
        "JOIN qa_pairs q ON q.id = g.qa_id LEFT JOIN triples t ON t.hash = g.triple_hash "
        "WHERE g.run_id = ? AND t.hash IS NULL", (run_id,)).fetchall()
    if missing:
        with immediate(db):
            db.conn.executemany("INSERT OR IGNORE INTO triples(hash, question, answer, prediction) "
                                "VALUES (?,?,?,?)", missing)
