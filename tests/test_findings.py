"""The findings checks (vlmdyn_cli.findings) follow the judgements: on a synthetic experiment
database every judgement is rewritten by a rule (yes where the rule holds, no elsewhere), once so
that a finding holds and once so that it does not; plus the bad inputs of `vlmdyn findings`."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.findings import CANNOT, NOT_OBSERVED, OBSERVED, check_findings
from vlmdyn_cli.store import open_db
from vlmdyn_cli.testing.synthdb import fill_synthetic

# the paper's checkpoint fractions of the epoch on a 1000-step epoch: first 10, q (25%) 250, L 750
CKPTS = (10, 70, 150, 250, 500, 750)
FIRST, Q, LAST = 10, 250, 750


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("findings") / "base.db"
    db = open_db(path)
    fill_synthetic(db, seeds=2, checkpoints=CKPTS, set_size=60, dedup_size=60, total_steps=1000)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


def judged(base, tmp_path, rule: str, name: str = "x.db"):
    """A copy of ``base`` where every judgement is scored, 'yes' where ``rule`` holds for its
    generation, else 'no'. ``rule`` is SQL over g (generations: step), q (qa_pairs: category,
    subcategory) and e (the evaluation set holding the item: kind, k_step, dedup)."""
    dst = tmp_path / name
    shutil.copy(base, dst)
    c = sqlite3.connect(dst)
    with c:
        c.execute("CREATE TEMP TABLE v (h TEXT PRIMARY KEY, yes INTEGER)")
        c.execute(f"""INSERT INTO v SELECT g.triple_hash, MAX(CASE WHEN {rule} THEN 1 ELSE 0 END)
                      FROM generations g JOIN qa_pairs q ON q.id = g.qa_id
                      JOIN eval_set_members m ON m.qa_id = g.qa_id
                      JOIN eval_sets e ON e.id = m.set_id AND e.run_id = g.run_id GROUP BY g.triple_hash""")
        c.execute("UPDATE judgements SET status = 'scored', reason = NULL, "
                  "verdict = CASE WHEN (SELECT yes FROM v WHERE h = triple_hash) THEN 'yes' ELSE 'no' END")
    c.close()
    return dst


def findings(path, **kw) -> dict:
    db = open_db(path)
    try:
        rep = check_findings(db, like="synth-s*", **kw)
    finally:
        db.close()
    return {f.id: f for f in rep.findings}


SEEN_TRAINED = "e.kind = 'seen' AND g.step >= e.k_step"


@pytest.mark.parametrize("rule,fid,verdict", [
    # 1: trained-on seen sets right, unseen wrong -> two frontiers; the reverse -> not
    ("e.kind = 'seen'", "1", OBSERVED),
    ("e.kind = 'unseen'", "1", NOT_OBSERVED),
    # 2: each Seen@k right from k on (wrong before) -> it jumps at k; right only before k -> it drops
    (SEEN_TRAINED, "2", OBSERVED),
    ("e.kind = 'seen' AND g.step < e.k_step", "2", NOT_OBSERVED),
    # 3: pair-de-duplicated unseen right, image-de-duplicated wrong -> inflation; reverse -> not
    ("e.dedup = 'pair'", "3", OBSERVED),
    ("e.dedup = 'image'", "3", NOT_OBSERVED),
    # 4a: Bounding wrong at the first checkpoint -> near 0; right there -> not
    (f"q.category != 'Bounding' OR g.step > {FIRST}", "4a", OBSERVED),
    ("1", "4a", NOT_OBSERVED),
    # 4b: Bounding wrong, the rest right -> lowest; Object wrong instead -> not
    ("q.category != 'Bounding'", "4b", OBSERVED),
    ("q.category != 'Object'", "4b", NOT_OBSERVED),
    # 4c: Complex learned by q, flat after -> plateau; learned only at L -> not
    (f"q.category = 'Complex' AND g.step >= {Q}", "4c", OBSERVED),
    (f"q.category = 'Complex' AND g.step >= {LAST}", "4c", NOT_OBSERVED),
    # 4d: OCR right, the rest wrong -> OCR best; OCR wrong -> not
    ("q.category = 'OCR'", "4d", OBSERVED),
    ("q.category != 'OCR'", "4d", NOT_OBSERVED),
    # 4e: Object, Spatial, OCR right -> they reach 50%; Spatial wrong -> not
    ("q.category IN ('Object', 'Spatial', 'OCR')", "4e", OBSERVED),
    ("q.category IN ('Object', 'OCR')", "4e", NOT_OBSERVED),
    # 5: OCR right only when trained on, everything else right everywhere -> OCR gap large, others 0;
    #    Bounding memorised too -> its gap is not 0
    ("q.category != 'OCR' OR e.kind = 'seen'", "5", OBSERVED),
    ("q.category NOT IN ('OCR', 'Bounding') OR e.kind = 'seen'", "5", NOT_OBSERVED),
    # 6a: OCR right on the later seen sets -> rising with recency; on the earlier ones -> not
    (f"q.category = 'OCR' AND e.kind = 'seen' AND e.k_step >= {Q}", "6a", OBSERVED),
    (f"q.category = 'OCR' AND e.kind = 'seen' AND e.k_step < {Q}", "6a", NOT_OBSERVED),
    # 6b: Complex right on the earlier seen sets -> later sets worse; on the later ones -> not
    (f"q.category = 'Complex' AND e.kind = 'seen' AND e.k_step < {Q}", "6b", OBSERVED),
    (f"q.category = 'Complex' AND e.kind = 'seen' AND e.k_step >= {Q}", "6b", NOT_OBSERVED),
    # 7: describe and bbox alike -> only slightly better (by 0); describe right, bbox wrong -> not slight
    ("q.category = 'Bounding'", "7", OBSERVED),
    ("q.subcategory = 'describe'", "7", NOT_OBSERVED),
    # 8: OCR semantic right, recognition wrong -> semantic first; the reverse -> not
    ("q.subcategory = 'semantic'", "8", OBSERVED),
    ("q.subcategory = 'recognition'", "8", NOT_OBSERVED),
])
def test_each_check_follows_the_verdicts(base, tmp_path, rule, fid, verdict):
    f = findings(judged(base, tmp_path, rule))[fid]
    assert f.verdict == verdict, (rule, f.why)
    assert len(f.per_seed) == 2 and f.mean is not None and f.sd is not None, f


def test_numbers_per_seed_and_pooled(base, tmp_path):
    fs = findings(judged(base, tmp_path, "e.kind = 'seen'"))
    one = fs["1"]
    # (a few identical OCR-template triples are shared by seen and unseen items: hence not exactly 100)
    assert set(one.per_seed) == {"synth-s0", "synth-s1"} and all(v > 90 for v in one.per_seed.values())
    assert one.mean == pytest.approx(sum(one.per_seed.values()) / 2, abs=0.01) and one.sd is not None
    assert "trained-on Seen@k" in one.why and "positive in 2 of 2 seeds" in one.why
    # the seen sets before k are not counted as trained-on: at the first checkpoint only seen@10 is
    assert fs["4a"].details["synth-s0"]["step"] == FIRST
    jump = findings(judged(base, tmp_path, SEEN_TRAINED, "jump.db"))["2"]
    assert jump.per_seed == {"synth-s0": 5.0, "synth-s1": 5.0}   # every set after the first jumps
    assert "5 of 5 sets jump (need 4)" in jump.why
    row = jump.details["synth-s0"]["sets"][f"seen@{Q}"]
    assert row["seen_before"] < 10 and row["seen_at_k"] > 90 and abs(row["before_minus_unseen"]) < 10


def test_finding_3_compares_pair_with_image_dedup(base, tmp_path):
    """No de-dup right, pair de-dup wrong: finding 3 (pair vs image) sees nothing; the no-de-dup
    gap is reported beside it."""
    f = findings(judged(base, tmp_path, "e.dedup = 'none'"))["3"]
    # (the no-de-dup set may share items with the image-de-duplicated one, never with the pair one)
    assert f.verdict == NOT_OBSERVED and f.mean <= 0
    assert f.details["synth-s0"]["none_minus_image"] > 50


def test_memorisation_checks_are_category_standardised(base, tmp_path):
    """Right on every category but Bounding, in every set alike: sets differ only in their mixes,
    and the standardised comparisons find no difference at all."""
    fs = findings(judged(base, tmp_path, "q.category != 'Bounding'"))
    assert fs["1"].verdict == NOT_OBSERVED and fs["1"].mean == 0.0
    assert fs["3"].verdict == NOT_OBSERVED and fs["3"].mean == 0.0
    assert fs["2"].verdict == NOT_OBSERVED and fs["2"].mean == 0.0


def test_one_seed_is_said(base, tmp_path):
    db = open_db(judged(base, tmp_path, "e.kind = 'seen'"))
    rep = check_findings(db, runs=["synth-s0"])
    db.close()
    f = {f.id: f for f in rep.findings}["1"]
    assert f.verdict == OBSERVED and f.sd is None and list(f.per_seed) == ["synth-s0"]
    assert any("one run" in n for n in rep.notes)


def test_partial_judging_is_named_not_counted(base, tmp_path):
    """A judge that left items of the unseen set at L unjudged: the findings that need that set
    cannot be shown and say which set, step and run; the others are still checked."""
    path = judged(base, tmp_path, "e.kind = 'seen'")
    c = sqlite3.connect(path)
    with c:
        c.execute("DELETE FROM judgements WHERE triple_hash IN (SELECT g.triple_hash FROM generations g "
                  "JOIN eval_set_members m ON m.qa_id = g.qa_id JOIN eval_sets e ON e.id = m.set_id "
                  f"AND e.run_id = g.run_id WHERE e.name = 'unseen' AND g.step = {LAST} AND g.run_id = "
                  "(SELECT id FROM runs WHERE name = 'synth-s1') LIMIT 5)")
    c.close()
    fs = findings(path)
    assert fs["1"].verdict == CANNOT and fs["1"].mean is None
    assert f"set unseen at step {LAST}" in fs["1"].why and "not judged" in fs["1"].why and "synth-s1" in fs["1"].why
    assert fs["8"].verdict != CANNOT   # the early checkpoints are complete


def test_one_checkpoint(tmp_path):
    db = open_db(tmp_path / "one.db")
    fill_synthetic(db, seeds=2, checkpoints=(250,), set_size=40, dedup_size=40, total_steps=1000)
    rep = check_findings(db, like="synth-s*")
    db.close()
    fs = {f.id: f for f in rep.findings}
    assert fs["2"].verdict == CANNOT and "no Seen@k set has an evaluated checkpoint before k" in fs["2"].why
    assert fs["4c"].verdict == CANNOT
    assert fs["1"].verdict != CANNOT
    assert any("only one evaluated checkpoint" in n for n in rep.notes)


def test_nothing_computable_is_bad_input(base, tmp_path):
    path = judged(base, tmp_path, "1")
    c = sqlite3.connect(path)
    with c:   # only the no-de-dup set keeps its judgements: no finding has its data
        c.execute("DELETE FROM judgements WHERE triple_hash NOT IN (SELECT g.triple_hash FROM generations g "
                  "JOIN eval_set_members m ON m.qa_id = g.qa_id JOIN eval_sets e ON e.id = m.set_id "
                  "AND e.run_id = g.run_id WHERE e.dedup = 'none')")
    c.close()
    db = open_db(path)
    with pytest.raises(BadInput, match="no finding can be computed"):
        check_findings(db, like="synth-s*")
    db.close()


def test_cli(cli, base, tmp_path):
    path = judged(base, tmp_path, "e.kind = 'seen'")
    r = cli("findings", "--db", path, "--runs-like", "synth-s*", "--judge", "rules")
    assert r.code == 0, r.err
    for text in ("Findings of the paper", "Two frontiers", "observed", "Rules", "100 ± 0"):
        assert text in r.out, text
    r = cli("findings", "--db", path, "--runs-like", "synth-s*", "--judge", "rules", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["runs"] == ["synth-s0", "synth-s1"]
    assert [f["id"] for f in out["findings"]][:3] == ["1", "2", "3"]
    assert {f["id"][0] for f in out["findings"]} == set("12345678")
    assert all(f["rule"] and f["verdict"] in (OBSERVED, NOT_OBSERVED, CANNOT) for f in out["findings"])
    for args, needle in ((("--runs-like", "nope-*"), "--runs-like 'nope-*' matches no run"),
                         (("--judge", "no-such-judge"), "no-such-judge"),
                         (("--run", "synth-s0", "--runs-like", "synth-s*"), "either --run or --runs-like")):
        bad = cli("findings", "--db", path, *args)
        assert bad.code == 2 and needle in bad.err, bad.err
    c = sqlite3.connect(path)
    with c:
        c.execute("DELETE FROM judgements")
    c.close()
    bad = cli("findings", "--db", path)
    assert bad.code == 2 and "no judgements" in bad.err, bad.err
    bad = cli("findings", "--db", tmp_path / "missing.db")
    assert bad.code == 2
