"""Outputs of judging and calibration under bad luck: a writer killed half-way, two writers of one
file, a sheet that fails after its sample was drawn, a judge that cannot run among several.

Real subprocesses and signals, a real SQLite file filled by the synthetic-experiment writer.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers_procs import reaped

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("VLMDYN_DB", None)
    env.pop("OPENAI_API_KEY", None)
    return env


def _vlmdyn(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vlmdyn_cli", *map(str, args)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _experiment(path: Path, set_size: int) -> Path:
    from vlmdyn_cli.store import open_db
    from vlmdyn_cli.testing.synthdb import fill_synthetic

    d = open_db(path)
    fill_synthetic(d, seeds=2, checkpoints=(51, 357, 765), set_size=set_size, judges=("rules", "gpt-4o-mini"),
                   human_labels=60, total_steps=1000)
    d.close()
    c = sqlite3.connect(path)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return _experiment(tmp_path_factory.mktemp("small") / "exp.db", 40)


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Path:
    """~20k judgements: an export takes a few seconds, long enough to land a signal inside it."""
    return _experiment(tmp_path_factory.mktemp("large") / "exp.db", 400)


def _count(db: Path, sql: str) -> int:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return c.execute(sql).fetchone()[0]
    finally:
        c.close()


def _whole_export(path: Path, n: int) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == n
    ids = [json.loads(line)["id"] for line in lines]          # every line a whole JSON object ...
    assert ids == sorted(ids) and len(set(ids)) == n           # ... each judgement once, in order


def test_two_exports_to_one_file_each_leave_it_whole(large, tmp_path):
    """Two processes exporting to one file at once: each writes its own part, so the file that
    stays is one whole export (on main both wrote into one shared .part: a garbled file and exit 1)."""
    n = _count(large, "SELECT COUNT(*) FROM judgements")
    out = tmp_path / "all.jsonl"
    procs = [_vlmdyn("judgements", "export", "--out", out, "--db", large, "-q") for _ in range(2)]
    with reaped(*procs):
        results = [(p.wait(120), p.stderr.read()) for p in procs]
    for code, err in results:
        assert code == 0, err
    _whole_export(out, n)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.jsonl"]


def test_an_export_killed_half_way_keeps_the_old_file_and_the_rerun_cleans_up(large, tmp_path):
    n = _count(large, "SELECT COUNT(*) FROM judgements")
    out = tmp_path / "all.jsonl"
    out.write_text("the previous export\n")
    p = _vlmdyn("judgements", "export", "--out", out, "--db", large, "-q")
    with reaped(p):
        deadline = time.monotonic() + 60
        while not any(f.name.endswith(".part") and f.stat().st_size > 100_000 for f in tmp_path.iterdir()):
            assert p.poll() is None and time.monotonic() < deadline, "the export ended before it could be killed"
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    assert out.read_text() == "the previous export\n"            # never half of a new one
    assert len([f for f in tmp_path.iterdir() if f.name.endswith(".part")]) == 1
    r = _vlmdyn("judgements", "export", "--out", out, "--db", large, "-q")
    with reaped(r):
        assert r.wait(120) == 0, r.stderr.read()
    _whole_export(out, n)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["all.jsonl"]   # the dead writer's part is gone


class Died(BaseException):
    """The process dying mid-write (not an Exception: nothing in the code under test catches it)."""


def test_a_sample_whose_sheet_died_half_way_is_finished_by_the_same_command(small, tmp_path, cli, monkeypatch):
    """`calibrate sample` stores the sample, then writes the sheet; dying in between used to leave a
    sample the same command refused ("already exists"). Now the rerun finds its own draw and writes
    the sheet, the same as an uninterrupted run."""
    import shutil

    from vlmdyn_cli.calibration import sample as sample_mod

    db, clean = tmp_path / "exp.db", tmp_path / "clean.db"
    shutil.copy(small, db)
    shutil.copy(small, clean)
    args = ["calibrate", "sample", "--run", "synth-s0", "--n", "12", "--name", "pilot", "--seed", "3"]
    ok = cli(*args, "--out", tmp_path / "clean.csv", "--db", clean)
    assert ok.code == 0, ok.err

    real_writer = csv.writer

    def dying_writer(f, *a, **kw):
        w = real_writer(f, *a, **kw)
        rows = []

        class W:
            def writerow(self, row):
                rows.append(row)
                if len(rows) == 6:
                    raise Died()
                return w.writerow(row)
        return W()

    monkeypatch.setattr(sample_mod.csv, "writer", dying_writer)
    sheet = tmp_path / "pilot.csv"
    with pytest.raises(Died):
        cli(*args, "--out", sheet, "--db", db)
    monkeypatch.setattr(sample_mod.csv, "writer", real_writer)
    assert not sheet.exists() and not list(tmp_path.glob("*.part"))
    again = cli(*args, "--out", sheet, "--db", db)
    assert again.code == 0, again.err
    assert sheet.read_text() == (tmp_path / "clean.csv").read_text()
    q = "SELECT COUNT(*) FROM calibration_items WHERE sample = 'pilot'"
    assert _count(db, q) == _count(clean, q) == 12
    other = cli(*args[:-1], "4", "--out", tmp_path / "other.csv", "--db", db)   # another draw, same name
    assert other.code == 2 and "already exists" in other.err and not (tmp_path / "other.csv").exists()


def test_calibrate_report_judges_nothing_when_one_of_its_judges_cannot_run(small, tmp_path, cli, monkeypatch):
    """`calibrate report --judge rules --judge gpt-4o-mini` without a key: exit 2 before the rules judge
    stores anything (on main the rules verdicts were written, then the key was found missing)."""
    import shutil

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    db = tmp_path / "exp.db"
    shutil.copy(small, db)
    before = _count(db, "SELECT COUNT(*) FROM judgements")
    r = cli("calibrate", "report", "--judge", "rules", "--judge", "gpt-4o-mini", "--db", db)
    assert r.code == 2 and "OPENAI_API_KEY" in r.err
    assert _count(db, "SELECT COUNT(*) FROM judgements") == before
    assert _count(db, "SELECT COUNT(*) FROM judge_specs") == _count(small, "SELECT COUNT(*) FROM judge_specs")
    png = cli("calibrate", "report", "--judge", "rules", "--png", db, "--db", db)   # the experiment as --png
    assert png.code == 2 and "SQLite database" in png.err
    assert _count(db, "SELECT COUNT(*) FROM judgements") == before


def test_a_label_file_whose_text_holds_a_unicode_line_separator(small, tmp_path, cli):
    """U+2028 / U+0085 are legal inside a JSON string; the label file is split at newlines only
    (on main it was split there too, and the line was 'not valid JSON')."""
    import shutil

    db = tmp_path / "exp.db"
    shutil.copy(small, db)
    f = tmp_path / "l.jsonl"
    rows = [{"question": f"Read the sign:\u2028line {i}\u0085end", "reference": "stop", "prediction": "stop",
             "rater": "ann", "label": "yes"} for i in range(3)]
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    r = cli("calibrate", "import", f, "--db", db)
    assert r.code == 0, r.err
    assert _count(db, "SELECT COUNT(*) FROM human_labels WHERE rater = 'ann'") == 3
    c = sqlite3.connect(db)
    qs = sorted(q for (q,) in c.execute("SELECT t.question FROM human_labels h JOIN triples t ON t.hash = "
                                        "h.triple_hash WHERE h.rater = 'ann'"))
    c.close()
    assert qs == sorted(r["question"] for r in rows)


def test_an_import_that_waited_for_the_lock_does_not_overwrite_a_label_stored_meanwhile(small, tmp_path):
    """Two `calibrate import`s of one rater with opposite labels: the one that waited for the write
    lock must see the label the other stored meanwhile and refuse (exit 2), not overwrite it (on main
    the conflict check read the labels before taking the lock)."""
    import shutil

    db = tmp_path / "exp.db"
    shutil.copy(small, db)
    h = _count(db, "SELECT triple_hash FROM human_labels ORDER BY triple_hash LIMIT 1")
    q = sqlite3.connect(db)
    question, answer, prediction = q.execute("SELECT question, answer, prediction FROM triples WHERE hash = ?",
                                             [h]).fetchone()
    q.close()
    f = tmp_path / "zoe.jsonl"
    f.write_text(json.dumps({"question": question, "reference": answer, "prediction": prediction,
                             "rater": "zoe", "label": "yes"}) + "\n")
    other = sqlite3.connect(db, timeout=30, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")        # another import holds the lock and stores zoe's 'no' ...
    other.execute("INSERT INTO human_labels(triple_hash, rater, label, source, created_at) "
                  "VALUES (?, 'zoe', 'no', 'other.csv', '2026-01-01')", [h])
    p = _vlmdyn("calibrate", "import", f, "--db", db)
    with reaped(p):
        time.sleep(4)                        # ... while this one reads the labels and waits for the lock
        other.execute("COMMIT")
        other.close()
        code, err = p.wait(60), p.stderr.read()
    assert code == 2 and "already labelled this item 'no'" in err, err
    assert _count(db, f"SELECT label = 'no' FROM human_labels WHERE rater = 'zoe' AND triple_hash = '{h}'") == 1


@pytest.mark.parametrize("args, unit", [
    (["judgements", "status"], "judgements/s"),
    (["judgements", "export", "--out", "{tmp}/all.jsonl"], "rows/s"),
    (["plot", "all", "--judge", "rules", "--out", "{tmp}/figs"], "figures/s"),
    (["report", "--judge", "rules", "--out", "{tmp}/r.html"], "figures/s"),
])
def test_commands_that_take_seconds_on_a_paper_scale_database_show_progress(small, tmp_path, cli, args, unit):
    """On 825k judgements `judgements status` took 7.5 s and `report` 5 s without a line of progress:
    each now reports its work with a rate (the line that closes a task carries the rate and the ETA)."""
    r = cli(*[a.replace("{tmp}", str(tmp_path)) for a in args], "--db", small)
    assert r.code == 0, r.err
    line = next((x for x in reversed(r.err.splitlines()) if unit in x), None)   # the closing line
    assert line is not None and " ETA " in line and line.endswith(" done"), r.err


def test_an_output_that_is_a_pipe_or_a_symlink_is_written_through_not_replaced(small, tmp_path, cli):
    """`--out` a FIFO (or /dev/stdout, a device) is written in place: renaming a file over it replaced
    the node itself (as root, `--out /dev/stdout` replaced /dev/stdout). A symlink stays a link and
    its target gets the export (on main the link was replaced by a file)."""
    import stat
    import threading

    n = _count(small, "SELECT COUNT(*) FROM judgements")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    r = cli("judgements", "export", "--out", fifo, "--db", small)
    assert r.code == 0, r.err
    reader.join(30)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)                  # still the pipe
    assert got and len(got[0].splitlines()) == n
    (tmp_path / "real").mkdir()
    link = tmp_path / "latest.jsonl"
    link.symlink_to(tmp_path / "real" / "export.jsonl")
    r = cli("judgements", "export", "--out", link, "--db", small)
    assert r.code == 0, r.err
    assert link.is_symlink() and len((tmp_path / "real" / "export.jsonl").read_text().splitlines()) == n
    assert not [p for p in tmp_path.rglob("*.part")]
