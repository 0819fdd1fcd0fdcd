"""Sharded inference: --shard i/N parsing, the partition, N processes on one database, --dry-run."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from helpers_evalsets import build_infer_template
from helpers_procs import reaped
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.inference.config import GenConfig
from vlmdyn_cli.inference.items import load_items
from vlmdyn_cli.inference.runner import InferRequest, dry_run, run_inference
from vlmdyn_cli.sharding import Shard, parse_shard, shard_of
from vlmdyn_cli.store import open_db
from vlmdyn_cli.store.db import Busy, connect, immediate

GEN = ["--max-new-tokens", "4", "--device", "cpu", "-q"]
ROW = "run_id, step, qa_id, prediction, triple_hash, gen_config_hash, backend"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return build_infer_template(tmp_path_factory.mktemp("shards"))


@pytest.fixture(scope="module")
def single(template, tmp_path_factory):
    """The reference: the whole plan answered by one process."""
    path = tmp_path_factory.mktemp("single") / "exp.db"
    shutil.copy(template, path)
    db = open_db(path)
    run_inference(db, InferRequest(run="r1", gen=GenConfig(max_new_tokens=4), device="cpu"))
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")      # tests copy the file
    db.close()
    return path


@pytest.fixture
def exp_db(template, tmp_path):
    path = tmp_path / "exp.db"
    shutil.copy(template, path)
    return path


def rows(path, table="generations", cols=ROW) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return sorted(con.execute(f"SELECT {cols} FROM {table}").fetchall())
    finally:
        con.close()


def count(path, table) -> int:
    return len(rows(path, table, "*"))


def units(path) -> dict[tuple[int, int], str]:
    """(step, qa_id) -> unit key of every unit of the default plan: every distinct set member x every
    checkpoint up to the unseen sets' step."""
    db = open_db(path)
    items = load_items(db, [r[0] for r in db.execute("SELECT DISTINCT qa_id FROM eval_set_members")])
    last = db.execute("SELECT max(json_extract(definition_json, '$.after_step')) FROM eval_sets").fetchone()[0]
    steps = [r[0] for r in db.execute("SELECT step FROM checkpoints WHERE step <= ? ORDER BY step", [last])]
    db.close()
    return {(s, it.qa_id): it.unit_key(s) for s in steps for it in items}


