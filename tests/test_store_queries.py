"""The query layer shared by the CLI and the TUI (store/): one connect function, one run
lookup, one FTS query builder, judge status, run listing, labels, generations."""

from __future__ import annotations

import sqlite3

import pytest

from helpers_tui import QAS, build_db
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.store.db import BUSY_TIMEOUT_MS, connect, now, open_db
from vlmdyn_cli.store.generations import list_generations
from vlmdyn_cli.store.judgement_queries import iter_judgements, judge_status
from vlmdyn_cli.store.labels import samples, save_label
from vlmdyn_cli.store.runs import Run, find_run, get_run, list_runs
from vlmdyn_cli.store.search import fts_query
from vlmdyn_cli.training.runs import create_run
from vlmdyn_cli.tui.store import Store


@pytest.fixture
def exp(tmp_path):
    return build_db(tmp_path / "exp.db")


def _settings(conn) -> tuple:
    return tuple(conn.execute(f"PRAGMA {p}").fetchone()[0]
                 for p in ("busy_timeout", "journal_mode", "synchronous", "foreign_keys", "query_only"))


# ---------------------------------------------------------------- connect

def test_connect_is_the_one_setup_for_cli_and_tui(exp):
    writable = (BUSY_TIMEOUT_MS, "wal", 1, 0, 0)  # synchronous 1 = NORMAL
    assert _settings(connect(exp)) == writable
    assert _settings(connect(exp, readonly=True)) == writable   # read-only by mode=ro (next test), not query_only
    assert _settings(open_db(exp).conn) == writable
    store = Store(exp)
    with store.read() as r, store.rw() as rw, store.write() as w:
        assert _settings(r) == writable
        assert _settings(rw) == writable and _settings(w) == writable
        assert w.in_transaction and not rw.in_transaction
    store.close()


