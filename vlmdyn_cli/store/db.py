"""Opening the experiment database: one SQLite file per experiment."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sqlite3
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator

from sqlite_utils import Database

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.store.integrity import QUICK_CHECK_MAX_BYTES, quick_problems, ro_uri

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
    infer) work on the same file at once. ``readonly=True`` opens the file
    read-only (``mode=ro``: never created, never written; temp tables still
    work) and leaves the journal mode as the file has it: the TUI's readers
    and the read-only commands.
    This function does not create tables or migrate: ``open_db`` does.
    """
    try:
        conn = sqlite3.connect(ro_uri(path) if readonly else str(path), uri=readonly,
                               timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if readonly:
            conn.execute("PRAGMA schema_version").fetchone()  # reads the header: fails here on a non-database
        else:  # the journal mode is stored in the file: only a writer sets it
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = OFF")
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"{path} is not a usable SQLite database: {exc}") from exc
    return conn


def open_db(path: str | os.PathLike | None = None, *, must_exist: bool = False, readonly: bool = False,
            adopt: bool = False) -> Database:
    """Open the experiment database (``--db``, ``$VLMDYN_DB`` or ./vlmdyn.db) through ``connect``.

    A writer (the default) creates a missing file, checks a small existing one
    for damage (``store/integrity.py``) and applies pending migrations under
    the write lock. ``readonly=True`` (list, status, export...) never
    writes: the file must exist and be up to date, and the connection refuses
    writes. Either way a database made by a newer vlmdyn, or a SQLite file with
    someone else's tables (``adopt=True``, i.e. ``vlmdyn db migrate --adopt``,
    turns a foreign one into ours), is refused untouched: BadInput, exit 2.
    """
    p = resolve_db_path(path)
    if p.is_dir():
        raise BadInput(f"--db {p} is a directory, not a database file")
    if p.exists() and not p.is_file():    # SQLite would hang on a FIFO and fail with "disk I/O" on a device
        raise BadInput(f"--db {p} is not a regular file (a pipe or a device), not a database file")
    if (must_exist or readonly) and not p.exists():
        raise BadInput(f"database {p} does not exist (run `vlmdyn data import` first, or pass --db)")
    state = check_ours(p, adopt=adopt)
    if readonly:
        if state.pending:
            raise BadInput(f"{p} was made by an older vlmdyn and needs {len(state.pending)} migration(s) "
                           f"({', '.join(state.pending[:3])}...): run `vlmdyn db migrate --db {p}` first")
        return Database(connect(p, readonly=True))
    if p.exists() and p.stat().st_size <= QUICK_CHECK_MAX_BYTES and (problems := quick_problems(p)):
        raise BadInput(f"{p} is damaged, nothing was written ({'; '.join(problems[:3])}); "
                       f"`vlmdyn db check --db {p}` lists the problems; restore it from a backup")
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    db = Database(connect(p))
    migrate(db, adopt=adopt)
    return db


class DbState:
    """What ``check_ours`` found: the migrations this vlmdyn has that the file lacks."""

    def __init__(self, pending: list[str]):
        self.pending = pending


def check_ours(p: Path, *, adopt: bool = False) -> DbState:
    """Look at a database file without writing to it: refuse a foreign or newer one (BadInput)."""
    from vlmdyn_cli.store.migrations import migrations

    known = [m.name for m in migrations._migrations]
    if not p.exists() or p.stat().st_size == 0:
        return DbState(known)
    try:
        conn = sqlite3.connect(ro_uri(p), uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise BadInput(f"{p} is not a usable SQLite database: {exc}") from exc
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        applied = _applied(conn, tables)
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"{p} is not a usable SQLite database: {exc}") from exc
    finally:
        conn.close()
    if tables and not applied and not adopt:
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise BadInput(f"{p} is a SQLite database but not a vlmdyn experiment database (its tables: {shown}); "
                       f"left untouched. Use another --db, or turn it into one with "
                       f"`vlmdyn db migrate --adopt --db {p}`")
    newer = [n for n in applied if n not in known]
    if newer:
        raise BadInput(f"{p} was made by a newer vlmdyn (schema migrations this version does not know: "
                       f"{', '.join(newer)}); left untouched. Upgrade vlmdyn to use it")
    return DbState([n for n in known if n not in applied])


def up_to_date(p: Path) -> bool:
    """True when ``p`` is a vlmdyn database of exactly this version's schema (for caches of built
    databases, e.g. the benchmarks': anything else is rebuilt)."""
    try:
        return p.is_file() and p.stat().st_size > 0 and not check_ours(p).pending
    except BadInput:
        return False


def _applied(conn: sqlite3.Connection, tables: list[str]) -> list[str]:
    if "_sqlite_migrations" not in tables:
        return []
    return [r[0] for r in conn.execute(
        "SELECT name FROM _sqlite_migrations WHERE migration_set = 'vlmdyn' ORDER BY rowid")]


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

    Inside a transaction the caller already opened (a bulk load such as
    ``testing/synthdb``, which writes everything through the library's writers
    in one transaction), the body joins it: the caller commits or rolls back.
    """
    conn = db.conn if isinstance(db, Database) else db
    if conn.in_transaction:
        yield conn
        return
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


def migrate(db: Database, *, adopt: bool = False) -> list[str]:
    """Apply pending migrations under the write lock; returns the names applied.

    Two processes creating the same new database queue here: the second one
    finds nothing pending once it has the lock. A newer or foreign database is
    refused (see ``check_ours``) before anything is written.
    """
    from vlmdyn_cli.store.migrations import migrations

    if not migrations.pending(db):
        return []
    with immediate(db):
        tables = [r[0] for r in db.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        if tables and not _applied(db.conn, tables) and not adopt:
            raise BadInput("the database is not a vlmdyn experiment database; left untouched")
        pending = [m.name for m in migrations.pending(db)]
        if pending:
            migrations.apply(db)
    return pending


_FIXED_NOW: ContextVar[str | None] = ContextVar("vlmdyn_fixed_now", default=None)


def now() -> str:
    """The timestamp every writer stores (UTC, seconds); inside ``fixed_now(stamp)``, that stamp."""
    return _FIXED_NOW.get() or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@contextmanager
def fixed_now(stamp: str) -> Iterator[str]:
    """Make ``now()`` return ``stamp`` in this thread (fixture databases whose rows must not depend
    on the clock: vlmdyn_cli/testing)."""
    token = _FIXED_NOW.set(stamp)
    try:
        yield stamp
    finally:
        _FIXED_NOW.reset(token)


def sha256_text(*parts: str) -> str:
    """Content hash over several texts (length-prefixed JSON, so no ambiguity)."""
    return hashlib.sha256(json.dumps(list(parts), ensure_ascii=False).encode("utf-8")).hexdigest()


def file_sha256(path: str | Path, reporter=None) -> str:
    """sha256 of a file's bytes, read in 8 MB blocks (progress through ``reporter`` for files of
    256 MB and more: a second or less below that)."""
    from vlmdyn_cli.progress import NullReporter

    path = Path(path)
    size = path.stat().st_size
    if reporter is None or size < (256 << 20):
        reporter = NullReporter()
    h = hashlib.sha256()
    with open(path, "rb") as fh, reporter.task("hashing file", total=max(1, size >> 20), unit="MB") as t:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
            t.advance(len(chunk) >> 20)
    return h.hexdigest()


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
