"""The runner: content-addressed cache, retries of unscored rows, runs, cost cap, dry run, options."""

import pytest

import helpers_judging as hj
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.judging import backends
from vlmdyn_cli.judging.run import judge_run, judge_triples
from vlmdyn_cli.judging.spec import load_spec
from vlmdyn_cli.store.db import upsert_triples


@pytest.fixture
def scripted(monkeypatch, tmp_path):
    monkeypatch.setitem(backends.BACKENDS, "scripted", "helpers_judging:ScriptedBackend")
    monkeypatch.setattr(hj.ScriptedBackend, "calls", 0)
    monkeypatch.setattr(hj.ScriptedBackend, "answer", staticmethod(lambda item: "{'p': 'yes', 'MS': 5, 'MD': 5, 'H': 5}"))
    monkeypatch.setattr(hj.ScriptedBackend, "cost_per_item", 0.0)
    monkeypatch.setattr(hj.ScriptedBackend, "error", staticmethod(lambda item: None))
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
        lambda item: "I think it is right." if item.question in bad else "{'p': 'no', 'MS': 1, 'MD': 1, 'H': 1}"))
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


def test_backend_errors_become_unscored(db, scripted, monkeypatch):
    monkeypatch.setattr(hj.ScriptedBackend, "error", staticmethod(lambda item: "HTTP 500 after 5 retries"))
    s = judge_triples(db, scripted, _triples(db, 3))
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


def test_cascade_never_loads_its_llm_when_rules_decide_everything(db, scripted, tmp_path, monkeypatch):
    from vlmdyn_cli.judging.backends.cascade import CascadeBackend

    (tmp_path / "casc.toml").write_text('name = "casc"\nbackend = "cascade"\nstages = ["rules", "scripted.toml"]\n')
    spec = load_spec(str(tmp_path / "casc.toml"))
    built = []
    monkeypatch.setattr(CascadeBackend, "close", lambda self: built.append(self._last))
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


def _lines(tmp_path, n=2):
    f = tmp_path / "t.jsonl"
    f.write_text("".join(f'{{"question": "q{i}", "answer": "red", "prediction": "red"}}\n' for i in range(n)))
    return f


def _stored_counts(dbp):
    from vlmdyn_cli.store import open_db

    d = open_db(dbp)
    try:
        return tuple(d.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                     for t in ("triples", "judge_specs", "judgements"))
    finally:
        d.close()


def test_a_misspelt_or_mistyped_spec_option_is_exit_2_naming_it(cli, tmp_path):
    dbp = tmp_path / "d.db"
    for extra, expect in (('[options]\nn_thread = 2\n', ["'n_thread'", "did you mean 'n_threads'", "n_ctx"]),
                          ('[options]\nn_threads = "two"\n', ["'n_threads'", "must be int", "'two'"])):
        spec = hj.write_spec(tmp_path, name="loc", backend="llama-cpp", extra=extra)
        for dry in ([], ["--dry-run"]):
            r = cli("judge", "--input", _lines(tmp_path), "--judge", spec, "--db", dbp, *dry)
            assert r.code == 2, r.err
            assert all(e in r.err for e in expect), r.err
    assert _stored_counts(dbp) == (0, 0, 0)                   # nothing was written


