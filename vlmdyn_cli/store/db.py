"""Opening the experiment database: one SQLite file per experiment."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlite_utils import Database

from vlmdyn_cli.errors import BadInput

DEFAULT_DB = "vlmdyn.db"
BUSY_TIMEOUT_MS = 30_000


def resolve_db_path(path: str | os.PathLike | None) -> Path:
    """--db PATH, else $VLMDYN_DB, else ./vlmdyn.db."""
    if path:
        return Path(path)
    return Path(os.environ.get("VLMDYN_DB") or DEFAULT_DB)


def connect(path: str | os.PathLike, *, readonly: bool = False) -> sqlite3.Connection:
    """The one way to open a connection to an experiment database (CLI, TUI, plots cache).

    Autocommit mode (``isolation_level=None``: callers open their own
    transactions), usable from worker threads, a busy timeout, WAL journal and
    ``synchronous=NORMAL``, so readers (plots, the TUI) and a writer (judge,
    infer) work on the same file at once. ``readonly=True`` makes the
    connection refuse every write (``PRAGMA query_only``) and leaves the
    journal mode as the file has it: the TUI's readers.
    This function does not create tables or migrate: ``open_db`` does.
    """
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if readonly:
            conn.execute("PRAGMA query_only = 1")
            conn.execute("PRAGMA schema_version").fetchone()  # reads the header: fails here on a non-database
        else:  # the journal mode is stored in the file: only a writer sets it
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = OFF")
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"{path} is not a usable SQLite database: {exc}") from exc
    return conn


def open_db(path: str | os.PathLike | None = None, *, must_exist: bool = False) -> Database:
    """Open the experiment database (``--db``, ``$VLMDYN_DB`` or ./vlmdyn.db) through ``connect``,
    creating it and applying pending migrations."""
    p = resolve_db_path(path)
    if must_exist and not p.exists():
        raise BadInput(f"database {p} does not exist (run `vlmdyn data import` first, or pass --db)")
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    db = Database(connect(p))
    migrate(db)
    return db


class Busy(BadInput):
    """Another connection held the write lock for longer than the caller was willing to wait."""


@contextmanager
def immediate(db: Database | sqlite3.Connection, wait_s: float | None = None) -> Iterator[sqlite3.Connection]:
    """One write transaction that takes the write lock when it starts (``BEGIN IMMEDIATE``).

    A deferred transaction that reads first and writes later cannot wait for
    another writer in WAL mode: it fails at once with "database is locked".
    Taken up front, the lock is waited for on the busy timeout, so concurrent
    writers (several ``infer --shard`` processes on one file) queue instead of
    failing. Keep the body short: every other writer waits for it. Rolled back
    on any exception (Ctrl-C included); yields the connection.

    ``wait_s`` waits that long instead of the busy timeout and raises ``Busy``
    when the lock is not free by then (for work that must not queue behind a
    long writer).
    """
    conn = db.conn if isinstance(db, Database) else db
    if wait_s is None:
        conn.execute("BEGIN IMMEDIATE")
    else:
        conn.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise Busy(str(exc)) from exc
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(db: Database) -> list[str]:
    """Apply pending migrations; returns the names applied."""
    from vlmdyn_cli.store.migrations import migrations

    pending = [m.name for m in migrations.pending(db)]
    if pending:
        migrations.apply(db)
    return pending


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def sha256_text(*parts: str) -> str:
    """Content hash over several texts (length-prefixed JSON, so no ambiguity)."""
    return hashlib.sha256(json.dumps(list(parts), ensure_ascii=False).encode("utf-8")).hexdigest()


def triple_hash(question: str, answer: str, prediction: str) -> str:
    """Key of a (question, reference answer, prediction) triple."""
    return sha256_text(question, answer, prediction)


def upsert_triples(db: Database, rows: list[tuple[str, str, str]]) -> list[str]:
    """Insert triples (ignoring ones already stored); returns their hashes in order.

    The caller owns the transaction.
    """
    hashes = [triple_hash(q, a, p) for q, a, p in rows]
    db.conn.executemany(
        "INSERT OR IGNORE INTO triples(hash, question, answer, prediction) VALUES (?,?,?,?)",
        [(h, q, a, p) for h, (q, a, p) in zip(hashes, rows)],
    )
    return hashes


def stored_columns(conn: sqlite3.Connection, table: str) -> str:
    """The comma-separated columns of ``main.table`` that an INSERT takes (generated ones left out:
    ``SELECT *`` would include them), for copying rows between attached files."""
    return ", ".join(r[1] for r in conn.execute(f"PRAGMA main.table_info({table})"))


def schema_sql(db: Database) -> str:
    """The schema as SQL, tables in creation order (FTS shadow tables left out)."""
    rows = db.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND type IN ('table','index') "
        "AND name NOT LIKE '%_fts_%' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
    ).fetchall()
    return ";\n\n".join(r[0] for r in rows) + ";\n"
