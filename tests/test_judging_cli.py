"""`vlmdyn judge` and `vlmdyn judgements list|status|export` through the real entry point."""

import csv
import json

import helpers_judging as hj
from vlmdyn_cli.store import open_db

LINES = [
    {"id": "a", "question": "What colour is the bus?", "answer": "red", "prediction": "The bus is red.", "category": "Object"},
    {"id": "b", "question": "How many dogs?", "answer": "3", "prediction": "two", "category": "Object"},
    {"id": "c", "question": "Why are they here?", "answer": "They are waiting for the bus to arrive at the stop",
     "prediction": "waiting", "category": "Complex"},
]


def _file(tmp_path, lines=LINES):
    f = tmp_path / "triples.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return f


def test_judge_input_json_keeps_extra_fields(cli, tmp_path):
    dbp = tmp_path / "d.db"
    r = cli("judge", "--input", _file(tmp_path), "--judge", "rules", "--db", dbp, "--json")
    assert r.code == 0, r.err
    out = [json.loads(x) for x in r.out.splitlines()]
    assert [o["id"] for o in out] == ["a", "b", "c"]
    assert [o["category"] for o in out] == ["Object", "Object", "Complex"]
    assert [(o["status"], o["verdict"]) for o in out] == [("scored", "yes"), ("scored", "no"), ("unscored", None)]
    assert out[2]["reason"].startswith("cannot decide") and all(o["judge"] == "rules" for o in out)
    # second time: everything scored is cached, the unscored item is retried
    r2 = cli("judge", "--input", _file(tmp_path), "--judge", "rules", "--db", dbp, "--json")
    assert "2 cached, 1 judged now" in r2.err


def test_malformed_triples_file_names_the_line_and_writes_nothing(cli, tmp_path):
    dbp = tmp_path / "d.db"
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps(LINES[0]) + "\n\n" + '{"question": "q", "answer": "a", "prediction": 3}\n')
    r = cli("judge", "--input", f, "--judge", "rules", "--db", dbp)
    assert r.code == 2 and "line 3" in r.err and "'prediction'" in r.err
    f.write_text(json.dumps(LINES[0]) + "\n{not json\n")
    r = cli("judge", "--input", f, "--judge", "rules", "--db", dbp)
    assert r.code == 2 and "line 2: not valid JSON" in r.err
    d = open_db(dbp)
    try:
        assert d.conn.execute("SELECT COUNT(*) FROM triples").fetchone()[0] == 0
        assert d.conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0] == 0
    finally:
        d.close()
    r = cli("judge", "--judge", "rules", "--db", dbp)
    assert r.code == 2 and "exactly one of --run" in r.err


def test_judge_run_dry_run_and_filters(cli, tmp_path):
    dbp = tmp_path / "d.db"
    d = open_db(dbp)
    hj.make_run(d)
    d.close()
    r = cli("judge", "--run", "r1", "--judge", "gpt-4o-mini", "--db", dbp, "--dry-run")
    assert r.code == 0, r.err
    assert "12 items, 0 cached, 12 new" in r.out and "estimated cost: $" in r.out
    r = cli("judge", "--run", "r1", "--judge", "rules", "--sets", "unseen", "--checkpoints", "10,20", "--db", dbp, "--json")
    assert r.code == 0, r.err
    s = json.loads(r.out)
    assert (s["total"], s["new"], s["scored"], s["unscored"]) == (6, 6, 3, 3)
    r = cli("judge", "--run", "r1", "--judge", "rules", "--db", dbp, "--json")
    s = json.loads(r.out)
    assert (s["total"], s["cached"], s["backend_calls"]) == (12, 3, 9)
    r = cli("judge", "--run", "nope", "--judge", "rules", "--db", dbp)
    assert r.code == 2 and "unknown run 'nope'" in r.err
    r = cli("judge", "--run", "r1", "--judge", "rules", "--checkpoints", "ten", "--db", dbp)
    assert r.code == 2 and "--checkpoints" in r.err


def test_judgements_list_status_export(cli, tmp_path):
    dbp = tmp_path / "d.db"
    assert cli("judge", "--input", _file(tmp_path), "--judge", "rules", "--db", dbp).code == 0
    rows = json.loads(cli("judgements", "list", "--db", dbp, "--json").out)
    assert len(rows) == 3 and {r["judge_name"] for r in rows} == {"rules"}
    assert [r["prediction"] for r in json.loads(cli("judgements", "list", "--db", dbp, "--json", "-q", "dogs").out)] == ["two"]
    assert len(json.loads(cli("judgements", "list", "--db", dbp, "--json", "--status", "unscored").out)) == 1
    assert len(json.loads(cli("judgements", "list", "--db", dbp, "--json", "--verdict", "yes", "-n", "5").out)) == 1
    assert json.loads(cli("judgements", "list", "--db", dbp, "--json", "--judge", "cascade").out) == []
    assert cli("judgements", "list", "--db", dbp, "--verdict", "maybe").code == 2
    assert cli("judgements", "list", "--db", dbp, "-q", "bus").code == 0
    st = json.loads(cli("judgements", "status", "--db", dbp, "--json").out)
    assert len(st) == 1
    s = st[0]
    assert (s["judge"], s["n"], s["scored"], s["unscored"], s["yes"], s["no"]) == ("rules", 3, 2, 1, 1, 1)
    assert s["accuracy"] == 0.5 and s["accuracy_excludes_unscored"] == 1 and s["cost_usd"] == 0.0
    assert cli("judgements", "status", "--db", dbp).code == 0
    out = tmp_path / "j.csv"
    r = cli("judgements", "export", "--format", "csv", "--out", out, "--db", dbp)
    assert r.code == 0 and "wrote 3 judgements" in r.err
    got = list(csv.DictReader(out.open()))
    assert [g["prediction"] for g in got] == ["The bus is red.", "two", "waiting"]
    outj = tmp_path / "j.jsonl"
    assert cli("judgements", "export", "--format", "jsonl", "--out", outj, "--db", dbp).code == 0
    assert [json.loads(x)["verdict"] for x in outj.read_text().splitlines()] == ["yes", "no", None]
    r = cli("judgements", "export", "--format", "xml", "--out", tmp_path / "x", "--db", dbp)
    assert r.code == 2 and "csv or jsonl" in r.err


def test_help_has_examples(cli):
    r = cli("judge", "--help")
    assert r.code == 0 and "vlmdyn judge --input triples.jsonl" in r.out and "--max-cost" in r.out
    for sub in ("list", "status", "export"):
        r = cli("judgements", sub, "--help")
        assert r.code == 0 and "Example" in r.out


def test_dry_run_on_a_file_writes_nothing(cli, tmp_path):
    dbp = tmp_path / "d.db"
    r = cli("judge", "--input", _file(tmp_path), "--judge", "gpt-4o-mini", "--db", dbp, "--dry-run")
    assert r.code == 0, r.err
    assert "3 items, 0 cached, 3 new" in r.out and "estimated cost: $" in r.out
    d = open_db(dbp)
    try:
        assert d.conn.execute("SELECT COUNT(*) FROM triples").fetchone()[0] == 0
        assert d.conn.execute("SELECT COUNT(*) FROM judge_specs").fetchone()[0] == 0
    finally:
        d.close()
