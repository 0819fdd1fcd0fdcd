"""The judgements browser's SQL (tui/browse.py) and the browse_rows it reads (migration m230).

* browse_rows / browse_counts equal what their definition (the browse_source view) says after
  every kind of write, and after the migration fills them on an existing database;
* for every combination of the browser's filters, the keyset pages tile exactly the rows a
  plain join over the base tables returns, in page order, and the count is right;
* the query plans of every combination (first page, next page, count) never scan a big
  table, and a page that walks in page order never sorts.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from dataclasses import fields

import pytest
from helpers_tui import build_db

from vlmdyn_cli.store.db import connect, open_db
from vlmdyn_cli.store.search import fts_query
from vlmdyn_cli.tui import browse as B

# ---------------------------------------------------------------- browse_rows follow the writes


def browse_state(conn) -> int:
    """Assert browse_rows and browse_counts equal their definitions; returns the number of rows."""
    rows = sorted(conn.execute(
        "SELECT r.run_id, r.step, r.qa_id, r.judgement_id, b.judge_name, b.status, b.verdict, b.category, "
        "b.subcategory, r.triple_id FROM browse_rows r JOIN browse_buckets b ON b.id = r.bucket").fetchall())
    want = sorted(conn.execute(
        "SELECT s.run_id, s.step, s.qa_id, s.judgement_id, s.judge_name, s.status, s.verdict, s.category, "
        "s.subcategory, t.id FROM browse_source s LEFT JOIN triples t ON t.hash = s.triple_hash").fetchall())
    assert rows == want
    counts = conn.execute("SELECT bucket, run_id, step, n FROM browse_counts WHERE n <> 0 ORDER BY 1, 2, 3").fetchall()
    assert counts == conn.execute(
        "SELECT bucket, run_id, step, count(*) FROM browse_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetchall()
    # peers: every judge's scored verdicts on the row's generation, as bits
    judge_id = dict(conn.execute("SELECT name, id FROM browse_judges").fetchall())
    want_peers: dict = {}
    for run, step, qa, _, judge, status, verdict, *_ in want:
        bit = 1 << (2 * (judge_id[judge] - 1) + (verdict == "no")) if status == "scored" else 0
        want_peers[run, step, qa] = want_peers.get((run, step, qa), 0) | bit
    peers = conn.execute("SELECT run_id, step, qa_id, peers FROM browse_rows").fetchall()
    assert all(p == want_peers[r, s, q] for r, s, q, p in peers)
    return len(rows)


def test_browse_rows_follow_every_write(tmp_path):
    conn = connect(build_db(tmp_path / "exp.db"))
    assert browse_state(conn) == 64
    # re-judging (the runner's upsert), deleting judgements, re-categorising, re-generating
    # (infer --replace changes a generation's triple), deleting generations, a new judge
    conn.execute("UPDATE judgements SET verdict = CASE verdict WHEN 'yes' THEN 'no' ELSE 'yes' END "
                 "WHERE id % 3 = 0 AND status = 'scored'")
    assert browse_state(conn) == 64
    conn.execute("DELETE FROM judgements WHERE id % 5 = 0")
    n = browse_state(conn)
    assert n < 64
    conn.execute("UPDATE qa_pairs SET category = 'Other', subcategory = 'new' WHERE id % 2 = 0")
    assert browse_state(conn) == n
    conn.execute("UPDATE generations SET triple_hash = (SELECT g2.triple_hash FROM generations g2 "
                 "WHERE g2.id = generations.id + 1), prediction = 'changed' WHERE id % 4 = 0 AND id < 32")
    n = browse_state(conn)
    conn.execute("DELETE FROM generations WHERE id % 7 = 0")
    assert browse_state(conn) < n
    conn.execute("INSERT INTO judgements(spec_hash, triple_hash, judge_name, status, verdict, created_at) "
                 "SELECT 'spec-new', hash, 'new judge', 'unscored', NULL, 'now' FROM triples")
    assert browse_state(conn) > n
    assert conn.execute("SELECT count(*) FROM browse_buckets WHERE judge_name = 'new judge'").fetchone()[0] > 0
    conn.execute("UPDATE judgements SET status = 'scored', verdict = 'yes' WHERE judge_name = 'new judge'")
    browse_state(conn)
    conn.close()


def test_the_migration_fills_browse_rows_of_an_existing_database(tmp_path):
    path = build_db(tmp_path / "exp.db")
    conn = connect(path)
    want = browse_state(conn)
    # back to the schema before m230, data kept
    conn.execute("BEGIN")
    for kind, name in conn.execute("SELECT type, name FROM sqlite_master WHERE name LIKE 'browse%' "
                                   "AND type IN ('trigger', 'view', 'table') ORDER BY type = 'table'").fetchall():
        conn.execute(f"DROP {kind.upper()} {name}")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm240_tui_browse_rows'")
    conn.execute("COMMIT")
    conn.close()
    open_db(path).close()
    conn = connect(path)
    assert browse_state(conn) == want
    conn.close()


# ---------------------------------------------------------------- every filter combination

# two value sets per field: the first mostly overlapping, the second with contradictions
# (a run of another seed, a sub-category of another category, unscored and yes)
VALUES = [
    dict(run="seed1", seed=1, step=357, set_name="seen@51", category="OCR", subcategory="semantic",
         judge="local", verdict="no", status="scored", disagree=("rules", "local"), text="book"),
    dict(run="seed2", seed=1, step=51, set_name="unseen", category="Object", subcategory="bbox",
         judge="rules", verdict="yes", status="unscored", disagree=("local", "rules"), text="not"),
]
FIELDS = [f.name for f in fields(B.Filters)]


def combinations(values: dict):
    """Every combination of the browser's filters (each field set or not), named."""
    assert sorted(values) == sorted(FIELDS), "a filter of the browser is missing here"
    for k in range(len(FIELDS) + 1):
        for combo in itertools.combinations(FIELDS, k):
            yield "+".join(combo) or "none", B.Filters(**{n: values[n] for n in combo})


