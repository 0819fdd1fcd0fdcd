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
