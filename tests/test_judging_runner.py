"""The runner: content-addressed cache, retries of unscored rows, runs, cost cap, dry run, secrets."""

import json

import pytest

import helpers_judging as hj
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.judging import backends
from vlmdyn_cli.judging.runner import judge_run, judge_triples
from vlmdyn_cli.judging.spec import load_spec
from vlmdyn_cli.store.db import upsert_triples


@pytest.fixture
def scripted(monkeypatch, tmp_path):
    monkeypatch.setitem(backends.BACKENDS, "scripted", "helpers_judging:scripted_factory")
    monkeypatch.setattr(hj.ScriptedBackend, "calls", 0)
    monkeypatch.setattr(hj.ScriptedBackend, "answer", staticmethod(lambda item: "{'p': 'yes', 'MS': 5, 'MD': 5, 'H': 5}"))
    monkeypatch.setattr(hj.ScriptedBackend, "cost_per_item", 0.0)
    return load_spec(hj.write_spec(tmp_path))


def _triples(db, n):
    with db.atomic():
        return upsert_triples(db, [(f"q{i}", f"a{i}", f"p{i}") for i in range(n)])


def test_rerun_makes_zero_backend_calls_and_rejudge_forces(db, scripted):
    hashes = _triples(db, 25)
    s1 = judge_triples(db, scripted, hashes + hashes[:5])          # duplicates judged once
    assert (s1.total, s1.new, s1.cached, s1.scored) == (25, 25, 0, 25)
    assert hj.ScriptedBackend.calls == 25
    s2 = judge_triples(db, scripted, hashes)
    assert (s2.cached, s2.new, s2.backend_calls) == (25, 0, 0) and hj.ScriptedBackend.calls == 25
    s3 = judge_triples(db, scripted, hashes, rejudge=True)
    assert s3.new == 25 and hj.ScriptedBackend.calls == 50
    assert db.conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0] == 25    # upserted, not duplicated
    row = db.conn.execute("SELECT judge_name, resolved_model, spec_hash, ms, md, h, prompt_tokens "
                          "FROM judgements LIMIT 1").fetchone()
    assert row == ("scripted", "scripted-1", scripted.hash, 5, 5, 5, 100)
    spec_row = db.conn.execute("SELECT name, spec_json FROM judge_specs WHERE hash = ?", (scripted.hash,)).fetchone()
    assert spec_row[0] == "scripted" and "Grade it." in spec_row[1]


def test_unscored_are_stored_with_reason_never_no_and_retried(db, scripted, monkeypatch):
    hashes = _triples(db, 10)
    bad = {"q3", "q7"}
    monkeypatch.setattr(hj.ScriptedBackend, "answer", staticmethod(
        lambda item: "I think it is right." if item["question"] in bad else "{'p': 'no', 'MS': 1, 'MD': 1, 'H': 1}"))
    s = judge_triples(db, scripted, hashes)
    assert (s.scored, s.unscored, s.no, s.yes) == (8, 2, 8, 0)
    rows = db.conn.execute("SELECT status, verdict, reason, raw FROM judgements WHERE status = 'unscored'").fetchall()
    assert len(rows) == 2
    for status, verdict, reason, raw in rows:
        assert verdict is None and reason.startswith("parse: not a dict") and raw == "I think it is right."
    # the next run retries only the two unscored items
    monkeypatch.setattr(hj.ScriptedBackend, "answer", staticmethod(lambda item: "{'p': 'yes', 'MS': 4, 'MD': 4, 'H': 4}"))
    before = hj.ScriptedBackend.calls
    s2 = judge_triples(db, scripted, hashes)
    assert (s2.cached, s2.new, s2.yes) == (8, 2, 2) and hj.ScriptedBackend.calls - before == 2
    assert db.conn.execute("SELECT COUNT(*) FROM judgements WHERE status='unscored'").fetchone()[0] == 0


def test_backend_errors_become_unscored(db, tmp_path, monkeypatch):
    from vlmdyn_cli.judging.backends.base import JudgeResponse

    class Failing:
        def __init__(self, spec, **o):
            pass

        def run(self, requests, on_result):
            for r in requests:
                on_result(JudgeResponse(key=r.key, error="HTTP 500 after 5 retries"))

        def close(self):
            pass

    monkeypatch.setitem(backends.BACKENDS, "failing", "helpers_judging:scripted_factory")
    monkeypatch.setattr(backends, "backend_class", lambda bid: Failing)
    spec = load_spec(hj.write_spec(tmp_path, backend="failing"))
    s = judge_triples(db, spec, _triples(db, 3))
    assert (s.unscored, s.no) == (3, 0)
    assert {r[0] for r in db.conn.execute("SELECT reason FROM judgements")} == {"HTTP 500 after 5 retries"}


