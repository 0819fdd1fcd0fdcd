"""kill -9 during judging, then rerun: committed rows kept, no duplicates, the run completes."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import helpers_judging as hj
from vlmdyn_cli.judging import backends
from vlmdyn_cli.judging.run import judge_triples
from vlmdyn_cli.judging.spec import load_spec
from vlmdyn_cli.store.db import upsert_triples

N = 400
CHILD = """
import sys
sys.path.insert(0, {tests!r})
import helpers_judging as hj
from vlmdyn_cli.judging import backends
from vlmdyn_cli.judging.run import judge_triples
from vlmdyn_cli.judging.spec import load_spec
from vlmdyn_cli.store import open_db
backends.BACKENDS["scripted"] = "helpers_judging:ScriptedBackend"
hj.ScriptedBackend.delay_s = 0.02
db = open_db({db!r})
hashes = [r[0] for r in db.conn.execute("SELECT hash FROM triples ORDER BY id")]
judge_triples(db, load_spec({spec!r}), hashes, flush_rows=10, flush_seconds=0.2)
"""


def _count(path) -> int:
    c = sqlite3.connect(path, timeout=30)
    try:
        return c.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]
    finally:
        c.close()


def test_sigkill_then_rerun_completes_without_loss_or_duplicates(db, db_path, tmp_path, monkeypatch):
    spec_path = hj.write_spec(tmp_path)
    with db.atomic():
        hashes = upsert_triples(db, [(f"q{i}", f"a{i}", f"p{i}") for i in range(N)])
    tests_dir = str(Path(__file__).parent)
    script = CHILD.format(tests=tests_dir, db=str(db_path), spec=spec_path)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _count(db_path) < 60:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "child made no progress"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    committed = dict(db.conn.execute("SELECT triple_hash, id FROM judgements"))
    assert 60 <= len(committed) < N

    monkeypatch.setitem(backends.BACKENDS, "scripted", "helpers_judging:ScriptedBackend")
    monkeypatch.setattr(hj.ScriptedBackend, "calls", 0)
    s = judge_triples(db, load_spec(spec_path), hashes)
    assert s.cached == len(committed) and s.new == N - len(committed)
    assert hj.ScriptedBackend.calls == N - len(committed)
    rows = db.conn.execute("SELECT triple_hash, id FROM judgements").fetchall()
    assert len(rows) == N and len({h for h, _ in rows}) == N
    after = dict(rows)
    assert all(after[h] == i for h, i in committed.items())    # committed rows untouched


def test_ctrl_c_says_interrupted_keeps_what_is_stored_and_the_rerun_finishes(db, db_path, tmp_path):
    """SIGINT (Ctrl-C) during `vlmdyn judge`: exit 130 with a short message saying how to continue
    (typer turned it into a silent Exit(130): no message, and the progress line said "done"), the
    judged rows kept, and the same command again judges only the rest."""
    import json

    triples = tmp_path / "t.jsonl"
    triples.write_text("".join(json.dumps({"id": i, "question": f"q{i}", "answer": "a", "prediction": "p"}) + "\n"
                               for i in range(N)))
    spec_path = hj.write_spec(tmp_path)
    boot = ("import sys, runpy; sys.path.insert(0, {tests!r}); import helpers_judging as hj; "
            "from vlmdyn_cli.judging import backends; "
            "backends.BACKENDS['scripted'] = 'helpers_judging:ScriptedBackend'; hj.ScriptedBackend.delay_s = {d}; "
            "sys.argv = ['vlmdyn'] + sys.argv[1:]; runpy.run_module('vlmdyn_cli', run_name='__main__')")
    args = ["judge", "--db", str(db_path), "--input", str(triples), "--judge", spec_path, "--rows", "0"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", boot.format(tests=str(Path(__file__).parent), d=0.02), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while _count(db_path) < 40:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.rstrip().endswith("interrupted: rerun the same command to continue where it stopped")
    assert "Traceback" not in err and " done\n" not in err
    stored = _count(db_path)
    assert 40 <= stored < N
    again = subprocess.run([sys.executable, "-c", boot.format(tests=str(Path(__file__).parent), d=0), *args,
                            "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"{N} items, {stored} cached, {N - stored} judged now" in again.stderr
    rows = db.conn.execute("SELECT triple_hash FROM judgements").fetchall()
    assert len(rows) == len(set(rows)) == N
