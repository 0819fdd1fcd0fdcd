"""`vlmdyn db export` and `vlmdyn db merge`: node databases out, generations and judgements back in.

Most tests use a synthetic experiment (rows written straight into the tables, answers made up
but stored through the real write path); the end-to-end test runs real tiny checkpoints.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing

import pytest

from helpers_evalsets import add_run, build_infer_template, make_experiment
from helpers_procs import reaped
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.evalsets import build
from vlmdyn_cli.inference.config import GenConfig
from vlmdyn_cli.inference.items import load_items
from vlmdyn_cli.inference.store import save_config, write_batch
from vlmdyn_cli.progress import RecordingReporter
from vlmdyn_cli.store import open_db
from vlmdyn_cli.store import merge as merge_mod
from vlmdyn_cli.store.db import schema_sql
from vlmdyn_cli.store.export import export
from vlmdyn_cli.store.identity import generations_by_content
from vlmdyn_cli.store.runs import get_run

JUDGE_ROW = "spec_hash, triple_hash, judge_name, status, verdict, reason, decided_by, raw, ms, md, h, p_yes"


def query(path, sql, args=()) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return sorted(con.execute(sql, args).fetchall(), key=repr)
    finally:
        con.close()


def generations(path) -> list[tuple]:
    """Every generation by content (run name, step, QA pair key, answer, hashes): comparable across files."""
    with closing(sqlite3.connect(path)) as con:
        return generations_by_content(con)


def judgements(path) -> list[tuple]:
    return query(path, f"SELECT {JUDGE_ROW} FROM judgements")


def dump(path) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def answer(qa_id: int, step: int) -> str:
    """A made-up answer, right for some pairs and wrong for others (the rules judge says yes or no)."""
    return f"answer {qa_id % 6}" if (qa_id + step) % 3 else f"something else {step}"


def fill(path, run: str, steps, shard=None, batch: int = 50):
    """Store answers for every set member of ``run`` at ``steps`` through the real write path."""
    from vlmdyn_cli.sharding import Shard

    db = open_db(path)
    r = get_run(db, run)
    qa = [x[0] for x in db.execute("SELECT DISTINCT m.qa_id FROM eval_set_members m JOIN eval_sets s "
                                   "ON s.id = m.set_id WHERE s.run_id = ?", [r.id])]
    items = load_items(db, qa)
    cfg = save_config(db, GenConfig(max_new_tokens=4))
    for step in steps:
        mine = [it for it in items if shard is None or Shard(*shard).owns(it.unit_key(step))]
        for i in range(0, len(mine), batch):
            b = mine[i:i + batch]
            write_batch(db, r.id, step, b, [answer(it.qa_id, step) for it in b], cfg, "hf")
    db.close()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A target database: two runs on one dataset, sets built, no generations yet."""
    root = tmp_path_factory.mktemp("transfer")
    db = open_db(root / "exp.db")
    exp = make_experiment(db, n_conv=160, n_images=60)
    kept = [r[0] for r in db.execute("SELECT id FROM conversations WHERE kept = 1")]
    add_run(db, exp.dataset_id, kept, name="r2", seed=5)
    for name in ("r1", "r2"):
        run = get_run(db, name)
        build.build(db, run, build.plan(run, run.eval_steps, 12, 12, ["pair"], None, 0))
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return root / "exp.db"


@pytest.fixture
def target(synthetic, tmp_path):
    path = tmp_path / "exp.db"
    shutil.copy(synthetic, path)
    return path


def steps_of(path, run="r1") -> list[int]:
    return [r[0] for r in query(path, "SELECT c.step FROM checkpoints c JOIN runs r ON r.id = c.run_id "
                                      "WHERE r.name = ?", [run])]


# ------------------------------------------------------------------ export


