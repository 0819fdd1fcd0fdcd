"""`vlmdyn demo` on a small configuration: the whole pipeline, its resume after an
interruption, the summary checks, and the CLI's summary and bad input."""

from __future__ import annotations

import json
import sqlite3

import pytest

from vlmdyn_cli.demo.pipeline import DemoConfig, run_demo
from vlmdyn_cli.progress import NullReporter, Reporter

pytestmark = pytest.mark.slow     # the whole pipeline, several times

SMALL = dict(seeds=1, images=120, judge="rules", seen_size=40, unseen_size=40)
TABLES = ("datasets", "qa_pairs", "runs", "checkpoints", "run_order", "eval_sets", "eval_set_members",
          "generations", "judgements")


class InterruptAt(Reporter):
    """Raises KeyboardInterrupt once a task whose name contains `where` has advanced `after` units."""

    def __init__(self, where: str, after: int):
        self.where, self.after, self.fired = where, after, False

    def _update(self, h):
        if not self.fired and self.where in h.desc and h.done >= self.after:
            self.fired = True
            raise KeyboardInterrupt


def counts(db_path) -> dict[str, int]:
    c = sqlite3.connect(db_path)
    try:
        return {t: c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        c.close()


def expected_generations(db_path) -> int:
    """Every evaluated checkpoint (the schedule without the end of the epoch) of every run
    answers every distinct member of that run's sets."""
    c = sqlite3.connect(db_path)
    try:
        return c.execute(
            "SELECT SUM(n_ckpt * n_qa) FROM (SELECT r.id, "
            " (SELECT COUNT(*) FROM checkpoints k WHERE k.run_id = r.id AND k.step > 0 "
            "  AND k.step < r.total_steps) AS n_ckpt, "
            " (SELECT COUNT(DISTINCT m.qa_id) FROM eval_set_members m JOIN eval_sets e ON e.id = m.set_id "
            "  WHERE e.run_id = r.id) AS n_qa FROM runs r)").fetchone()[0]
    finally:
        c.close()


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    res = run_demo(DemoConfig(out=out, **SMALL), NullReporter())
    return out, res


def test_small_demo_produces_everything(small_demo):
    out, res = small_demo
    assert res.runs == ["demo-s0"]
    n = counts(out / "vlmdyn.db")
    assert n["runs"] == 1 and n["checkpoints"] >= 6 and n["run_order"] > 0
    assert n["generations"] == expected_generations(out / "vlmdyn.db") > 0
    assert n["judgements"] > 0
    for f in res.figures.values():
        assert (out / "figures").joinpath(f.rsplit("/", 1)[-1]).stat().st_size > 1000
    assert res.report.stat().st_size > 1000
    names = [r["set"] for r in res.accuracy]
    assert "unseen" in names and "unseen-pair" in names and "unseen-none" in names
    assert any(n.startswith("seen@") for n in names)
    for row in res.accuracy:
        for k, v in row.items():
            if k != "set" and v is not None:
                assert 0.0 <= v <= 1.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["findings"] == json.loads(json.dumps(res.findings.to_dict(), default=str))
    assert {f.id[0] for f in res.findings.findings} == set("12345678")
    for f in res.findings.findings:
        assert f.verdict in ("observed", "not observed", "cannot be shown") and f.why and f.rule


def test_demo_trains_with_its_recipe_and_sizes_each_seen_set_by_its_candidates(small_demo):
    """DEMO_TRAINING reaches the run's stored config; a Seen@k set with fewer candidates than
    asked (the first, ~1% into the epoch) is capped alone, the others keep the asked size."""
    from vlmdyn_cli.demo.pipeline import DEMO_TRAINING

    out, _ = small_demo
    c = sqlite3.connect(out / "vlmdyn.db")
    cfg = json.loads(c.execute("SELECT config_json FROM runs").fetchone()[0])
    sizes = dict(c.execute("SELECT k_step, size FROM eval_sets WHERE kind = 'seen' ORDER BY k_step"))
    c.close()
    assert cfg["parts"]["lr"] == DEMO_TRAINING["parts"]["lr"]
    assert all(cfg["train"][k] == v for k, v in DEMO_TRAINING["train"].items())
    first, *rest = sizes.values()
    assert first < SMALL["seen_size"] and set(rest) == {SMALL["seen_size"]}


def test_rerun_redoes_nothing(small_demo):
    out, _ = small_demo
    before = counts(out / "vlmdyn.db")
    c = sqlite3.connect(out / "vlmdyn.db")
    scored = "SELECT id, created_at, verdict FROM judgements WHERE status = 'scored' ORDER BY id"
    stamps = c.execute(scored).fetchall()
    c.close()
    res = run_demo(DemoConfig(out=out, **SMALL), NullReporter())
    assert counts(out / "vlmdyn.db") == before
    c = sqlite3.connect(out / "vlmdyn.db")
    # scored judgements are kept as they were (only "cannot decide" items are offered to the judge again)
    assert c.execute(scored).fetchall() == stamps and stamps
    c.close()
    assert res.timings["train demo-s0"] < 30   # resumed a finished run: nothing trained again


@pytest.mark.parametrize("where,after", [("[train demo-s0]", 20), ("[infer demo-s0]", 100),
                                         ("[judge demo-s0]", 200)])
def test_interrupted_demo_resumes_without_losing_or_duplicating(tmp_path, small_demo, where, after):
    ref_out, ref = small_demo
    rep = InterruptAt(where, after)
    with pytest.raises(KeyboardInterrupt):
        run_demo(DemoConfig(out=tmp_path, **SMALL), rep)
    assert rep.fired
    res = run_demo(DemoConfig(out=tmp_path, **SMALL), NullReporter())
    got, want = counts(tmp_path / "vlmdyn.db"), counts(ref_out / "vlmdyn.db")
    assert got == want
    assert got["generations"] == expected_generations(tmp_path / "vlmdyn.db")
    # same seed, same data: the same numbers as the uninterrupted demo
    assert res.accuracy == ref.accuracy
    assert [f.why for f in res.findings.findings] == [f.why for f in ref.findings.findings]


_SEEN_ITEMS = ("SELECT g.triple_hash FROM generations g JOIN eval_set_members m ON m.qa_id = g.qa_id "
               "JOIN eval_sets e ON e.id = m.set_id WHERE e.kind = 'seen' AND e.run_id = g.run_id")


def test_findings_on_the_demo_database_follow_the_verdicts(cli, tmp_path, small_demo):
    """`vlmdyn findings` on a real demo database: make the seen items right and everything else
    wrong and the two frontiers are observed; the reverse and they are not."""
    import shutil

    src, _ = small_demo
    for seen_v, other_v, expect in (("yes", "no", "observed"), ("no", "yes", "not observed")):
        dst = tmp_path / f"{seen_v}.db"
        shutil.copy(src / "vlmdyn.db", dst)
        c = sqlite3.connect(dst)
        with c:
            c.execute("UPDATE judgements SET status = 'scored', verdict = ?", (other_v,))
            c.execute(f"UPDATE judgements SET verdict = ? WHERE triple_hash IN ({_SEEN_ITEMS})", (seen_v,))
        c.close()
        r = cli("findings", "--db", dst, "--runs-like", "demo-s*", "--judge", "rules", "--json")
        assert r.code == 0, r.err
        one = {f["id"]: f for f in json.loads(r.out)["findings"]}["1"]
        assert one["verdict"] == expect, one["why"]
        # (identical triples can be shared by a seen and an unseen item, e.g. a "why" question with its
        # fixed answer, or an OCR template: then both get the seen verdict, hence not exactly 100)
        assert abs(one["per_seed"]["demo-s0"]) > 75


def test_cli_prints_summary_and_rejects_bad_flags(cli, small_demo, tmp_path):
    out, _ = small_demo
    r = cli("demo", "--out", out, "--seeds", "1", "--images", "120", "--judge", "rules",
            "--seen-size", "40", "--unseen-size", "40")
    assert r.code == 0, r.err
    for text in ("Database:", "Accuracy by evaluation set", "Findings of the paper", "Two frontiers",
                 "Numbers behind each verdict", "vlmdyn findings --db", "vlmdyn tui --db"):
        assert text in r.out
    r = cli("demo", "--out", out, "--seeds", "1", "--images", "120", "--judge", "rules",
            "--seen-size", "40", "--unseen-size", "40", "--json")
    assert r.code == 0 and len(json.loads(r.out)["findings"]["findings"]) == 13
    bad = cli("demo", "--out", tmp_path / "x", "--seeds", "0")
    assert bad.code == 2 and "--seeds" in bad.err
    bad = cli("demo", "--out", tmp_path / "y", "--judge", "no-such-judge")
    assert bad.code == 2 and "no-such-judge" in bad.err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y" / "vlmdyn.db").exists()
