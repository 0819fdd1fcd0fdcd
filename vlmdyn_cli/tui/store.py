"""Database access for the TUI: a small pool of read connections and one writer.

Workers run in threads (``@work(thread=True)``); each borrows a connection
from the pool for one query and gives it back, so page caches stay warm and no
connection is used by two threads at once. Every query is a new read
transaction, so rows written by another process (``vlmdyn judge`` running
meanwhile) appear on the next query: refresh is just "query again". Every
connection comes from ``store.db.connect``, the same function the CLI uses.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from pathlib import Path

from vlmdyn_cli.store.db import connect


class Store:
    def __init__(self, db_path: str | Path):
        self.path = Path(db_path)
        self._pool: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None

    def _keep(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        with self._lock:
            self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def read(self):
        """Borrow a read-only connection (rows as ``sqlite3.Row``) for one query (or a few)."""
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = self._keep(connect(self.path, readonly=True))
            conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            self._pool.put(conn)

    @contextlib.contextmanager
    def rw(self):
        """A fresh read-write connection outside any transaction, for code that manages its own
        (the plots aggregation fills its plot_cells cache); closed afterwards."""
        conn = connect(self.path)
        try:
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def write(self):
        """The single writer connection, inside one transaction (rater labels)."""
        with self._lock:
            if self._writer is None:
                self._writer = connect(self.path)
                self._all.append(self._writer)
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(Exception):
                    conn.close()
            self._all.clear()
            self._writer = None