def test_export_copies_what_a_node_needs_and_nothing_else(target, tmp_path, cli):
    fill(target, "r1", steps_of(target)[:2])
    assert cli("judge", "--db", target, "--run", "r1", "--judge", "rules", "-q").code == 0
    node = tmp_path / "node.db"
    r = cli("db", "export", "--run", "r1", "--out", node, "--db", target, "--json")
    assert r.code == 0, r.err
    counts = json.loads(r.out)["rows"]
    assert schema_sql(open_db(node)) == schema_sql(open_db(target))
    run_id = query(target, "SELECT id FROM runs WHERE name = 'r1'")[0][0]
    for table, where in (("runs", "id = ?"), ("run_order", "run_id = ?"), ("checkpoints", "run_id = ?"),
                         ("eval_sets", "run_id = ?"),
                         ("eval_set_members", "set_id IN (SELECT id FROM eval_sets WHERE run_id = ?)")):
        want = query(target, f"SELECT * FROM {table} WHERE {where}", [run_id])
        assert want and query(node, f"SELECT * FROM {table}") == want, table
        assert counts[table] == len(want)
    members = query(target, "SELECT DISTINCT q.* FROM qa_pairs q JOIN eval_set_members m ON m.qa_id = q.id "
                            "JOIN eval_sets s ON s.id = m.set_id WHERE s.run_id = ?", [run_id])
    assert query(node, "SELECT * FROM qa_pairs") == members              # the sets' pairs only
    assert len(members) < query(target, "SELECT count(*) FROM qa_pairs")[0][0]
    convs = query(target, "SELECT * FROM conversations WHERE id IN (SELECT conversation_id FROM run_order WHERE "
                          "run_id = ?) OR id IN (SELECT conversation_id FROM qa_pairs WHERE id IN (SELECT qa_id FROM "
                          "eval_set_members m JOIN eval_sets s ON s.id = m.set_id WHERE s.run_id = ?))",
                  [run_id, run_id])
    assert query(node, "SELECT * FROM conversations") == convs
    assert query(node, "SELECT name FROM runs") == [("r1",)]
    for table in ("generations", "triples", "judgements", "shard_plans"):
        assert query(node, f"SELECT count(*) FROM {table}") == [(0,)], table
    # The node database is a working experiment database.
    assert cli("sets", "list", "--run", "r1", "--db", node).code == 0
    # With --judgements: the run's generations, their triples and judgements.
    node2 = tmp_path / "node2.db"
    assert cli("db", "export", "--run", "r1", "--out", node2, "--db", target, "--judgements", "-q").code == 0
    assert generations(node2) == generations(target) != []
    assert judgements(node2) == judgements(target) != []


def test_export_refusals_write_nothing(target, tmp_path, cli):
    out = tmp_path / "node.db"
    r = cli("db", "export", "--run", "nope", "--out", out, "--db", target)
    assert r.code == 2 and "unknown run 'nope'" in r.err and not out.exists()
    assert not list(tmp_path.glob("node.db*"))
    out.write_text("keep me")
    r = cli("db", "export", "--run", "r1", "--out", out, "--db", target)
    assert r.code == 2 and "exists" in r.err and out.read_text() == "keep me"
    assert cli("db", "export", "--run", "r1", "--out", out, "--db", target, "--force", "-q").code == 0
    assert query(out, "SELECT name FROM runs") == [("r1",)]
    r = cli("db", "export", "--run", "r1", "--out", target, "--db", target, "--force")
    assert r.code == 2 and "is the database being exported" in r.err


# A node process killed with committed rows still only in its WAL (SQLite has not checkpointed them yet).
KILLED_WRITER = """
import os, signal, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("PRAGMA wal_autocheckpoint = 0")
con.execute("UPDATE runs SET name = 'from-the-old-wal'")
con.commit()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_export_force_over_a_killed_node_database_does_not_inherit_its_wal(target, tmp_path, cli):
    """--force replaces a node database whose process was killed mid-write: its leftover WAL must not be
    read into the new file (on main it was: the fresh export showed the old node's rows)."""
    node = tmp_path / "node.db"
    assert cli("db", "export", "--run", "r1", "--out", node, "--db", target, "-q").code == 0
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(node)])
    assert killed.returncode == -signal.SIGKILL
    assert os.path.getsize(f"{node}-wal") > 0          # the kill left the WAL behind
    r = cli("db", "export", "--run", "r1", "--out", node, "--db", target, "--force", "-q")
    assert r.code == 0, r.err
    assert query(node, "SELECT name FROM runs") == [("r1",)]
    assert query(node, "PRAGMA integrity_check") == [("ok",)]
    assert dump(node) != [] and query(node, "SELECT count(*) FROM run_order") == query(
        target, "SELECT count(*) FROM run_order o JOIN runs r ON r.id = o.run_id WHERE r.name = 'r1'")