def reference(conn, f: B.Filters) -> list[tuple]:
    """The rows a filter combination means, in page order: a plain join over the base tables."""
    conds, params = [], []
    for sql, value in (("r.name = ?", f.run), ("r.seed = ?", f.seed), ("g.step = ?", f.step),
                       ("EXISTS (SELECT 1 FROM eval_sets s JOIN eval_set_members m ON m.set_id = s.id "
                        "WHERE s.run_id = g.run_id AND s.name = ? AND m.qa_id = g.qa_id)", f.set_name),
                       ("q.category = ?", f.category), ("q.subcategory = ?", f.subcategory),
                       ("j.judge_name = ?", f.judge), ("j.verdict = ?", f.verdict), ("j.status = ?", f.status),
                       ("g.triple_hash IN (SELECT t.hash FROM triples t WHERE t.id IN "
                        "(SELECT rowid FROM triples_fts WHERE triples_fts MATCH ?))", fts_query(f.text or ""))):
        if value is not None:
            conds.append(sql)
            params.append(value)
    if f.disagree:
        conds.append("EXISTS (SELECT 1 FROM judgements ja JOIN judgements jb ON jb.triple_hash = ja.triple_hash "
                     "WHERE ja.triple_hash = g.triple_hash AND ja.judge_name = ? AND jb.judge_name = ? "
                     "AND ja.status = 'scored' AND jb.status = 'scored' AND ja.verdict <> jb.verdict)")
        params += list(f.disagree)
    return [tuple(r) for r in conn.execute(
        "SELECT g.run_id, g.step, g.qa_id, j.id FROM generations g JOIN judgements j ON j.triple_hash = g.triple_hash "
        "JOIN runs r ON r.id = g.run_id LEFT JOIN qa_pairs q ON q.id = g.qa_id "
        f"WHERE {' AND '.join(conds) or '1'} ORDER BY 1, 2, 3, 4", params).fetchall()]


# strategies forced: the driver a page starts from (None: walk/collect by segments), the text test
def _forced(driver):
    def choose(p):
        if driver == "buckets":
            return "buckets" if p.buckets is not None else None
        return driver if any(x.name == driver for x in p.per_row) else None
    return choose