def test_limit_and_max_cost(db, scripted, monkeypatch):
    hashes = _triples(db, 20)
    s = judge_triples(db, scripted, hashes, limit=4)
    assert s.new == 4 and hj.ScriptedBackend.calls == 4
    monkeypatch.setattr(hj.ScriptedBackend, "cost_per_item", 0.01)
    s = judge_triples(db, scripted, hashes, max_cost=0.025)
    assert s.scored == 3 and s.stopped and "max-cost" in s.stopped
    assert s.cost_usd == pytest.approx(0.03)
    # the rest is done by the next run without a cap
    s = judge_triples(db, scripted, hashes)
    assert (s.cached, s.new) == (7, 13)


def test_dry_run_counts_and_estimates_without_writing(db, scripted):
    hashes = _triples(db, 10)
    judge_triples(db, scripted, hashes[:4])
    calls = hj.ScriptedBackend.calls
    s = judge_triples(db, scripted, hashes, dry_run=True)
    assert (s.cached, s.new, s.dry_run) == (4, 6, True) and hj.ScriptedBackend.calls == calls
    assert s.est_prompt_tokens > 0
    assert db.conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0] == 4
    gpt = judge_triples(db, load_spec("gpt-4o-mini"), hashes, dry_run=True)
    assert gpt.new == 10 and gpt.est_cost_usd > 0 and gpt.est_prompt_tokens > 10 * 300
    batch = judge_triples(db, load_spec("gpt-4o-mini"), hashes, dry_run=True, backend_options={"batch": True})
    assert batch.est_cost_usd == pytest.approx(gpt.est_cost_usd / 2)
    local_server = load_spec("gpt-4o-mini").with_overrides(options={"base_url": "http://127.0.0.1:8080/v1"})
    assert judge_triples(db, local_server, hashes, dry_run=True).est_cost_usd is None   # unknown, not zero
    casc = judge_triples(db, load_spec("cascade"), hashes, dry_run=True)
    assert casc.est_cost_usd == 0.0 and casc.notes


def test_judge_run_selects_sets_and_checkpoints(db, scripted):
    info = hj.make_run(db)
    s = judge_run(db, "r1", scripted)
    assert s.total == 12 and s.scored == 12
    s = judge_run(db, "r1", scripted, sets=["unseen"], checkpoints=[20])
    assert (s.total, s.cached) == (3, 3)
    # the triples were created from generations + qa_pairs with the generations' hashes
    n = db.conn.execute("SELECT COUNT(*) FROM triples WHERE hash IN (SELECT triple_hash FROM generations)").fetchone()[0]
    assert n == 12
    with pytest.raises(BadInput, match="unknown run 'r2'"):
        judge_run(db, "r2", scripted)
    with pytest.raises(BadInput, match="no eval set 'seen@99'.*seen@10, unseen"):
        judge_run(db, "r1", scripted, sets=["seen@99"])
    with pytest.raises(BadInput, match="no generations"):
        judge_run(db, "r1", scripted, checkpoints=[5])


def test_rules_and_cascade_over_a_run(db):
    hj.make_run(db)
    s = judge_run(db, "r1", load_spec("rules"))
    # the open-ended "why" item cannot be decided at either checkpoint, nor "parasol" vs "umbrella"
    # (no word in common, but that could be a synonym: below the confidence bar)
    assert (s.scored, s.unscored) == (9, 3)
    rows = dict(db.conn.execute("SELECT t.prediction, j.verdict FROM judgements j JOIN triples t ON t.hash = j.triple_hash"))
    assert rows["three"] == "yes" and rows["two"] == "no" and rows["No."] == "no" and rows["umbrella"] == "yes"
    assert rows["parasol"] is None
    assert rows["[0.12, 0.21, 0.50, 0.62]"] == "yes" and rows["[0.70, 0.70, 0.90, 0.90]"] == "no"


def test_cascade_defers_only_undecided_items_and_records_stage(db, scripted, tmp_path):
    (tmp_path / "casc.toml").write_text('name = "casc"\nbackend = "cascade"\nstages = ["rules", "scripted.toml"]\n')
    spec = load_spec(str(tmp_path / "casc.toml"))
    hj.make_run(db)
    s = judge_run(db, "r1", spec)
    assert s.scored == 12 and hj.ScriptedBackend.calls == 3     # only the three items rules defer
    by = dict(db.conn.execute("SELECT decided_by, COUNT(*) FROM judgements WHERE judge_name = 'casc' "
                              "GROUP BY decided_by"))
    assert by == {"rules": 9, "scripted": 3}
    assert db.conn.execute("SELECT ms FROM judgements WHERE decided_by='scripted'").fetchone()[0] == 5
    # the LLM stage's results were also stored under its own spec: judging with it alone reuses them
    deferred = [r[0] for r in db.conn.execute("SELECT triple_hash FROM judgements WHERE judge_name = 'casc' "
                                              "AND decided_by = 'scripted'")]
    assert db.conn.execute("SELECT COUNT(*) FROM judgements WHERE judge_name = 'scripted'").fetchone()[0] == 3
    assert judge_triples(db, scripted, deferred).backend_calls == 0