# ------------------------------------------------------------------ merge


def nodes(target, tmp_path, n=3, runs=("r1",)) -> list:
    out = []
    for i in range(n):
        p = tmp_path / f"node{i}.db"
        export(target, p, list(runs))
        out.append(p)
    return out


def test_merge_brings_back_node_rows_exactly_and_twice_changes_nothing(target, tmp_path, cli):
    steps = steps_of(target)
    direct = tmp_path / "direct.db"
    shutil.copy(target, direct)
    fill(direct, "r1", steps)
    fill(direct, "r2", steps_of(direct, "r2")[:2])
    assert cli("judge", "--db", direct, "--run", "r1", "--judge", "rules", "-q").code == 0
    assert cli("judge", "--db", direct, "--run", "r2", "--judge", "rules", "-q").code == 0
    ns = nodes(target, tmp_path, 3, runs=("r1", "r2"))
    for i, node in enumerate(ns):
        fill(node, "r1", steps, shard=(i, 3))
        if i == 1:
            fill(node, "r2", steps_of(direct, "r2")[:2])
        assert cli("judge", "--db", node, "--run", "r1", "--judge", "rules", "-q").code == 0
    assert cli("judge", "--db", ns[1], "--run", "r2", "--judge", "rules", "-q").code == 0
    rep = RecordingReporter()
    reports = merge_mod.merge(target, ns, reporter=rep)
    assert generations(target) == generations(direct)        # row by row, by content
    assert judgements(target) == judgements(direct)
    n_gen = len(generations(direct))
    assert sum(r.added.get("generations", 0) for r in reports) == n_gen
    assert sum(r.added.get("judgements", 0) for r in reports) == len(judgements(direct))
    assert all(not any(r.conflicts.values()) for r in reports)
    assert ("start", "merge node0.db", sum(query(ns[0], f"SELECT count(*) FROM {t}")[0][0]
                                           for t in ("triples", "generations", "judgements"))) in rep.events
    # Again, through the CLI: nothing added, not one byte of the target's rows changed.
    before = dump(target)
    r = cli("db", "merge", *ns, "--into", target, "--json")
    assert r.code == 0, r.err
    again = json.loads(r.out)
    assert [sum(x["added"].values()) for x in again] == [0, 0, 0]
    assert sum(x["unchanged"]["generations"] for x in again) == n_gen
    assert dump(target) == before


def test_merge_keeps_the_targets_rows_and_scored_replaces_unscored(target, tmp_path):
    step = steps_of(target)[1]
    node = nodes(target, tmp_path, 1)[0]
    fill(node, "r1", [step])
    fill(target, "r1", [step])
    # One answer differs in the target: a conflict, the target's answer stays.
    con = sqlite3.connect(target)
    qa = con.execute("SELECT min(qa_id) FROM generations").fetchone()[0]
    con.execute("UPDATE generations SET prediction = 'other', triple_hash = 'x' WHERE qa_id = ? AND step = ?",
                [qa, step])
    con.commit()
    con.close()
    # A judgement unscored in the target, scored in the node.
    spec = ("spec1", "judge", "{}", "t")
    th = query(node, "SELECT triple_hash FROM generations ORDER BY id LIMIT 1")[0][0]
    for path, status, verdict in ((target, "unscored", None), (node, "scored", "yes")):
        con = sqlite3.connect(path)
        con.execute("INSERT INTO judge_specs VALUES (?,?,?,?)", spec)
        con.execute("INSERT INTO judgements(spec_hash, triple_hash, judge_name, status, verdict, created_at) "
                    "VALUES ('spec1', ?, 'judge', ?, ?, 't')", [th, status, verdict])
        con.commit()
        con.close()
    rep = merge_mod.merge(target, [node])[0]
    assert rep.conflicts == {"generations": 1} and "kept the target's" in rep.examples[0]
    assert query(target, "SELECT prediction FROM generations WHERE qa_id = ? AND step = ?", [qa, step]) == [("other",)]
    assert rep.replaced == {"judgements": 1}
    assert query(target, "SELECT status, verdict FROM judgements WHERE triple_hash = ?", [th]) == [("scored", "yes")]


def _edit(path, *sql):
    con = sqlite3.connect(path)
    for s in sql:
        con.execute(s)
    con.commit()
    con.close()


