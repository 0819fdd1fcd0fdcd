"""Test data is made one way: through the pipeline's own writers (vlmdyn_cli/testing), so a schema
change is made once. A fixture helper that writes a table by hand again fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vlmdyn_cli.store.db import fixed_now, immediate, now

ROOT = Path(__file__).resolve().parents[1]

#: tables the library has a writer for (the module fixtures must go through instead)
WRITTEN_BY = {
    "datasets": "store/datasets.py", "images": "store/datasets.py", "conversations": "store/datasets.py",
    "qa_pairs": "store/datasets.py", "runs": "training/runs.py", "run_order": "training/runs.py",
    "metrics": "training/runs.py", "checkpoints": "training/runs.py", "eval_sets": "evalsets/build.py",
    "eval_set_members": "evalsets/build.py", "gen_configs": "inference/store.py",
    "generations": "inference/store.py", "triples": "store/db.py", "judge_specs": "store/judgements.py",
    "judgements": "store/judgements.py", "human_labels": "store/labels.py", "calibration_items": "store/labels.py",
}

#: (file, table): raw writes kept on purpose, each with the reason
ALLOWED = {
    ("tests/helpers_judging.py", "generations"): "generations whose triples are missing (the runner must add them)",
}

_INSERT = re.compile(r"\bINSERT\s+(?:OR\s+\w+\s+)?INTO\s+[\\\[\"`]*(\w+)", re.IGNORECASE)


def hand_writes(text: str) -> list[str]:
    """The tables a source text INSERTs into by hand."""
    return _INSERT.findall(text)


def _fixture_sources() -> list[Path]:
    return sorted([*(ROOT / "tests").glob("helpers_*.py"), *(ROOT / "tests").glob("factories*.py"),
                   *(ROOT / "vlmdyn_cli" / "testing").glob("*.py")])


def test_the_scanner_sees_every_spelling_of_an_insert():
    text = ('c.execute("INSERT INTO runs(name) VALUES (?)")\n'
            "conn.executemany('insert or ignore into [triples](hash) VALUES (?)', rows)\n"
            '"INSERT OR REPLACE INTO \\"checkpoints\\" VALUES (?,?,?,?)"\n'
            "# not a write: SELECT * FROM judgements")
    assert hand_writes(text) == ["runs", "triples", "checkpoints"]


def test_fixture_helpers_write_no_table_the_library_has_a_writer_for():
    files = _fixture_sources()
    assert {p.name for p in files} >= {"helpers_data.py", "helpers_evalsets.py", "helpers_judging.py",
                                      "helpers_tui.py", "factories.py", "synthdb.py"}
    found, bad = set(), []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        for table in hand_writes(path.read_text()):
            if table not in WRITTEN_BY:
                continue
            if (rel, table) in ALLOWED:
                found.add((rel, table))
            else:
                bad.append(f"{rel} writes {table} by hand: use vlmdyn_cli.testing.factories "
                           f"({WRITTEN_BY[table]} writes it)")
    assert bad == []
    assert found == set(ALLOWED), f"allowed exceptions that no longer occur (delete them): {set(ALLOWED) - found}"


def test_every_table_of_the_schema_with_rows_from_the_pipeline_is_listed(db):
    """A new table the pipeline writes must be added above (with its writer) to be guarded."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert set(WRITTEN_BY) <= tables


def test_fixed_now_and_a_writer_joining_the_callers_transaction(db):
    from vlmdyn_cli.testing import factories as f

    with fixed_now("2026-01-01T00:00:00+00:00"):
        assert now() == "2026-01-01T00:00:00+00:00"
    assert now() != "2026-01-01T00:00:00+00:00"
    with pytest.raises(RuntimeError):
        with fixed_now("2026-02-02"), immediate(db):
            ds = f.dataset(db, "toy")                      # joins the open transaction...
            f.conversation(db, ds, 0, [f.qa("q?", "a")])
            assert db.execute("SELECT imported_at FROM datasets").fetchone()[0] == "2026-02-02"
            raise RuntimeError("the owner rolls back")     # ...so the owner's rollback takes it away
    assert [db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("datasets", "qa_pairs")] == [0, 0]
    ds = f.dataset(db, "toy")
    cid, qa_ids = f.conversation(db, ds, 3, [f.qa("q1?", "a1", category="Object"), f.qa("q2?", "a2")])
    assert db.execute("SELECT id, conversation_id, turn, category FROM qa_pairs ORDER BY id").fetchall() == [
        (qa_ids[0], cid, 0, "Object"), (qa_ids[1], cid, 1, None)]