def test_cascade_reuses_the_llm_stage_judgements(db, scripted, tmp_path):
    (tmp_path / "casc.toml").write_text('name = "casc"\nbackend = "cascade"\nstages = ["rules", "scripted.toml"]\n')
    hj.make_run(db)
    judge_run(db, "r1", scripted)                      # the LLM judge alone: 12 calls
    assert hj.ScriptedBackend.calls == 12
    s = judge_run(db, "r1", load_spec(str(tmp_path / "casc.toml")))
    assert s.scored == 12 and hj.ScriptedBackend.calls == 12          # no new call
    reasons = [r[0] for r in db.conn.execute("SELECT reason FROM judgements WHERE judge_name = 'casc' "
                                             "AND decided_by = 'scripted'")]
    assert len(reasons) == 3 and all(r.startswith("reused judgement #") for r in reasons)
    assert db.conn.execute("SELECT COUNT(*) FROM judgements WHERE judge_name = 'scripted'").fetchone()[0] == 12
    # --rejudge means a fresh LLM call for the deferred items too
    s = judge_run(db, "r1", load_spec(str(tmp_path / "casc.toml")), rejudge=True)
    assert s.scored == 12 and hj.ScriptedBackend.calls == 15


def test_api_key_never_stored_or_printed(cli, tmp_path, monkeypatch):
    secret = "sk-test-SECRET-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    f = tmp_path / "t.jsonl"
    f.write_text("".join(json.dumps({"id": i, "question": f"q{i}", "answer": "red", "prediction": "red"}) + "\n"
                         for i in range(3)))
    dbp = tmp_path / "d.db"
    outs = [cli("judge", "--input", f, "--judge", "rules", "--db", dbp, "--json"),
            cli("judge", "--input", f, "--judge", "gpt-4o-mini", "--db", dbp, "--dry-run", "--json"),
            cli("judgements", "list", "--db", dbp, "--json"),
            cli("judgements", "status", "--db", dbp, "--json")]
    for r in outs:
        assert r.code == 0, r.err
        assert secret not in r.out and secret not in r.err
    from vlmdyn_cli.store import open_db

    d = open_db(dbp)
    try:
        assert secret not in hj.dump_db(d)
    finally:
        d.close()


def test_cascade_never_loads_its_llm_when_rules_decide_everything(db, scripted, tmp_path, monkeypatch):
    from vlmdyn_cli.judging.cascade import CascadeBackend

    (tmp_path / "casc.toml").write_text('name = "casc"\nbackend = "cascade"\nstages = ["rules", "scripted.toml"]\n')
    spec = load_spec(str(tmp_path / "casc.toml"))
    built = []
    monkeypatch.setattr(CascadeBackend, "close", lambda self: built.append(self._llm))
    with db.atomic():
        hashes = upsert_triples(db, [("How many?", "3", "three"), ("Colour?", "red", "blue")])
    s = judge_triples(db, spec, hashes)
    assert (s.yes, s.no) == (1, 1) and hj.ScriptedBackend.calls == 0 and built == [None]


def test_cascade_min_confidence_trusts_leaning_rules(db, scripted, tmp_path):
    """A cascade's own min_confidence lets a 0.75 'disjoint' lean decide instead of the LLM stage,
    and the dry run counts the same items as going to the LLM."""
    (tmp_path / "casc.toml").write_text('name = "casc7"\nbackend = "cascade"\nstages = ["rules", "scripted.toml"]\n'
                                        '[decoding]\nmin_confidence = 0.7\n')
    spec = load_spec(str(tmp_path / "casc.toml"))
    hj.make_run(db)
    dry = judge_run(db, "r1", spec, dry_run=True)
    assert hj.ScriptedBackend.calls == 0 and dry.est_prompt_tokens > 0
    assert any(n.endswith("2 go to scripted") for n in dry.notes), dry.notes
    s = judge_run(db, "r1", spec)
    # only the open-ended "why" item (at both checkpoints) reaches the LLM; "parasol" is a rules "no"
    assert s.scored == 12 and hj.ScriptedBackend.calls == 2
    row = db.conn.execute("SELECT j.verdict, j.decided_by FROM judgements j JOIN triples t ON t.hash = j.triple_hash "
                          "WHERE j.judge_name = 'casc7' AND t.prediction = 'parasol'").fetchone()
    assert tuple(row) == ("no", "rules")
