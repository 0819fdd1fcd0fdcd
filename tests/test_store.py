import ast
import hashlib
import inspect
import subprocess
import sys
import textwrap

from vlmdyn_cli.store.db import open_db, schema_sql, triple_hash, upsert_triples
from vlmdyn_cli.store.migrations import migrations


def test_blank_db_gets_every_migration_in_order(db_path):
    db = open_db(db_path)
    applied = [m.name for m in migrations.applied(db)]
    assert applied == [m.name for m in migrations._migrations]
    assert applied == sorted(applied)  # names are ordered by their prefix
    mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    for table in ("datasets", "images", "conversations", "qa_pairs", "runs", "run_order",
                  "checkpoints", "eval_sets", "eval_set_members", "generations", "triples",
                  "judgements", "judge_specs", "human_labels", "calibration_items"):
        assert db[table].exists(), table


# Every migration that has shipped, with a fingerprint of its source (docstring left out). A database
# that applied a migration never runs it again, so editing one silently splits databases into two
# schemas (m170 was edited after databases had applied it; m190 repairs that). Append a new migration
# instead, and add its line here (the failure message prints it).
SHIPPED_MIGRATIONS = {
    "m001_data": "ef157c9f298092f7",
    "m002_training": "ddfb5e9a52f249e0",
    "m003_evalsets_generations": "4d6dc81e6dc9c64e",
    "m004_judging": "500ace8771f567e7",
    "m005_calibration": "6698890a2f27e853",
    "m101_data_fts_update_of_text": "bf7e55a57e033d1a",
    "m170_tui_browse_indexes": "8a9eaef6d9a4cae6",
    "m180_plots_cells_cache": "2290bbb6980f6370",
    "m181_plots_judgement_cover": "0c376c9db2c7ad73",
    "m190_tui_drop_superseded_indexes": "f4ec4c6f5932f346",
    "m200_judging_rubric_score": "dfe9b0f03141770a",
    "m220_runs_owner": "0bfe6a92a66803ac",
    "m230_select_plans": "346b32a8e48e893c",
    "m240_tui_browse_rows": "88b3e30a4c601d34",
    "m250_shards": "67df47ee3b85bacf",
    "m260_input_files": "ea05f0ae1630c7ab",
}


def _fingerprint(source: str) -> str:
    """sha256 of a migration function's source lines (trailing spaces and the docstring left out)."""
    source = textwrap.dedent(source)
    lines = source.splitlines()
    first = ast.parse(source).body[0].body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        del lines[first.lineno - 1:first.end_lineno]
    return hashlib.sha256("\n".join(line.rstrip() for line in lines).encode()).hexdigest()[:16]


def test_shipped_migrations_are_never_edited_renamed_or_reordered():
    current = {m.name: _fingerprint(inspect.getsource(m.fn)) for m in migrations._migrations}
    assert list(current)[:len(SHIPPED_MIGRATIONS)] == list(SHIPPED_MIGRATIONS), \
        "a shipped migration was renamed, removed or reordered: append new ones at the end"
    edited = [name for name, fp in SHIPPED_MIGRATIONS.items() if current[name] != fp]
    assert not edited, f"shipped migration(s) edited: {edited}; revert and append a new migration instead"
    new = [f'    "{name}": "{fp}",' for name, fp in current.items() if name not in SHIPPED_MIGRATIONS]
    assert not new, "new migration(s): once merged, record them in SHIPPED_MIGRATIONS:\n" + "\n".join(new)


def test_the_fingerprint_changes_with_the_code_not_with_the_docstring():
    one = 'def m(db):\n    """Make t."""\n    db.execute("CREATE TABLE t (x)")\n'
    reworded = 'def m(db):\n    """Make the table t,\n    with one column."""\n    db.execute("CREATE TABLE t (x)")  \n'
    changed = 'def m(db):\n    """Make t."""\n    db.execute("CREATE TABLE t (x, y)")\n'
    assert _fingerprint(one) == _fingerprint(reworded) != _fingerprint(changed)


def _schema(conn) -> dict:
    """Everything that defines the schema: tables (FTS and its shadow tables too), indexes and triggers
    with their SQL, and each table's columns and each index's columns as SQLite reports them."""
    objects = sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall(), key=str)
    names = lambda kind: [r[1] for r in objects if r[0] == kind]  # noqa: E731
    return {
        "objects": objects,
        "columns": {t: conn.execute(f"PRAGMA table_xinfo('{t}')").fetchall() for t in names("table")},
        "indexes": {i: conn.execute(f"PRAGMA index_xinfo('{i}')").fetchall() for i in names("index")},
    }


def test_upgrading_step_by_step_gives_the_schema_of_a_fresh_database(tmp_path):
    from sqlite_utils import Database

    fresh = open_db(tmp_path / "fresh.db")
    names = [m.name for m in migrations._migrations]
    old = Database(tmp_path / "old.db")
    migrations.apply(old, stop_before=names[1])
    assert [m.name for m in migrations.applied(old)] == names[:1]
    with old.conn:      # a database of the first schema holds data
        old.conn.execute("INSERT INTO datasets(name, source_path, source_sha256, imported_at) "
                         "VALUES ('d', 'x.json', '0', 'now')")
        old.conn.execute("INSERT INTO conversations(dataset_id, idx, n_turns) VALUES (1, 0, 1)")
        old.conn.execute("INSERT INTO qa_pairs(dataset_id, conversation_id, turn, question, answer) "
                         "VALUES (1, 1, 0, 'What colour is the kite?', 'red')")
    assert _schema(old.conn) != _schema(fresh.conn)
    for k in range(2, len(names) + 1):            # one migration at a time
        migrations.apply(old, stop_before=names[k] if k < len(names) else None)
        assert [m.name for m in migrations.applied(old)] == names[:k]
    old.close()
    upgraded = open_db(tmp_path / "old.db")       # the normal way in: nothing left to apply
    assert _schema(upgraded.conn) == _schema(fresh.conn)
    hits = upgraded.execute("SELECT answer FROM qa_pairs_fts WHERE qa_pairs_fts MATCH 'kite'").fetchall()
    assert hits == [("red",)]


def test_triples_are_content_addressed(db):
    with db.conn:
        h1 = upsert_triples(db, [("q", "a", "p"), ("q", "a", "p2")])
        h2 = upsert_triples(db, [("q", "a", "p")])
    assert h1[0] == h2[0] == triple_hash("q", "a", "p")
    assert db.execute("select count(*) from triples").fetchone()[0] == 2
    # no ambiguity between field boundaries
    assert triple_hash("ab", "c", "") != triple_hash("a", "bc", "")


def test_schema_is_printable(db):
    sql = schema_sql(db)
    assert "CREATE TABLE qa_pairs" in sql and "CREATE TABLE judgements" in sql


def test_help_imports_no_heavy_module():
    code = (
        "import sys\n"
        "from vlmdyn_cli.cli.app import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch','transformers','llama_cpp','textual','matplotlib') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    last = out.stdout.strip().splitlines()[-1]
    assert not any(m in last.split(",") for m in ("torch", "transformers", "llama_cpp", "textual", "matplotlib")), last


def test_version_and_exit_codes(cli):
    r = cli("--version")
    assert r.code == 0 and "vlmdyn" in r.out
    r = cli("no-such-command")
    assert r.code == 2