def test_a_readonly_connection_refuses_writes(exp, tmp_path):
    conn = connect(exp, readonly=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM runs")
    conn.execute("CREATE TEMP TABLE scratch(x)")           # temp tables (sets list's probe) still work
    with pytest.raises(BadInput):
        connect(tmp_path / "missing.db", readonly=True)     # and a missing file is not created
    assert not (tmp_path / "missing.db").exists()
    assert connect(exp).execute("SELECT count(*) FROM runs").fetchone()[0] == 2


def test_a_reader_leaves_the_journal_mode_alone(tmp_path):
    path = tmp_path / "plain.db"
    plain = sqlite3.connect(path)
    plain.execute("CREATE TABLE t (x)")
    plain.commit()
    plain.close()
    connect(path, readonly=True).execute("SELECT count(*) FROM t").fetchone()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    connect(path).close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_connect_names_a_file_that_is_not_sqlite(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_bytes(b"this is not a database, just some text that is long enough " * 20)
    with pytest.raises(BadInput, match=r"notes\.db is not a usable SQLite database"):
        connect(bad)
    with pytest.raises(BadInput, match=r"notes\.db is not a usable SQLite database"):
        connect(bad, readonly=True)
    with pytest.raises(BadInput, match=r"notes\.db is not a usable SQLite database"):
        open_db(bad)


# ---------------------------------------------------------------- runs

def test_get_run_returns_the_whole_row(exp):
    run = get_run(open_db(exp), "seed1")
    assert isinstance(run, Run)
    assert (run.id, run.name, run.seed, run.status, run.model_id, run.total_steps) == (1, "seed1", 1, "done", "tiny", 400)
    assert run.checkpoint_steps == (51, 357) and run.eval_steps == [51, 357]
    assert find_run(connect(exp), "seed2") == get_run(open_db(exp), "seed2")  # a connection works too
    assert find_run(open_db(exp), "seed3") is None


def test_unknown_run_message(exp, tmp_path):
    with pytest.raises(BadInput) as e:
        get_run(open_db(exp), "sede1")
    assert str(e.value) == "unknown run 'sede1' (did you mean 'seed1'?); runs: seed1, seed2"
    empty = open_db(tmp_path / "empty.db")
    with pytest.raises(BadInput, match="unknown run 'x'; this database has no runs yet"):
        get_run(empty, "x")
    for i in range(25):
        create_run(empty, name=f"run{i:02d}", dataset_id=1, seed=i, model_id="tiny", cfg={}, out_dir="o",
                   total_steps=10, global_batch=1, checkpoint_steps=[5, 10], init_from=None)
    with pytest.raises(BadInput) as e:
        get_run(empty, "run99")
    assert str(e.value).endswith("runs: " + ", ".join(f"run{i:02d}" for i in range(20)) + ", ... (25 runs)")


@pytest.mark.parametrize("args", [
    ["sets", "list", "--run", "sede1"],
    ["sets", "build", "--run", "sede1"],
    ["generations", "list", "--run", "sede1"],
    ["generations", "summary", "--run", "sede1"],
    ["judge", "--run", "sede1", "--judge", "rules"],
    ["calibrate", "sample", "--run", "sede1", "--n", "2"],
    ["plot", "frontiers", "--run", "sede1", "--judge", "rules"],
])
def test_every_command_names_an_unknown_run_the_same_way(cli, exp, args):
    before = open_db(exp).execute("SELECT count(*) FROM calibration_items").fetchone()[0]
    r = cli(*args, "--db", str(exp))
    assert r.code == 2, r.err
    assert "unknown run 'sede1' (did you mean 'seed1'?); runs: seed1, seed2" in r.err
    assert open_db(exp).execute("SELECT count(*) FROM calibration_items").fetchone()[0] == before


def test_list_runs(exp):
    rows = list_runs(open_db(exp))
    assert [r["name"] for r in rows] == ["seed1", "seed2"]
    r = rows[0]
    assert (r["dataset"], r["status"], r["checkpoint_steps"], r["n_checkpoints"], r["n_sets"], r["steps_done"]) == \
        ("tiny", "done", [51, 357], 2, 2, 0)
    assert list_runs(connect(exp)) == rows


# ---------------------------------------------------------------- text search

@pytest.mark.parametrize("text,expected", [
    ("book", '"book"'),
    ('book" OR (*', '"book" "OR"'),
    ("NEAR(a b)", '"NEAR" "a" "b"'),
    ("  ", None),
    (None, None),
    ("l'enfant", '"l" "enfant"'),
])
def test_fts_query_quotes_every_word(text, expected):
    assert fts_query(text) == expected


def test_judgement_search(exp):
    db = open_db(exp)
    rows = list(iter_judgements(db, search="children's"))
    assert rows and {r["question"] for r in rows} == {QAS[3][0]}
    assert list(iter_judgements(db, search='children\'s (*"')) == rows  # FTS syntax is just text
    with pytest.raises(BadInput, match="has no words"):
        list(iter_judgements(db, search="?!"))


# ---------------------------------------------------------------- judge status

def test_judge_status_per_spec_and_per_name_agree(exp):
    db = open_db(exp)
    with db.conn:  # a second version of the rules judge (a changed prompt makes a new spec)
        db.conn.execute("INSERT INTO judgements(spec_hash, triple_hash, judge_name, status, verdict, cost_usd, "
                        "latency_s, created_at) SELECT 'spec-rules-2', triple_hash, judge_name, status, 'yes', "
                        "NULL, 1.0, created_at FROM judgements WHERE judge_name = 'rules' LIMIT 5")
        db.conn.execute("INSERT INTO judgements(spec_hash, triple_hash, judge_name, status, reason, created_at) "
                        "SELECT 'spec-broken', triple_hash, 'broken', 'unscored', 'timeout', created_at "
                        "FROM judgements WHERE judge_name = 'rules' LIMIT 3")
    per_spec = judge_status(db)
    per_name = judge_status(connect(exp, readonly=True), per_spec=False)
    assert [r["judge"] for r in per_spec] == ["broken", "local", "rules", "rules"]
    assert [r["judge"] for r in per_name] == ["broken", "local", "rules"]
    broken = {k: per_spec[0][k] for k in ("n", "scored", "unscored", "yes", "no", "accuracy", "mean_latency_s")}
    assert broken == {"n": 3, "scored": 0, "unscored": 3, "yes": None, "no": None, "accuracy": None,
                      "mean_latency_s": None}
    for name in per_name[1:]:
        specs = [r for r in per_spec if r["judge"] == name["judge"]]
        for key in ("n", "scored", "unscored", "yes", "no"):
            assert name[key] == sum(r[key] for r in specs), key
        assert name["accuracy"] == name["yes"] / name["scored"]
    assert [r["n_cost_unknown"] for r in per_spec] == [3, 0, 0, 5]
    assert [r["resolved_models"] for r in per_spec] == [None, "local", "rules", None]
    local = per_name[1]
    assert local["unscored"] == local["accuracy_excludes_unscored"] == 1
    assert local["n"] == local["scored"] + 1 and local["cost_usd"] == pytest.approx(0.0001 * local["n"])


# ---------------------------------------------------------------- labels and samples

def test_save_label_writes_and_changes_one_row(exp):
    db = open_db(exp)
    h = db.execute("SELECT triple_hash FROM calibration_items ORDER BY rowid").fetchone()[0]
    with db.conn:
        save_label(db.conn, h, "ann", "yes", "sheet.csv", now())
    store = Store(exp)
    with store.write() as conn:
        save_label(conn, h, "ann", "no", "tui", now())
    store.close()
    assert db.execute("SELECT label, source FROM human_labels WHERE triple_hash = ? AND rater = 'ann'",
                      [h]).fetchall() == [("no", "tui")]
    with pytest.raises(ValueError, match="yes or no"):
        save_label(db.conn, h, "ann", "maybe", "tui", now())
    assert samples(db) == [{"sample": "pilot", "n": 4}]


# ---------------------------------------------------------------- generations

def test_list_generations(exp):
    db = open_db(exp)
    rows = list_generations(db, run_id=get_run(db, "seed2").id, step=357, set_name="unseen", limit=100)
    assert [(r["run"], r["step"]) for r in rows] == [("seed2", 357)] * 4
    assert [r["question"] for r in rows] == [q for q, *_ in QAS[4:]]
    assert len(list_generations(db, limit=5)) == 5
    with pytest.raises(BadInput, match="no evaluation set named 'unsen'"):
        list_generations(db, set_name="unsen")
