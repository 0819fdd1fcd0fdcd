"""Human labels and calibration samples: the rows both `vlmdyn calibrate` and the TUI rater use."""

from __future__ import annotations

from typing import Iterable, NamedTuple

from vlmdyn_cli.store.db import now

LABELS = ("yes", "no")


class CalibrationItem(NamedTuple):
    """One row of ``calibration_items`` but its created_at (``add_items`` sets it)."""

    sample: str
    item_id: str                 # the id written on the rater sheet
    triple_hash: str
    category: str | None = None
    subcategory: str | None = None
    source: str | None = None    # run:<name>:<step>:<qa_id> or file:<path>


def add_items(conn, items: Iterable[CalibrationItem], *, keep_existing: bool = False,
              created_at: str | None = None) -> None:
    """Write calibration items; the caller owns the transaction. An item id already in its sample is
    an error, or left as stored with ``keep_existing``."""
    verb = "INSERT OR IGNORE" if keep_existing else "INSERT"
    ts = created_at or now()
    conn.executemany(f"{verb} INTO calibration_items(sample, item_id, triple_hash, category, subcategory, source,"
                     " created_at) VALUES (?,?,?,?,?,?,?)", [(*it, ts) for it in items])


def save_label(conn, triple_hash: str, rater: str, label: str, source: str, created_at: str) -> None:
    """Write (or change) one rater's label of one item; the caller owns the transaction.

    ``conn``: a sqlite_utils Database or a sqlite3 connection.
    """
    if label not in LABELS:
        raise ValueError(f"label must be yes or no, got {label!r}")
    conn.execute(
        "INSERT INTO human_labels(triple_hash, rater, label, source, created_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(triple_hash, rater) DO UPDATE SET label = excluded.label, source = excluded.source, "
        "created_at = excluded.created_at", (triple_hash, rater, label, source, created_at))


def samples(conn) -> list[dict]:
    """Every calibration sample with its number of items, by name."""
    return [{"sample": s, "n": n} for s, n in conn.execute(
        "SELECT sample, count(*) FROM calibration_items GROUP BY sample ORDER BY sample").fetchall()]