def spawn(db, *args):
    return subprocess.Popen([sys.executable, "-m", "vlmdyn_cli", "infer", "--db", str(db), "--run", "r1", *args],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


# ------------------------------------------------------------------ the split


@pytest.mark.parametrize("text, shard", [("0/1", Shard(0, 1)), ("2/3", Shard(2, 3)), (" 7 / 8 ", Shard(7, 8))])
def test_parse_shard_accepts_i_of_n(text, shard):
    assert parse_shard(text) == shard


@pytest.mark.parametrize("text, says", [
    ("3/2", "must be 0 to 1 for a 2-way split"), ("2/2", "must be 0 to 1"), ("0/0", "at least 1"),
    ("-1/2", "must be 0 to 1"), ("a/b", "takes i/N"), ("1/", "takes i/N"), ("1", "takes i/N"),
    ("1/2/3", "takes i/N"), ("", "takes i/N"), ("1.0/2", "takes i/N")])
def test_parse_shard_refuses_bad_specs_naming_the_flag(text, says):
    with pytest.raises(BadInput, match=says) as e:
        parse_shard(text)
    assert "--shard" in str(e.value)


def test_every_unit_is_in_exactly_one_shard_and_shards_are_even():
    keys = [f"sha-ds:{i}:{t}@{s}" for i in range(3000) for t in range(2) for s in (0, 51, 357, 765, 1275)]
    for n in (1, 3, 8):
        owners = [[i for i in range(n) if Shard(i, n).owns(k)] for k in keys]
        assert all(len(o) == 1 for o in owners)
        sizes = Counter(o[0] for o in owners)
        assert len(sizes) == n and all(abs(v - len(keys) / n) < 0.05 * len(keys) / n for v in sizes.values())
    # The split is a function of the key and N only: recomputing gives the same shard.
    assert [shard_of(k, 8) for k in keys[:500]] == [shard_of(k, 8) for k in keys[:500]]


def test_unit_keys_are_content_not_row_ids(exp_db):
    db = open_db(exp_db)
    it = load_items(db, [db.execute("SELECT min(qa_id) FROM eval_set_members").fetchone()[0]])[0]
    sha, idx, turn = db.execute("SELECT d.source_sha256, c.idx, q.turn FROM qa_pairs q JOIN conversations c "
                                "ON c.id = q.conversation_id JOIN datasets d ON d.id = c.dataset_id WHERE q.id = ?",
                                [it.qa_id]).fetchone()
    assert it.unit_key(357) == f"{sha}:{idx}:{turn}@357" != it.unit_key(51)


# ------------------------------------------------------------------ N processes on one database


@pytest.mark.slow
def test_three_shards_at_once_on_one_database_equal_a_single_process(exp_db, single):
    """3 `vlmdyn infer --shard i/3` processes at once on one file, one of them killed with SIGKILL
    mid-run and rerun: the rows are exactly those of one process answering everything."""
    procs = {i: spawn(exp_db, "--shard", f"{i}/3", "--batch-size", "2", *GEN) for i in range(3)}
    with reaped(*procs.values()):
        deadline = time.monotonic() + 300
        killed = False
        while time.monotonic() < deadline and procs[1].poll() is None:
            con = sqlite3.connect(exp_db, timeout=30)
            n = con.execute("SELECT count(*) FROM infer_timings WHERE shard = '1/3' AND kind = 'batch'").fetchone()[0]
            con.close()
            if n >= 2:
                procs[1].send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.05)
        codes = {i: p.wait(300) for i, p in procs.items()}
    assert killed and codes[1] == -signal.SIGKILL
    assert codes[0] == codes[2] == 0, [p.stderr.read().decode() for p in procs.values()]
    partial = rows(exp_db)
    assert len(partial) < len(rows(single))
    assert set(partial) <= set(rows(single))                  # nothing wrong, nothing twice
    rerun = spawn(exp_db, "--shard", "1/3", *GEN)
    assert rerun.wait(300) == 0, rerun.stderr.read().decode()
    assert rows(exp_db) == rows(single)                       # row by row
    # Each process wrote exactly its own units, and said so in its timing rows.
    key = units(exp_db)
    con = sqlite3.connect(exp_db)
    per_shard = Counter(r[0] for r in con.execute("SELECT shard FROM infer_timings WHERE kind = 'batch'"))
    items = dict(con.execute("SELECT shard, sum(n_items) FROM infer_timings WHERE kind = 'batch' GROUP BY shard"))
    con.close()
    assert set(per_shard) == {"0/3", "1/3", "2/3"}
    want = Counter(shard_of(key[(s, q)], 3) for _, s, q, *_ in rows(single))
    # A batch's timing row commits with its answers: the killed batch in flight left neither.
    assert [items[f"{i}/3"] for i in range(3)] == [want[0], want[1], want[2]]
    assert rows(exp_db, "shard_plans", "stage, n_shards") == [("infer", 3)]


def test_a_shard_answers_only_its_units(exp_db, single):
    res = run_inference(open_db(exp_db), InferRequest(run="r1", gen=GenConfig(max_new_tokens=4), device="cpu",
                                                      shard=Shard(2, 3)))
    key = units(exp_db)
    got = rows(exp_db)
    assert got and all(shard_of(key[(s, q)], 3) == 2 for _, s, q, *_ in got)
    assert set(got) == {r for r in rows(single) if shard_of(key[(r[1], r[2])], 3) == 2}
    assert sum(r["generated"] for r in res) == len(got) and all(r["shard"] == "2/3" for r in res)


def test_a_shard_of_another_split_is_refused_and_writes_nothing(exp_db, cli):
    assert cli("infer", "--db", exp_db, "--run", "r1", "--shard", "0/3", "--checkpoints", "1", *GEN).code == 0
    before = {t: rows(exp_db, t, "*") for t in ("generations", "shard_plans", "infer_timings", "gen_configs")}
    r = cli("infer", "--db", exp_db, "--run", "r1", "--shard", "1/4", "--checkpoints", "1", *GEN)
    assert r.code == 2
    assert "split into 3 shards" in r.err and "--shard 1/4" in r.err and "--shard i/3" in r.err
    assert {t: rows(exp_db, t, "*") for t in before} == before
    # Another plan (other checkpoints) is its own split; --reshard replaces N of this one.
    assert cli("infer", "--db", exp_db, "--run", "r1", "--shard", "1/4", "--checkpoints", "4", *GEN).code == 0
    assert cli("infer", "--db", exp_db, "--run", "r1", "--shard", "1/4", "--checkpoints", "1", "--reshard",
               *GEN).code == 0
    assert sorted(n for (n,) in rows(exp_db, "shard_plans", "n_shards")) == [4, 4]
    # A plain run (no --shard) is never refused: it fills what the shards left.
    assert cli("infer", "--db", exp_db, "--run", "r1", "--checkpoints", "1", *GEN).code == 0


