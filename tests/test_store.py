import sqlite3
import subprocess
import sys

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


def test_reopening_applies_nothing_twice(db_path):
    open_db(db_path).close()
    db = open_db(db_path)
    names = [m.name for m in migrations.applied(db)]
    assert len(names) == len(set(names))


def test_migrating_from_the_first_schema(db_path):
    from sqlite_utils import Database

    d = Database(db_path)
    first = migrations._migrations[0].name
    later = [m.name for m in migrations._migrations[1:]]
    if later:
        migrations.apply(d, stop_before=later[0])
        assert [m.name for m in migrations.applied(d)] == [first]
    d.close()
    full = open_db(db_path)
    assert [m.name for m in migrations.applied(full)] == [m.name for m in migrations._migrations]


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