MODES = {
    "default": {},
    "walk+filter": {"choose": _forced(None), "COLLECT_COST": 10**9, "TEXT_FILTER_MAX": 10**9},
    "collect+probe": {"choose": _forced("buckets"), "COLLECT_COST": 0, "TEXT_FILTER_MAX": 0},
    "drive set": {"choose": _forced("set")},
    "drive disagree": {"choose": _forced("disagree")},
    "drive text": {"choose": _forced("text")},
}


def force(monkeypatch, mode: str) -> None:
    for name, value in MODES[mode].items():
        monkeypatch.setattr(B, name, value)


@pytest.fixture(scope="module")
def fixture_db(tmp_path_factory):
    return build_db(tmp_path_factory.mktemp("tuiq") / "exp.db")


@pytest.mark.parametrize("mode,values", [("default", 0), ("default", 1), ("walk+filter", 1), ("collect+probe", 0),
                                         ("drive set", 1), ("drive disagree", 0), ("drive text", 1)])
def test_every_combination_pages_exactly_its_rows(fixture_db, monkeypatch, mode, values):
    force(monkeypatch, mode)
    conn = connect(fixture_db, readonly=True)
    conn.row_factory = sqlite3.Row
    nonempty = checked = 0
    driver = mode.split()[-1] if mode.startswith("drive") else None
    for name, f in combinations(VALUES[values]):
        if driver and not getattr(f, {"set": "set_name"}.get(driver, driver)):
            continue  # the same as default
        want = reference(conn, f)
        got, after = [], None
        while keys := B.page_keys(conn, f, after=after, limit=7):
            got += keys
            after = keys[-1]
        assert got == want, f"{mode}: {name}"
        assert B.count(conn, f) == B.Count(len(want)), f"{mode}: {name}"
        nonempty += bool(want)
        checked += 1
    assert nonempty > checked // 20  # the combinations are not all trivially empty
    page = B.page(conn, B.Filters(text="book"))
    assert [r["key"] for r in page] == reference(conn, B.Filters(text="book"))
    assert {r["question"] for r in page} == {"What is the title of this book?", "Is this a children's book?"}
    conn.close()


def test_count_is_capped_or_gives_up_when_a_per_row_filter_is_on(fixture_db, monkeypatch):
    monkeypatch.setattr(B, "COUNT_CHECK_EVERY", 1)
    conn = connect(fixture_db, readonly=True)
    f = B.Filters(set_name="seen@51")
    n = len(reference(conn, f))
    assert B.count(conn, f) == B.Count(n)
    assert B.count(conn, f, cap=3) == B.Count(3, capped=True)
    gave_up = B.count(conn, f, budget_s=-1)  # already past the deadline
    assert gave_up.n is None and gave_up.at_most == len(reference(conn, B.Filters()))
    assert gave_up.text() == "of ? (at most 64)"
    assert B.count(conn, B.Filters(), budget_s=-1) == B.Count(64)  # exact from browse_counts: no counting
    conn.close()


def test_disagree_keeps_unscored_rows_of_a_judge_with_a_second_spec(tmp_path):
    """"Disagree" leaves out the rows a judge of the pair did not score (they carry none of its
    verdicts), unless that judge's name has several specs: then another spec of it may have scored
    the same triple, and those rows stay. Checked against the plain join for every combination."""
    path = build_db(tmp_path / "exp.db")
    conn = connect(path)
    conn.row_factory = sqlite3.Row
    f = B.Filters(status="unscored", disagree=("rules", "local"))
    assert reference(conn, f) == [] and B.page_keys(conn, f) == [] and B.count(conn, f) == B.Count(0)
    # a second spec named "local" scores the triples the first left unscored, against the rules judge
    conn.execute("INSERT INTO judge_specs(hash,name,spec_json,created_at) VALUES ('spec-local-2','local','{}','t')")
    conn.execute(
        "INSERT INTO judgements(spec_hash,triple_hash,judge_name,status,verdict,created_at) "
        "SELECT 'spec-local-2', u.triple_hash, 'local', 'scored', CASE r.verdict WHEN 'yes' THEN 'no' ELSE 'yes' END, "
        "'t' FROM judgements u JOIN judgements r ON r.triple_hash = u.triple_hash AND r.judge_name = 'rules' "
        "WHERE u.judge_name = 'local' AND u.status = 'unscored'")
    values = dict(VALUES[0], status="unscored", verdict="yes", text="not")
    checked = 0
    for name, f in combinations(values):
        if f.disagree is None:
            continue
        want = reference(conn, f)
        got, after = [], None
        while keys := B.page_keys(conn, f, after=after, limit=7):
            got += keys
            after = keys[-1]
        assert got == want, name
        assert B.count(conn, f) == B.Count(len(want)), name
        checked += bool(want) and f.status == "unscored"
    assert checked  # unscored rows of "local" do show up among the disagreements now
    conn.close()