@pytest.mark.parametrize("spec", ["3/2", "0/0", "-1/2", "a/b"])
def test_bad_shard_is_exit_2_before_the_database_is_touched(cli, tmp_path, exp_db, spec):
    missing = tmp_path / "never.db"
    r = cli("infer", "--db", missing, "--run", "r1", "--shard", spec, *GEN)
    assert r.code == 2 and "--shard" in r.err and not missing.exists()
    before = exp_db.read_bytes()
    assert cli("infer", "--db", exp_db, "--run", "r1", "--shard", spec, *GEN).code == 2
    assert exp_db.read_bytes() == before


def test_reshard_needs_shard(cli, exp_db):
    r = cli("infer", "--db", exp_db, "--run", "r1", "--reshard", *GEN)
    assert r.code == 2 and "--reshard only goes with --shard" in r.err


# ------------------------------------------------------------------ --dry-run


def test_dry_run_counts_each_shard_and_estimates_from_measured_batches(exp_db, cli):
    import json

    key = units(exp_db)
    req = InferRequest(run="r1", gen=GenConfig(max_new_tokens=4), device="cpu")
    db = open_db(exp_db)
    plan = dry_run(db, req, shards=3)
    assert plan["speed"] is None and plan["est_wall_seconds"] is None     # nothing measured yet
    assert plan["pending"] == plan["total"] == len(key)
    want = Counter(shard_of(k, 3) for k in key.values())
    assert [r["items"] for r in plan["per_shard"]] == [want[0], want[1], want[2]]
    # Answer one checkpoint, then ask again: that checkpoint is done, the time comes from its batches.
    run_inference(db, InferRequest(run="r1", checkpoints=[4], batch_size=4, gen=GenConfig(max_new_tokens=4),
                                   device="cpu"))
    before = {t: rows(exp_db, t, "*") for t in ("generations", "infer_timings", "shard_plans")}
    r = cli("infer", "--db", exp_db, "--run", "r1", "--dry-run", "--shard", "0/3", "--max-new-tokens", "4", "--json")
    assert r.code == 0, r.err
    plan = json.loads(r.out)
    assert {t: rows(exp_db, t, "*") for t in before} == before           # a dry run writes nothing
    step4 = next(c for c in plan["checkpoints"] if c["step"] == 4)
    assert step4["pending"] == 0 and step4["done"] == step4["items"]
    left = Counter(shard_of(k, 3) for (s, _), k in key.items() if s != 4)
    assert [r["items"] for r in plan["per_shard"]] == [left[0], left[1], left[2]]
    con = sqlite3.connect(exp_db)
    n, secs = con.execute("SELECT sum(n_items), sum(seconds) FROM infer_timings WHERE kind = 'batch'").fetchone()
    load = con.execute("SELECT avg(seconds) FROM infer_timings WHERE kind = 'load'").fetchone()[0]
    con.close()
    assert plan["speed"]["items_per_s"] == round(n / secs, 2)
    for row in plan["per_shard"]:
        assert row["est_seconds"] == round(row["items"] * secs / n + row["loads"] * load, 1)
    assert plan["est_wall_seconds"] == max(r["est_seconds"] for r in plan["per_shard"])
    text = cli("infer", "--db", exp_db, "--run", "r1", "--dry-run", "--shard", "0/3", "--max-new-tokens", "4")
    assert text.code == 0 and "items/s per process" in text.out and "0/3" in text.out


# ------------------------------------------------------------------ writers queue