def test_a_command_line_option_the_backend_does_not_take_is_exit_2(cli, tmp_path):
    dbp = tmp_path / "d.db"
    r = cli("judge", "--input", _lines(tmp_path), "--judge", "rules", "--concurrency", "4", "--db", dbp)
    assert r.code == 2 and "has no option 'concurrency' (given on the command line)" in r.err
    r = cli("judge", "--input", _lines(tmp_path), "--judge", "local", "--batch", "--db", dbp)
    assert r.code == 2 and "'batch'" in r.err and "n_threads" in r.err
    r = cli("judge", "--input", _lines(tmp_path), "--judge", "gpt-4o-mini", "--threads", "2", "--db", dbp,
            "--dry-run")
    assert r.code == 2 and "'n_threads'" in r.err
    r = cli("judge", "--input", _lines(tmp_path), "--judge", "cascade", "--concurrency", "2", "--db", dbp,
            "--dry-run")                                      # a cascade's last stage (the fitted judge) checks them
    assert r.code == 2 and "judge 'lexical' (backend fitted) has no option 'concurrency'" in r.err
    assert _stored_counts(dbp) == (0, 0, 0)
    r = cli("judge", "--input", _lines(tmp_path), "--judge", "cascade", "--threads", "1", "--db", dbp,
            "--dry-run", "--json")
    assert r.code == 0, r.err


def test_the_cascade_reaches_stored_verdicts_only_through_its_context(tmp_path, scripted):
    """A backend knows nothing of the database: the cascade's reuse and sharing of its LLM stage's
    verdicts go through the two functions the runner lends it, here plain functions over a dict."""
    from vlmdyn_cli.judging.backends import create_backend
    from vlmdyn_cli.judging.backends.base import Context, Item
    from vlmdyn_cli.judging.verdict import decided

    (tmp_path / "casc.toml").write_text('name = "casc"\nbackend = "cascade"\nstages = ["rules", "scripted.toml"]\n')
    spec = load_spec(str(tmp_path / "casc.toml"))
    stage = spec.stages[1]
    store = {("scripted", "k-open-2"): (41, decided("k-open-2", "no", raw="{'p': 'no'}", cost_usd=0.5))}
    remembered = []
    ctx = Context(stored=lambda s, key: store.get((s.name, key)), remember=lambda s, v: remembered.append((s, v)))
    items = [Item("k-num", "How many cats?", "3", "three"),
             Item("k-open-1", "Why is he smiling?", "Because he just won a prize at the fair", "He won."),
             Item("k-open-2", "Why is she sad?", "She lost her favourite red umbrella in the rain", "Rain.")]
    out = {}
    backend = create_backend(spec, None, ctx)
    backend.run(items, lambda v: out.setdefault(v.key, v))
    backend.close()
    assert {k: (v.status, v.verdict, v.decided_by) for k, v in out.items()} == {
        "k-num": ("scored", "yes", "rules"), "k-open-1": ("scored", "yes", "scripted"),
        "k-open-2": ("scored", "no", "scripted")}
    assert out["k-open-2"].reason == "reused judgement #41 of scripted" and out["k-open-2"].cost_usd == 0.5
    assert hj.ScriptedBackend.calls == 1                                     # only k-open-1 was asked
    assert [(s.name, v.key, v.decided_by) for s, v in remembered] == [(stage.name, "k-open-1", "scripted")]


def test_backends_never_touch_the_database():
    """The backend contract, checked on the source: no backend module imports the store or SQLite."""
    import ast
    from pathlib import Path

    import vlmdyn_cli.judging.backends as pkg
    import vlmdyn_cli.judging.rules as rules

    for path in [*Path(pkg.__file__).parent.glob("*.py"), Path(rules.__file__)]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for n in names:
                assert not n.startswith(("vlmdyn_cli.store", "sqlite3", "sqlite_utils")), f"{path.name} imports {n}"


def test_base_url_for_a_judge_that_cannot_use_it_is_exit_2(cli, tmp_path):
    r = cli("judge", "--input", _lines(tmp_path), "--judge", "cascade", "--base-url", "http://127.0.0.1:9/v1",
            "--db", tmp_path / "d.db", "--dry-run")
    assert r.code == 2 and "ends with the fitted judge 'lexical', which has no model" in r.err
    r = cli("judge", "--input", _lines(tmp_path), "--judge", "local", "--base-url", "http://127.0.0.1:9/v1",
            "--db", tmp_path / "d.db", "--dry-run")
    assert r.code == 2 and "has no option 'base_url' (given on the command line)" in r.err