def test_a_remembered_plan_is_dropped_when_the_database_changes(tmp_path):
    """Plans are reused per connection (next page, count) only while the database is unchanged:
    a commit by another connection, or a write on this one, makes the next call plan again."""
    path = build_db(tmp_path / "exp.db")
    reader, writer = connect(path, readonly=True), connect(path)
    reader.row_factory = sqlite3.Row
    f = B.Filters(judge="fresh")
    assert B.page_keys(reader, f) == [] and B.plan(reader, f) is B.plan(reader, f)
    writer.execute("INSERT INTO judge_specs(hash,name,spec_json,created_at) VALUES ('spec-fresh','fresh','{}','t')")
    writer.execute("INSERT INTO judgements(spec_hash,triple_hash,judge_name,status,verdict,created_at) "
                   "SELECT 'spec-fresh', hash, 'fresh', 'scored', 'yes', 't' FROM triples LIMIT 3")
    assert B.page_keys(reader, f) == reference(reader, f) != []
    writer.close()
    own = connect(path)
    own.row_factory = sqlite3.Row
    assert len(B.page_keys(own, f)) == len(reference(own, f))
    own.execute("DELETE FROM judgements WHERE judge_name = 'fresh'")
    assert B.page_keys(own, f) == [] and B.count(own, f) == B.Count(0)
    reader.close()
    own.close()


# ---------------------------------------------------------------- query plans

# How a statement may reach each big table: a key lookup, one (run, checkpoint) cell of browse_rows
# (which a page walks), or the rows a page starts from by the counts (a bucket's, a set's, a text's);
# anything else reads a share of the table that grows with the experiment (a scan, a search on
# run_id alone). A walk in page order (the statement below) must never sort.
ACCESS = {
    # a cell in page order; a bucket's rows (read only as far as the exact counts allow); a triple's rows
    "browse_rows": (r"run_id=\? AND step=\?", r"bucket=\?", r"triple_id=\?"),
    "generations": (r"triple_hash=\?", r"run_id=\? AND step=\? AND qa_id=\?"),
    "judgements": (r"rowid=\?", r"triple_hash=\?"),
    "triples": (r"rowid=\?", r"hash=\?"),
    "qa_pairs": (r"rowid=\?",),
    "eval_set_members": (r"set_id=\?", r"qa_id=\?"),  # one set's members, one QA pair's sets
}
ACCESS_LINE = re.compile(r"(SCAN|SEARCH) (\w+)(?: USING .*?\((.*)\))?")
NOT_ALIAS = "INDEXED|WHERE|ON|JOIN|CROSS|LEFT|INNER|USING|ORDER|GROUP|LIMIT"