def test_writers_queue_behind_a_held_write_lock(tmp_path):
    path = tmp_path / "q.db"
    a, b = connect(path), connect(path)
    a.execute("CREATE TABLE t (x)")
    held = threading.Event()

    def hold():
        with immediate(a):
            a.execute("INSERT INTO t VALUES (1)")
            held.set()
            time.sleep(0.6)

    th = threading.Thread(target=hold)
    th.start()
    held.wait(5)
    with pytest.raises(Busy):                   # a short wait gives up ...
        with immediate(b, wait_s=0.1):
            pass
    t0 = time.monotonic()
    with immediate(b):                          # ... the default one queues until the lock is free
        b.execute("INSERT INTO t VALUES (2)")
    assert time.monotonic() - t0 > 0.2
    th.join()
    assert sorted(r[0] for r in b.execute("SELECT x FROM t")) == [1, 2]
    # A failure inside rolls back.
    with pytest.raises(ZeroDivisionError):
        with immediate(b):
            b.execute("INSERT INTO t VALUES (3)")
            1 / 0
    assert not b.in_transaction and b.execute("SELECT count(*) FROM t").fetchone()[0] == 2


# ------------------------------------------------------------------ judge --shard

JROW = "spec_hash, triple_hash, judge_name, status, verdict, reason, decided_by, raw"


def judge_script(db, procs, logs, *judge_args):
    """examples/judge_shards.sh as a user runs it (the venv's vlmdyn first on PATH)."""
    script = Path(__file__).resolve().parents[1] / "examples" / "judge_shards.sh"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOGS": str(logs),
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(script), str(db), "r1", str(procs), "--", *judge_args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_three_judge_shards_at_once_equal_one_judge(single, tmp_path, cli):
    """The default offline cascade (rules, then the fitted lexical judge) split over 3 processes by
    examples/judge_shards.sh: the judgements equal one process's, row by row."""
    import json

    one = tmp_path / "one.db"
    shutil.copy(single, one)
    assert cli("judge", "--db", one, "--run", "r1", "--judge", "cascade", "-q").code == 0
    assert {r[0] for r in rows(one, "judgements", "decided_by")} == {"rules", "lexical"}   # both stages decide
    shared = tmp_path / "shared.db"
    shutil.copy(single, shared)
    r = judge_script(shared, 3, tmp_path / "logs", "--judge", "cascade", "--json", "-q")
    assert r.returncode == 0, r.stderr
    assert rows(shared, "judgements", JROW) == rows(one, "judgements", JROW)
    hashes = {r[0] for r in rows(single, "generations", "triple_hash")}
    assert f"{sum(shard_of(h, 3) == 0 for h in hashes)} new" in r.stdout          # the dry run of shard 0
    for i in range(3):                                 # each process judged exactly its own triples
        s = json.loads((tmp_path / "logs" / f"judge-shared-shard-{i}-of-3.log").read_text())
        assert s["total"] == s["new"] == sum(shard_of(h, 3) == i for h in hashes) > 0
    assert rows(shared, "shard_plans", "stage, n_shards") == [("judge", 3)]
    # Again: every process finds its triples judged, nothing is added.
    before = rows(shared, "judgements", "*")
    assert judge_script(shared, 3, tmp_path / "logs", "--judge", "cascade", "-q").returncode == 0
    assert rows(shared, "judgements", "*") == before
    r = judge_script(shared, 3, tmp_path / "logs", "--model", "x")
    assert r.returncode == 2 and "no --judge given" in r.stderr


