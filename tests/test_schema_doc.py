"""The README's schema section is generated from the migrations and must not drift."""

from __future__ import annotations

from pathlib import Path

from vlmdyn_cli.readme import SCHEMA_END, SCHEMA_START, section
from vlmdyn_cli.store.schema_doc import parse_create, render_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_schema_section_is_up_to_date():
    text = section(README.read_text(encoding="utf-8"), SCHEMA_START, SCHEMA_END)
    assert text is not None, f"README.md lacks the {SCHEMA_START} ... {SCHEMA_END} markers"
    assert text == render_markdown(), (
        "README.md's schema section is stale: run `python -m vlmdyn_cli.readme README.md`")


def test_markdown_describes_every_table_with_comments():
    md = render_markdown()
    from vlmdyn_cli.store.schema_doc import blank_db

    db = blank_db()
    tables = [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE '%fts%' "
        "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_%' ESCAPE '\\'")]
    assert "qa_pairs" in tables and "judgements" in tables
    for t in tables:
        assert f"### `{t}`" in md
        for col in (r[1] for r in db.execute(f'PRAGMA table_info("{t}")')):
            assert f"| `{col}` |" in md, (t, col)
    assert "| `sha256` | TEXT | NOT NULL UNIQUE | hash of the image bytes: same picture, same row |" in md
    assert "| `question` | TEXT | NOT NULL | with the &lt;image&gt; marker removed |" in md
    assert "The order manifest: what was consumed, when." in md
    assert "Full-text search: `qa_pairs_fts` (FTS5 over question, answer" in md


def test_parse_create_handles_several_columns_per_line_and_constraints():
    comment, cols, cons, comments = parse_create(
        "CREATE TABLE t (   -- a table\n  a INTEGER NOT NULL,  -- first\n  b TEXT, c REAL,\n"
        "  d TEXT DEFAULT (lower('X')),\n  UNIQUE(a, b)\n)")
    assert comment == "a table"
    assert [c[0] for c in cols] == ["a", "b", "c", "d"]
    assert cols[3][1] == "d TEXT DEFAULT (lower('X'))"
    assert cons == ["UNIQUE(a, b)"] and comments == {"a": "first"}


def test_db_schema_markdown_cli(cli, db_path):
    r = cli("db", "schema", "--markdown", "--db", db_path)
    assert r.code == 0 and r.out == render_markdown()
