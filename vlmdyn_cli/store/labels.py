"""Human labels and calibration samples: the rows both `vlmdyn calibrate` and the TUI rater use."""

from __future__ import annotations

LABELS = ("yes", "no")


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