@pytest.mark.slow
def test_judge_shards_escalating_to_an_api_judge_killed_and_rerun_equal_one_judge(single, tmp_path, cli,
                                                                                   monkeypatch):
    """A cascade that escalates to an OpenAI-compatible judge (a real HTTP server on loopback): 3
    `judge --shard i/3` processes at once on one file, one killed with SIGKILL after its first
    committed judgements, rerun: the judgements equal one process's, row by row, each triple once."""
    sys.path.insert(0, str(Path(__file__).parent))
    from servers.fake_openai import FakeOpenAI
    from servers.openai_specs import FAKE_KEY

    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    spec = tmp_path / "rules-then-llm.toml"
    spec.write_text('name = "rules-then-llm"\nbackend = "cascade"\nstages = ["rules", "gpt-4o-mini"]\n'
                    '[decoding]\nmin_confidence = 0.8\n')
    one, shared = tmp_path / "one.db", tmp_path / "shared.db"
    for p in (one, shared):
        shutil.copy(single, p)
    hashes = {r[0] for r in rows(single, "generations", "triple_hash")}
    with FakeOpenAI(latency_s=0.03) as srv:
        args = ["--run", "r1", "--judge", str(spec), "--base-url", srv.base_url, "--concurrency", "1", "-q"]
        assert cli("judge", "--db", one, *args).code == 0
        single_calls = srv.counts.get("requests", 0)
        want = rows(one, "judgements", JROW)
        assert {r[6] for r in want} == {"rules", "gpt-4o-mini"} and single_calls > 0
        procs = [subprocess.Popen([sys.executable, "-m", "vlmdyn_cli", "judge", "--db", str(shared), *args,
                                   "--shard", f"{i}/3"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True) for i in range(3)]
        killed = False
        with reaped(*procs):
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and procs[1].poll() is None:
                con = sqlite3.connect(shared, timeout=30)
                mine = sum(shard_of(h, 3) == 1 for (h,) in con.execute("SELECT triple_hash FROM judgements"))
                con.close()
                if mine:
                    procs[1].send_signal(signal.SIGKILL)
                    killed = True
                    break
                time.sleep(0.05)
            codes = [p.wait(300) for p in procs]
        assert killed and codes == [0, -signal.SIGKILL, 0], [p.stderr.read() for p in procs]
        partial = rows(shared, "judgements", JROW)
        assert set(partial) < set(want)                    # nothing wrong, shard 1 unfinished
        assert any(shard_of(r[1], 3) == 1 for r in partial)
        rerun = cli("judge", "--db", shared, *args, "--shard", "1/3", "--json")
        assert rerun.code == 0, rerun.err
    import json

    s = json.loads(rerun.out)
    # (the stages keep their own verdicts too: rows under the rules' and the API judge's spec)
    scored = sum(shard_of(r[1], 3) == 1 and r[2] == "rules-then-llm" and r[3] == "scored" for r in partial)
    left = sum(shard_of(h, 3) == 1 for h in hashes) - scored
    assert s["new"] == left > 0               # the rerun judged only what the kill left (and retried unscored)
    # Row by row; the one difference a kill leaves: an item whose API verdict was stored before the
    # kill but not yet the cascade's row is decided on the rerun from that stored verdict (no new
    # call), and its reason says so ("reused judgement #id of gpt-4o-mini").
    got = rows(shared, "judgements", JROW)
    assert [r[:5] + r[6:] for r in got] == [r[:5] + r[6:] for r in want]
    assert all(g[5] == w[5] or g[5].startswith("reused judgement") for g, w in zip(got, want))
    cascade = [r for r in want if r[2] == "rules-then-llm"]
    assert len(cascade) == len({r[1] for r in cascade}) == len(hashes)


def test_judge_shard_refusals_write_nothing(single, tmp_path, cli):
    db = tmp_path / "exp.db"
    shutil.copy(single, db)
    assert cli("judge", "--db", db, "--run", "r1", "--judge", "rules", "--shard", "0/3", "-q").code == 0
    before = {t: rows(db, t, "*") for t in ("judgements", "shard_plans", "judge_specs")}
    r = cli("judge", "--db", db, "--run", "r1", "--judge", "rules", "--shard", "1/4", "-q")
    assert r.code == 2 and "split into 3 shards" in r.err and "--shard 1/4" in r.err
    for bad, says in (("3/3", "must be 0 to 2"), ("x", "takes i/N"), ("0/0", "at least 1")):
        r = cli("judge", "--db", db, "--run", "r1", "--judge", "rules", "--shard", bad, "-q")
        assert r.code == 2 and says in r.err
    triples = tmp_path / "t.jsonl"
    triples.write_text('{"id": "a", "question": "q", "answer": "a", "prediction": "a"}\n')
    r = cli("judge", "--db", db, "--input", triples, "--judge", "rules", "--shard", "0/2")
    assert r.code == 2 and "--shard splits a run's generations" in r.err
    assert {t: rows(db, t, "*") for t in before} == before
    # A dry run of another split says so and records nothing; the rest of the 3-way split goes through.
    r = cli("judge", "--db", db, "--run", "r1", "--judge", "rules", "--shard", "1/4", "--dry-run")
    assert r.code == 0 and "3-way split" in r.out
    for i in (1, 2):
        assert cli("judge", "--db", db, "--run", "r1", "--judge", "rules", "--shard", f"{i}/3", "-q").code == 0
    assert len(rows(db, "judgements", "*")) == len({r[0] for r in rows(single, "generations", "triple_hash")})