def _other_experiment(tmp_path):
    p = tmp_path / "other.db"
    db = open_db(p)
    make_experiment(db, dataset="another", n_conv=40, n_images=10, seed=3, name="r9")
    db.close()
    return p


BAD_SOURCES = {
    "newer schema": (lambda n, t: _edit(n, "INSERT INTO _sqlite_migrations(migration_set, name, applied_at) "
                                           "VALUES ('vlmdyn', 'm999_from_the_future', 't')"),
                     "was made by a newer vlmdyn (schema migrations this version does not know: m999_from_the_future)"),
    "older schema": (lambda n, t: _edit(n, "DELETE FROM _sqlite_migrations WHERE name = 'm250_shards'"),
                     "was made by an older vlmdyn and needs 1 migration(s) (m250_shards...): run `vlmdyn db migrate"),
    "not vlmdyn": (lambda n, t: (n.unlink(), _edit(n, "CREATE TABLE x (y)")),
                   "is a SQLite database but not a vlmdyn experiment database"),
    "not sqlite": (lambda n, t: (n.unlink(), n.write_text("hello\n" * 100)), "is not a usable SQLite database"),
    "another experiment": (lambda n, t: shutil.copy(_other_experiment(t), n),
                           "is from another experiment: none of its runs (r9) is in exp.db"),
    "another manifest": (lambda n, t: _edit(n, "UPDATE run_order SET step = step + 1 WHERE conversation_id = "
                                               "(SELECT min(conversation_id) FROM run_order)"),
                         "run 'r1' is not the same run as in exp.db (order manifest"),
    "another seed": (lambda n, t: _edit(n, "UPDATE runs SET seed = 42"), "seed 42 vs 0"),
    "another set member": (lambda n, t: _edit(n, "UPDATE eval_set_members SET rank = rank + 100 WHERE set_id = "
                                                 "(SELECT id FROM eval_sets WHERE name = 'unseen-pair')"),
                           "set 'unseen-pair' of run 'r1' differs from exp.db's (members"),
    "a set the target lacks": (lambda n, t: _edit(n, "UPDATE eval_sets SET name = 'unseen-new' WHERE name = 'unseen-pair'"),
                               "set 'unseen-new' of run 'r1' is not in exp.db"),
    "a run the target lacks": (lambda n, t: _edit(n, "INSERT INTO runs(name, dataset_id, seed, model_id, config_json, "
                                                     "out_dir, status, total_steps, global_batch, checkpoint_steps_json, "
                                                     "created_at) SELECT 'node-only', dataset_id, 1, 'tiny', '{}', '/x', "
                                                     "'done', 1, 1, '[]', 't' FROM runs"),
                               "run 'node-only' is not in exp.db"),
    "an edited question": (lambda n, t: _edit(n, "UPDATE qa_pairs SET question = 'edited' WHERE id = "
                                                 "(SELECT min(qa_id) FROM generations)"),
                           "differs from exp.db's (members"),
    "an answer to a pair the target lacks": (lambda n, t: _edit(
        n, "INSERT INTO qa_pairs(dataset_id, conversation_id, turn, question, answer) SELECT dataset_id, "
           "conversation_id, 99, 'q', 'a' FROM qa_pairs LIMIT 1",
        "INSERT INTO generations(run_id, step, qa_id, prediction, triple_hash, gen_config_hash, backend, created_at) "
        "SELECT 1, 5, max(id), 'p', 'h', (SELECT hash FROM gen_configs), 'hf', 't' FROM qa_pairs"),
        "answers 1 QA pairs the target does not have as they are: conversation"),
    "a damaged triple": (lambda n, t: _edit(n, "UPDATE triples SET prediction = 'tampered' WHERE id = 1"),
                         "does not hash to its texts"),
}


@pytest.mark.parametrize("case", list(BAD_SOURCES))
def test_merge_refuses_a_bad_source_and_leaves_the_target_unchanged(case, target, tmp_path, cli):
    good, bad = nodes(target, tmp_path, 2)
    fill(good, "r1", steps_of(target)[:1])
    fill(bad, "r1", steps_of(target)[1:2])
    edit, says = BAD_SOURCES[case]
    edit(bad, tmp_path)
    before = dump(target)
    r = cli("db", "merge", good, bad, "--into", target)
    assert r.code == 2, (r.out, r.err)
    assert says in r.err, r.err
    assert dump(target) == before                  # nothing of the good file either: one transaction


