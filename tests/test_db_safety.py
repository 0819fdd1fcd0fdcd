"""The experiment database is refused when it is not ours or newer than us, read-only commands never
write, and concurrent writers (and two processes creating one new database) queue instead of failing."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers_judging import make_run

READ_COMMANDS = [
    ["judgements", "status"],
    ["judgements", "list"],
    ["judgements", "export", "--out", "OUT"],
    ["generations", "list", "--run", "r1"],
    ["runs", "list"],
    ["data", "list"],
    ["db", "schema"],
]


def _args(args: list[str], tmp_path: Path) -> list[str]:
    return [str(tmp_path / "out.jsonl") if a == "OUT" else a for a in args]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _foreign(path: Path) -> Path:
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT)")
    c.execute("INSERT INTO users(email) VALUES ('a@example.org')")
    c.commit()
    c.close()
    return path


def _newer(db_path: Path) -> Path:
    from vlmdyn_cli.store import open_db

    d = open_db(db_path)
    make_run(d)
    d.conn.execute("INSERT INTO _sqlite_migrations(migration_set, name, applied_at) "
                   "VALUES ('vlmdyn', 'm999_from_the_future', '2030-01-01')")
    d.close()
    return db_path


@pytest.mark.parametrize("args", READ_COMMANDS + [["db", "migrate"], ["judge", "--judge", "rules", "--run", "r1"],
                                                  ["calibrate", "sample", "--run", "r1", "--name", "s", "--n", "2", "--out", "OUT"]],
                         ids=lambda a: " ".join(a[:2]))
def test_a_database_from_a_newer_vlmdyn_is_refused_untouched(cli, tmp_path, args):
    p = _newer(tmp_path / "new.db")
    before = _digest(p)
    r = cli(*_args(args, tmp_path), "--db", p)
    assert r.code == 2, r.err
    assert "newer vlmdyn" in r.err and "m999_from_the_future" in r.err and "Traceback" not in r.err
    assert _digest(p) == before


@pytest.mark.parametrize("args", READ_COMMANDS + [["db", "migrate"], ["judge", "--judge", "rules", "--input", "T"],
                                                  ["data", "import", "X"]],
                         ids=lambda a: " ".join(a[:2]))
def test_a_foreign_sqlite_file_is_refused_untouched_by_every_command(cli, tmp_path, args):
    p = _foreign(tmp_path / "app.db")
    triples = tmp_path / "t.jsonl"
    triples.write_text(json.dumps({"question": "q", "answer": "a", "prediction": "a"}) + "\n")
    (tmp_path / "d.json").write_text("[]")
    args = [str(triples) if a == "T" else str(tmp_path / "d.json") if a == "X" else a
            for a in _args(args, tmp_path)]
    before = _digest(p)
    r = cli(*args, "--db", p)
    assert r.code == 2, r.err
    assert "not a vlmdyn experiment database" in r.err and "users" in r.err and "--adopt" in r.err
    assert _digest(p) == before
    c = sqlite3.connect(p)
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"   # not switched to WAL
    assert [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["users"]


def test_adopt_turns_a_foreign_file_into_an_experiment_database_keeping_its_tables(cli, tmp_path):
    p = _foreign(tmp_path / "app.db")
    r = cli("db", "migrate", "--adopt", "--db", p)
    assert r.code == 0, r.err
    c = sqlite3.connect(p)
    names = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"users", "judgements", "datasets"} <= names
    assert c.execute("SELECT email FROM users").fetchall() == [("a@example.org",)]
    assert cli("judgements", "status", "--db", p).code == 0


@pytest.mark.parametrize("args", READ_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_read_commands_never_write(cli, tmp_path, args):
    from vlmdyn_cli.store import open_db

    p = tmp_path / "exp.db"
    d = open_db(p)
    make_run(d)
    d.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    d.close()
    before = _digest(p)
    r = cli(*_args(args, tmp_path), "--db", p)
    assert r.code == 0, r.err
    assert _digest(p) == before
    wal = Path(str(p) + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0    # nothing written to the log either
    missing = tmp_path / "missing.db"
    if args != ["db", "schema"]:
        r = cli(*_args(args, tmp_path), "--db", missing)
        assert r.code == 2 and "does not exist" in r.err
    assert not missing.exists()


def test_a_read_command_on_an_older_database_asks_for_db_migrate(cli, tmp_path):
    from vlmdyn_cli.store import open_db

    p = tmp_path / "old.db"
    open_db(p).close()
    c = sqlite3.connect(p)
    c.execute("DELETE FROM _sqlite_migrations WHERE name = 'm200_judging_rubric_score'")
    c.commit()
    c.close()
    before = _digest(p)
    r = cli("judgements", "status", "--db", p)
    assert r.code == 2 and "vlmdyn db migrate" in r.err and "m200_judging_rubric_score" in r.err
    assert _digest(p) == before


def _vlmdyn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vlmdyn_cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd="/")


def test_processes_creating_one_new_database_at_once_queue_on_the_migrations(tmp_path):
    p = tmp_path / "fresh.db"
    procs = [_vlmdyn("db", "migrate", "--json", "--db", str(p)) for _ in range(6)]
    outs = [(proc.wait(timeout=300), *proc.communicate()) for proc in procs]
    for code, out, err in outs:
        assert code == 0, err
    from vlmdyn_cli.store.migrations import migrations

    c = sqlite3.connect(p)
    names = [r[0] for r in c.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert names == [m.name for m in migrations._migrations]     # each applied exactly once


N_LINES = 3000
N_RECORDS = 40000


def test_two_judges_and_an_import_write_one_database_while_a_reader_polls(tmp_path):
    """Every writer waits for the write lock instead of failing with 'database is locked'."""
    from vlmdyn_cli.store import open_db

    p = tmp_path / "exp.db"
    d = open_db(p)
    make_run(d)
    d.close()
    files = []
    for k in range(2):
        f = tmp_path / f"t{k}.jsonl"
        f.write_text("".join(json.dumps({"question": f"q{k}-{i}", "answer": "red", "prediction": "red"}) + "\n"
                             for i in range(N_LINES)))
        files.append(f)
    records = [{"id": str(i), "conversations": [{"from": "human", "value": f"What is item {i}?"},
                                                {"from": "gpt", "value": f"It is {i}."}]} for i in range(N_RECORDS)]
    data = tmp_path / "d.json"
    data.write_text(json.dumps(records))
    # the import (one long transaction) starts first: the judges' first writes arrive while it holds the lock
    importer = _vlmdyn("data", "import", str(data), "--no-images", "--db", str(p), "--quiet")
    while not Path(str(p) + "-wal").exists() and importer.poll() is None:
        time.sleep(0.05)
    writers = [importer,
               _vlmdyn("judge", "--judge", "rules", "--input", str(files[0]), "--db", str(p), "--quiet"),
               _vlmdyn("judge", "--judge", "lexical", "--input", str(files[1]), "--db", str(p), "--quiet"),
               _vlmdyn("judge", "--judge", "rules", "--run", "r1", "--db", str(p), "--quiet")]
    polls = 0
    while any(w.poll() is None for w in writers):
        r = subprocess.run([sys.executable, "-m", "vlmdyn_cli", "judgements", "status", "--db", str(p), "--json"], cwd="/",
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        polls += 1
        time.sleep(0.2)
    for w in writers:
        out, err = w.communicate()
        assert w.returncode == 0, err
    c = sqlite3.connect(p)
    per_spec = dict(c.execute("SELECT judge_name, COUNT(*) FROM judgements GROUP BY judge_name").fetchall())
    assert per_spec["lexical"] == N_LINES and per_spec["rules"] == N_LINES + 12   # 12 distinct triples in the run
    assert c.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == N_RECORDS + 6
    assert polls >= 1


def _damaged(tmp_path: Path) -> Path:
    """An experiment database with a page in the middle of the triples table overwritten."""
    from vlmdyn_cli.store import open_db
    from vlmdyn_cli.store.db import upsert_triples

    p = tmp_path / "damaged.db"
    d = open_db(p)
    make_run(d)
    with d.atomic():
        upsert_triples(d, [(f"question {i} " * 20, "answer", f"prediction {i}") for i in range(2000)])
    d.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    root = d.conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'triples'").fetchone()[0]
    size = d.conn.execute("PRAGMA page_size").fetchone()[0]
    d.close()
    with open(p, "r+b") as f:
        f.seek((root - 1) * size)
        f.write(b"\x0d" + b"\xff" * 200)
    return p


def test_a_damaged_database_is_found_before_a_writer_writes_and_by_db_check(cli, tmp_path):
    p = _damaged(tmp_path)
    triples = tmp_path / "t.jsonl"
    triples.write_text(json.dumps({"question": "new q", "answer": "a", "prediction": "a"}) + "\n")
    before = _digest(p)
    r = cli("judge", "--judge", "rules", "--input", triples, "--db", p)
    assert r.code == 2 and "damaged" in r.err and "vlmdyn db check" in r.err and "Traceback" not in r.err
    assert _digest(p) == before
    r = cli("db", "check", "--db", p, "--quiet")
    assert r.code == 1 and "damaged" in r.err
    assert _digest(p) == before
    r = cli("db", "check", "--db", tmp_path / "nope.db")
    assert r.code == 2 and "does not exist" in r.err


def test_db_check_passes_an_intact_database(cli, db_path):
    from vlmdyn_cli.store import open_db

    d = open_db(db_path)
    make_run(d)
    d.close()
    r = cli("db", "check", "--db", db_path, "--json", "--quiet")
    assert r.code == 0 and json.loads(r.out)["ok"] is True
    r = cli("db", "check", "--db", db_path, "--full", "--quiet")
    assert r.code == 0 and "ok (integrity_check" in r.out


def test_judges_starting_on_a_new_database_all_finish(tmp_path):
    """(On main before BEGIN IMMEDIATE one of them exited 1 'database is locked' in most trials.)"""
    p = tmp_path / "new.db"
    judges = ("rules", "lexical", "rules")
    files = []
    for k in range(len(judges)):
        f = tmp_path / f"t{k}.jsonl"
        f.write_text("".join(json.dumps({"question": f"q{k}-{i}", "answer": "red", "prediction": "red"}) + "\n"
                             for i in range(N_LINES)))
        files.append(f)
    procs = [_vlmdyn("judge", "--judge", judge, "--input", str(f), "--db", str(p), "--quiet", "--json")
             for judge, f in zip(judges, files)]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert len(out.splitlines()) == N_LINES
    c = sqlite3.connect(p)
    assert dict(c.execute("SELECT judge_name, COUNT(*) FROM judgements GROUP BY judge_name").fetchall()) == \
        {"rules": 2 * N_LINES, "lexical": N_LINES}
