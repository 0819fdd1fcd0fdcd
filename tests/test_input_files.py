"""Judged input files are recorded (migration m260_input_files): once per (path, content), in the
transaction of their triples, whatever is killed when; `judgements list --input FILE`; `db merge`."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import helpers_judging as hj

N = 300
CHILD = """
import sys
sys.path.insert(0, {tests!r})
import helpers_judging as hj
from vlmdyn_cli.judging import backends
from vlmdyn_cli.judging.spec import load_spec
from vlmdyn_cli.judging.triples_file import judge_file
from vlmdyn_cli.store import open_db
backends.BACKENDS["scripted"] = "helpers_judging:ScriptedBackend"
hj.ScriptedBackend.delay_s = 0.02
judge_file(open_db({db!r}), {file!r}, load_spec({spec!r}))
"""


def lines(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"x{i}", "question": f"Question {i}?", "answer": f"a{i % 7}", "prediction": f"a{i % 5}"}
            for i in range(start, start + n)]


def write(path: Path, objs) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")
    return path


def rows(db, sql, args=()):
    c = sqlite3.connect(db, timeout=30)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def test_judging_a_file_records_it_once(tmp_path, cli):
    db = tmp_path / "exp.db"
    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps(lines(1)[0]) + "\n\n" + "".join(json.dumps(o) + "\n" for o in lines(2, 1))
                 + json.dumps({"question": "q", "answer": "a", "prediction": "a"}) + "\n", encoding="utf-8")
    for judge in ("rules", "lexical", "rules"):     # a second judge, then the first again (cached)
        assert cli("judge", "--db", db, "--input", f, "--judge", judge, "-q").code == 0
    assert rows(db, "SELECT path, n_rows FROM input_files") == [(str(f), 4)]
    assert rows(db, "SELECT line, item_id FROM input_file_rows ORDER BY line") == [
        (1, "x0"), (3, "x1"), (4, "x2"), (5, "5")]     # the blank line keeps its number; no id: the line number
    assert rows(db, "SELECT count(*) FROM judgements") == [(8,)]
    write(f, lines(2))                                # edited: a new file, the old one stays as it was
    assert cli("judge", "--db", db, "--input", f, "--judge", "rules", "-q").code == 0
    assert rows(db, "SELECT count(*), count(DISTINCT sha256), count(DISTINCT path) FROM input_files") == [(2, 2, 1)]
    assert rows(db, "SELECT count(*) FROM input_file_rows") == [(6,)]
    other = write(tmp_path / "other.jsonl", lines(3, 50))     # a dry run records nothing
    assert cli("judge", "--db", db, "--input", other, "--judge", "rules", "--dry-run", "-q").code == 0
    assert rows(db, "SELECT count(*) FROM input_files") == [(2,)]
    bad = write(tmp_path / "bad.jsonl", [*lines(2, 60), {"question": "q"}])  # bad input: nothing recorded
    r = cli("judge", "--db", db, "--input", bad, "--judge", "rules")
    assert r.code == 2 and "bad.jsonl: line 3" in r.err
    assert rows(db, "SELECT count(*) FROM input_files") == [(2,)]


def test_judgements_list_by_input_file(tmp_path, cli):
    db = tmp_path / "exp.db"
    a = write(tmp_path / "a.jsonl", lines(3))
    b = write(tmp_path / "b.jsonl", lines(2, 10))
    for f in (a, b):
        assert cli("judge", "--db", db, "--input", f, "--judge", "rules", "-q").code == 0
    r = cli("judgements", "list", "--db", db, "--input", b, "--json", "-n", "0")
    assert r.code == 0, r.err
    assert sorted(x["question"] for x in json.loads(r.out)) == ["Question 10?", "Question 11?"]
    moved = tmp_path / "elsewhere" / "copy.jsonl"      # the same content under another path is the same file
    moved.parent.mkdir()
    moved.write_bytes(a.read_bytes())
    r = cli("judgements", "list", "--db", db, "--input", moved, "--json", "-n", "0")
    assert sorted(x["question"] for x in json.loads(r.out)) == ["Question 0?", "Question 1?", "Question 2?"]
    r = cli("judgements", "list", "--db", db, "--input", tmp_path / "nope.jsonl")
    assert r.code == 2 and "nope.jsonl" in r.err and "a.jsonl" in r.err and "Traceback" not in r.err
    r = cli("judgements", "list", "--db", db, "--input", "")
    assert r.code == 2 and "the path is empty" in r.err


def _kill_when(proc, db, ready) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "child made no progress"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def test_kill_then_rerun_neither_loses_nor_duplicates_input_rows(tmp_path):
    from vlmdyn_cli.judging import backends
    from vlmdyn_cli.judging.spec import load_spec
    from vlmdyn_cli.judging.triples_file import judge_file
    from vlmdyn_cli.store import open_db

    db = tmp_path / "exp.db"
    open_db(db).close()
    f = write(tmp_path / "in.jsonl", lines(N))
    spec = hj.write_spec(tmp_path)
    script = CHILD.format(tests=str(Path(__file__).parent), db=str(db), file=str(f), spec=spec)

    def recorded():
        return rows(db, "SELECT (SELECT count(*) FROM input_files), (SELECT count(*) FROM input_file_rows), "
                        "(SELECT count(*) FROM triples), (SELECT count(*) FROM judgements)")[0]

    # killed at once (before or while the file is stored), then while judging, twice
    for ready in (lambda: True, lambda: recorded()[3] >= 40, lambda: recorded()[3] >= 120):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _kill_when(proc, db, ready)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        files, lines_, triples, _ = recorded()
        assert (files, lines_, triples) in ((0, 0, 0), (1, N, N))   # all of the file or none of it
    backends.BACKENDS["scripted"] = "helpers_judging:ScriptedBackend"
    d = open_db(db)
    try:
        judge_file(d, f, load_spec(spec))
    finally:
        d.close()
    assert recorded() == (1, N, N, N)
    assert rows(db, "SELECT count(*) FROM (SELECT DISTINCT file_id, line FROM input_file_rows)") == [(N,)]
    assert rows(db, "SELECT count(*) FROM (SELECT DISTINCT spec_hash, triple_hash FROM judgements)") == [(N,)]