def test_merge_usage_errors(target, tmp_path, cli):
    node = nodes(target, tmp_path, 1)[0]
    foreign = tmp_path / "foreign.db"
    _edit(foreign, "CREATE TABLE notes (x)")
    before = dump(foreign)
    r = cli("db", "merge", node, "--into", foreign)
    assert r.code == 2 and "foreign.db is a SQLite database but not a vlmdyn experiment database" in r.err and dump(foreign) == before
    _edit(target, "INSERT INTO _sqlite_migrations(migration_set, name, applied_at) VALUES ('vlmdyn', 'm999_x', 't')")
    before = dump(target)
    r = cli("db", "merge", node, "--into", target)
    assert r.code == 2 and "exp.db was made by a newer vlmdyn" in r.err and dump(target) == before
    _edit(target, "DELETE FROM _sqlite_migrations WHERE name = 'm999_x'")
    r = cli("db", "merge", node, "--into", tmp_path / "missing.db")
    assert r.code == 2 and "does not exist" in r.err and not (tmp_path / "missing.db").exists()
    r = cli("db", "merge", target, "--into", target)
    assert r.code == 2 and "is the target database itself" in r.err
    r = cli("db", "merge", tmp_path / "nope.db", "--into", target)
    assert r.code == 2 and "nope.db does not exist" in r.err


def test_merge_refuses_while_another_merge_writes(target, tmp_path):
    """A second merge while the first one is inside its transaction: refused, the target ends up as
    the first merge alone leaves it."""
    a, b = nodes(target, tmp_path, 2)
    fill(a, "r1", steps_of(target)[:2])
    fill(b, "r1", steps_of(target)[2:3])
    expected = tmp_path / "expected.db"
    shutil.copy(target, expected)
    merge_mod.merge(expected, [a])
    second: dict = {}

    class StartSecond(RecordingReporter):
        def _start(self, h):
            if not second:
                second["thread"] = threading.Thread(target=self.run_second)
                second["thread"].start()
                second["thread"].join()

        @staticmethod
        def run_second():
            try:
                merge_mod.merge(target, [b], lock_wait=0.3)
                second["error"] = None
            except BadInput as exc:
                second["error"] = str(exc)

    merge_mod.merge(target, [a], reporter=StartSecond())
    assert "is being written by another process" in second["error"] and "unchanged" in second["error"]
    assert generations(target) == generations(expected) and dump(target) == dump(expected)