def plan_problems(conn, statements: list[str], seen: set | None = None) -> list[str]:
    """Each way a statement reaches a big table that is not in ACCESS, and walks that sort.
    Statements in ``seen`` are skipped (and checked ones added)."""
    problems = []
    seen = set() if seen is None else seen
    for sql in statements:
        if sql in seen or not sql.lstrip().upper().startswith(("SELECT", "WITH")):
            continue
        seen.add(sql)
        lines = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()]
        tables = {}
        for table, alias in re.findall(rf"\b(?:FROM|JOIN)\s+(\w+)(?:\s+(?:AS\s+)?(?!(?:{NOT_ALIAS})\b)(\w+))?",
                                       sql, re.IGNORECASE):
            tables[table] = tables[alias or table] = table
        for line in lines:
            m = ACCESS_LINE.match(line)
            if not m or "VIRTUAL TABLE" in line or tables.get(m.group(2), m.group(2)) not in ACCESS:
                continue
            allowed = ACCESS[tables.get(m.group(2), m.group(2))]
            if m.group(1) == "SCAN" or not any(re.match(a, m.group(3) or "") for a in allowed):
                problems.append(f"{line} in: {sql}\n  plan: {lines}")
        if sql.startswith(f"SELECT {B.COLS} FROM browse_rows b WHERE") and "USE TEMP B-TREE FOR ORDER BY" in lines:
            problems.append(f"a walk that sorts in: {sql}\n  plan: {lines}")
    return problems


@pytest.fixture(scope="module")
def synth_db(tmp_path_factory):
    """A small experiment built the normal way (synthdb, which runs ANALYZE as the benchmark's does)."""
    from vlmdyn_cli.testing.synthdb import fill_synthetic

    path = tmp_path_factory.mktemp("tuiq-synth") / "synth.db"
    db = open_db(path)
    fill_synthetic(db, seeds=2, checkpoints=(51, 357, 765), set_size=40, judges=("rules", "local"))
    db.close()
    return path


SYNTH_VALUES = dict(run="synth-s1", seed=1, step=357, set_name="seen@357", category="OCR", subcategory="semantic",
                    judge="local", verdict="no", status="unscored", disagree=("rules", "local"), text="book")


@pytest.mark.parametrize("mode,stats", [("default", "analyzed"), ("default", "no statistics"),
                                        ("walk+filter", "no statistics"), ("collect+probe", "analyzed"),
                                        ("drive set", "no statistics"), ("drive disagree", "analyzed"),
                                        ("drive text", "no statistics")])
def test_no_combination_scans_a_big_table(synth_db, monkeypatch, mode, stats):
    force(monkeypatch, mode)
    conn = connect(synth_db)
    conn.row_factory = sqlite3.Row
    conn.execute("BEGIN")
    if stats == "no statistics":
        conn.execute("DELETE FROM sqlite_stat1")
        conn.execute("ANALYZE sqlite_schema")  # the planner re-reads the (now empty) statistics
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    problems, walked, seen = [], 0, set()
    for name, f in combinations(SYNTH_VALUES):
        statements.clear()
        keys = B.page_keys(conn, f, limit=5)
        if keys:
            B.page_keys(conn, f, after=keys[-1], limit=5)
        B.count(conn, f)
        conn.set_trace_callback(None)
        problems += [f"[{name}] {p}" for p in plan_problems(conn, statements, seen)]
        walked += any(s.startswith(f"SELECT {B.COLS} FROM browse_rows b WHERE") for s in statements)
        conn.set_trace_callback(statements.append)
    conn.set_trace_callback(None)
    conn.execute("ROLLBACK")
    conn.close()
    assert not problems, f"{len(problems)} bad plans, e.g.:\n" + "\n".join(problems[:5])
    assert walked  # the checked statements include walks (not only collects)


def test_plan_check_catches_a_full_scan(synth_db):
    conn = connect(synth_db, readonly=True)
    bad = plan_problems(conn, ["SELECT count(*) FROM judgements j WHERE +j.status = 'unscored'",
                               f"SELECT {B.COLS} FROM browse_rows b WHERE b.run_id IN (1) AND b.step IN (51) "
                               "ORDER BY b.judgement_id LIMIT 5"])
    assert len(bad) == 2 and bad[0].startswith("SCAN j") and "a walk that sorts" in bad[1]
    bad = plan_problems(conn, ["SELECT count(*) FROM generations g WHERE g.run_id = 1 AND g.qa_id > 0"])
    assert len(bad) == 1 and bad[0].startswith("SEARCH g")  # a whole run is not a key lookup
    conn.close()