def test_merge_killed_mid_transaction_leaves_the_target_as_before(target, tmp_path, cli):
    """kill -9 of a real `vlmdyn db merge` inside its transaction, then the same merge again."""
    node = nodes(target, tmp_path, 1)[0]
    fill(node, "r1", range(1000, 1400), batch=500)       # many answers: a merge that takes a while
    expected = tmp_path / "expected.db"
    shutil.copy(target, expected)
    merge_mod.merge(expected, [node])
    before = dump(target)
    proc = subprocess.Popen([sys.executable, "-m", "vlmdyn_cli", "db", "merge", str(node), "--into", str(target),
                             "-q"], env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wal = target.with_name(target.name + "-wal")
    locked_at = None
    with reaped(proc):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if locked_at is None:
                con = sqlite3.connect(target, timeout=0, isolation_level=None)
                try:
                    con.execute("BEGIN IMMEDIATE")
                    con.execute("ROLLBACK")
                except sqlite3.OperationalError:
                    locked_at = wal.stat().st_size if wal.exists() else 0   # the merge holds the write lock
                finally:
                    con.close()
            elif wal.exists() and wal.stat().st_size > locked_at + 200_000:
                break                                                       # ... and is writing pages
            time.sleep(0.01)
        assert proc.poll() is None, "the merge ended before it could be killed: " + proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert locked_at is not None
    assert dump(target) == before
    assert cli("db", "merge", node, "--into", target, "-q").code == 0
    assert generations(target) == generations(expected) and dump(target) == dump(expected)


# ------------------------------------------------------------------ end to end on real checkpoints


@pytest.mark.slow
def test_cluster_recipe_three_nodes_merged_back_equal_a_single_process(tmp_path_factory, cli):
    """examples/cluster.sh as a user runs it, 3 "nodes" at once on this machine (CPU, hf backend):
    export 3 node databases, `infer --shard k/3` and the rules judge on each, merge them back.
    Generations, then judgements, equal a single process's, row by row."""
    from pathlib import Path

    root = tmp_path_factory.mktemp("cluster")
    target = build_infer_template(root)
    single = root / "single.db"
    shutil.copy(target, single)
    gen = ["--max-new-tokens", "4"]
    assert cli("infer", "--db", single, "--run", "r1", "--device", "cpu", "-q", *gen).code == 0
    assert cli("judge", "--db", single, "--run", "r1", "--judge", "rules", "-q").code == 0
    script = str(Path(__file__).resolve().parents[1] / "examples" / "cluster.sh")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BACKEND": "hf", "DEVICE": "cpu", "JUDGE": "rules -q",
           "JUDGE_PROCS": "2",
           "LOGS": str(root / "logs"), "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}

    def sh(*args, **kw):
        return subprocess.Popen(["bash", script, *map(str, args)], env=env, cwd=root, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, **kw)

    p = sh("export", target, 3, "r1", root / "nodes")
    assert p.wait(300) == 0, p.stderr.read()
    nodes = [root / "nodes" / f"node{k}.db" for k in range(3)]
    procs = [sh("node", nodes[k], k, 3, "r1", 1, "--", *gen) for k in range(3)]
    for p in procs:
        assert p.wait(900) == 0, p.stderr.read() + "".join(f.read_text() for f in (root / "logs").glob("*.log"))
    p = sh("merge", target, "r1", *nodes)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert generations(target) == generations(single)
    assert judgements(target) == judgements(single)
    total = len(generations(single))
    assert f"r1: 0 of {total} (checkpoint, QA pair) units left" in out
    logs = sorted(f.name for f in (root / "logs").glob("*.log"))
    assert logs == sorted([f"infer-shard-{k}-of-3.log" for k in range(3)]
                          + [f"judge-node{k}-shard-{p}-of-2.log" for k in range(3) for p in range(2)])
    assert query(nodes[0], "SELECT stage, n_shards FROM shard_plans") == [("infer", 3), ("judge", 2)]


def test_merge_carries_judged_input_files_and_twice_changes_nothing(target, tmp_path, cli):
    """A node that judged an input file: the file's record and lines come back with its judgements,
    matched by (path, sha256) and (file, line); merging again adds nothing."""
    node = nodes(target, tmp_path, 1)[0]
    f = tmp_path / "extra.jsonl"
    f.write_text("".join(json.dumps({"id": f"e{i}", "question": f"Q{i}?", "answer": "yes", "prediction": p}) + "\n"
                         for i, p in enumerate(["yes", "no", "yes"])), encoding="utf-8")
    assert cli("judge", "--db", node, "--input", f, "--judge", "rules", "-q").code == 0
    assert cli("judge", "--db", target, "--input", f, "--judge", "lexical", "-q").code == 0  # the target has it too
    other = tmp_path / "only-node.jsonl"
    other.write_text(json.dumps({"question": "Q9?", "answer": "no", "prediction": "no"}) + "\n", encoding="utf-8")
    assert cli("judge", "--db", node, "--input", other, "--judge", "rules", "-q").code == 0
    [rep] = merge_mod.merge(target, [node])
    assert rep.added.get("input_files") == 1 and rep.unchanged.get("input_files") == 1
    assert rep.added.get("input_file_rows") == 1 and rep.unchanged.get("input_file_rows") == 3
    lines = "SELECT f.path, f.sha256, x.line, x.item_id, x.triple_hash FROM input_file_rows x JOIN input_files f " \
            "ON f.id = x.file_id"
    assert query(target, lines) == query(node, lines)
    r = cli("judgements", "list", "--db", target, "--input", f, "--json", "-n", "0")
    assert sorted(x["judge_name"] for x in json.loads(r.out)) == ["lexical"] * 3 + ["rules"] * 3
    before = dump(target)
    [again] = merge_mod.merge(target, [node])
    assert not again.added.get("input_files") and not again.added.get("input_file_rows")
    assert dump(target) == before
