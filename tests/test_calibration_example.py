"""The worked calibration example (examples/calibration/) on its shipped files.

Runs the example's sample + import + labels + report steps for the `rules`
judge and a fitted judge (the local GGUF judge is left out to stay fast), and
checks every number against a computation straight from the shipped sheets
and items.jsonl that does not go through the calibration code.
"""

import csv
import json
import math
import tomllib
from pathlib import Path

import pytest

from vlmdyn_cli.judging.rules import decide
from vlmdyn_cli.store import open_db

EX = Path(__file__).resolve().parent.parent / "examples" / "calibration"
SHEETS = {"agent-rater-1": EX / "ratings-agent-rater-1.csv", "agent-rater-2": EX / "ratings-agent-rater-2.csv"}
FEATURES = "rules,token-f1,contains,len-ratio"


def _items() -> list[dict]:
    return [json.loads(line) for line in (EX / "items.jsonl").read_text(encoding="utf-8").splitlines() if line]


def _sheet(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _human_verdicts() -> dict[tuple, str]:
    """(question, reference, prediction) -> yes/no: yes when >= 75% of the raters said yes."""
    votes: dict[tuple, list[str]] = {}
    for path in SHEETS.values():
        for r in _sheet(path):
            votes.setdefault((r["question"], r["reference"], r["prediction"]), []).append(r["label"])
    return {k: "yes" if v.count("yes") / len(v) >= 0.75 else "no" for k, v in votes.items()}


def _agreement(pred: list[str], truth: list[str]) -> dict:
    tp = sum(p == t == "yes" for p, t in zip(pred, truth))
    tn = sum(p == t == "no" for p, t in zip(pred, truth))
    fp = sum(p == "yes" and t == "no" for p, t in zip(pred, truth))
    fn = sum(p == "no" and t == "yes" for p, t in zip(pred, truth))
    n = len(pred)
    po = (tp + tn) / n
    pe = ((tp + fp) / n) * ((tp + fn) / n) + ((fn + tn) / n) * ((fp + tn) / n)
    return {"n": n, "accuracy": po, "precision": tp / (tp + fp), "recall": tp / (tp + fn),
            "kappa": (po - pe) / (1 - pe), "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn}}


@pytest.fixture
def example_db(tmp_path, cli, db_path):
    """The first steps of run.sh: the sample (seed 0) and both rater sheets imported."""
    sheet = tmp_path / "sheet.csv"
    r = cli("calibrate", "sample", "--input", EX / "items.jsonl", "--n", 100, "--name", "synth100",
            "--seed", 0, "--out", sheet, "--db", db_path, "--json")
    assert r.code == 0, r.err
    # the draw gives the ids the shipped sheets use: same rows, label column aside
    drawn = [{k: v for k, v in row.items() if k != "label"} for row in _sheet(sheet)]
    for path in SHEETS.values():
        assert [{k: v for k, v in row.items() if k != "label"} for row in _sheet(path)] == drawn
    for rater, path in SHEETS.items():
        r = cli("calibrate", "import", path, "--rater", rater, "--db", db_path, "--json")
        assert r.code == 0, r.err
        assert json.loads(r.out)[0]["imported"] == 100
    return db_path


def test_shipped_files_are_complete_and_consistent():
    items = _items()
    assert len(items) == 100 and len({(i["question"], i["answer"], i["prediction"]) for i in items}) == 100
    keys = {(i["question"], i["answer"], i["prediction"]) for i in items}
    for path in SHEETS.values():
        rows = _sheet(path)
        assert len(rows) == 100 and {r["label"] for r in rows} <= {"yes", "no"}
        assert {(r["question"], r["reference"], r["prediction"]) for r in rows} == keys
        assert [r["item_id"] for r in rows] == [f"synth100-{i:04d}" for i in range(1, 101)]


def test_labels_match_the_sheets(cli, example_db):
    r = cli("calibrate", "labels", "--min-raters", 2, "--sample", "synth100", "--db", example_db, "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    a, b = (_sheet(p) for p in SHEETS.values())
    same = sum(x["label"] == y["label"] for x, y in zip(a, b)) / 100
    hv = _human_verdicts()
    assert out["items"] == 100 and out["raters"] == sorted(SHEETS)
    assert out["pairwise"]["overall"] == pytest.approx(same)
    assert out["share_yes"] == pytest.approx(sum(v == "yes" for v in hv.values()) / 100)


def test_rules_report_matches_an_independent_count(cli, example_db):
    r = cli("calibrate", "report", "--judge", "rules", "--min-raters", 2, "--sample", "synth100",
            "--db", example_db, "--json", "--quiet")
    assert r.code == 0, r.err
    rep = json.loads(r.out)["judges"][0]
    hv = _human_verdicts()
    pred, truth = [], []
    for it in _items():
        d = decide(it["question"], it["answer"], it["prediction"])
        if d.verdict is not None and d.confidence >= 0.8:  # the rules spec's min_confidence
            pred.append(d.verdict)
            truth.append(hv[(it["question"], it["answer"], it["prediction"])])
    want = _agreement(pred, truth)
    assert rep["n_scored"] == want["n"] and rep["n_unscored"] == 100 - want["n"]
    assert rep["confusion"] == want["confusion"]
    for k in ("accuracy", "precision", "recall", "kappa"):
        assert rep[k] == pytest.approx(want[k]), k


def test_fitted_judge_report_matches_its_saved_weights(cli, example_db, tmp_path):
    out_dir = tmp_path / "judges"
    r = cli("calibrate", "fit", "--name", "fitted-cheap", "--features", FEATURES, "--out-dir", out_dir,
            "--min-raters", 2, "--sample", "synth100", "--db", example_db, "--json", "--quiet")
    assert r.code == 0, r.err
    fit = json.loads(r.out)
    assert fit["n_items"] == 100 and fit["held_out"]["n"] == 100  # cross-validated: every item held out once
    spec_path = out_dir / "fitted-cheap.toml"
    r = cli("calibrate", "report", "--judge", spec_path, "--min-raters", 2, "--sample", "synth100",
            "--db", example_db, "--json", "--quiet")
    assert r.code == 0, r.err
    rep = json.loads(r.out)["judges"][0]
    assert rep["n_scored"] == 100 and rep["n_unscored"] == 0

    # apply the saved logistic regression by hand: standardise, weigh, squash, threshold
    opts = tomllib.loads(spec_path.read_text())["options"]
    assert opts["features"] == FEATURES.split(",")
    hv = _human_verdicts()
    stored = {(q, a, p): py for q, a, p, py in open_db(example_db).execute(
        "SELECT t.question, t.answer, t.prediction, j.p_yes FROM judgements j JOIN triples t"
        " ON t.hash = j.triple_hash WHERE j.judge_name = 'fitted-cheap'").fetchall()}
    pred, truth = [], []
    for it in _items():
        key = (it["question"], it["answer"], it["prediction"])
        x = _features(it)
        z = opts["bias"] + sum(w * (v - m) / s for w, v, m, s in zip(opts["weights"], x, opts["mean"], opts["scale"]))
        p_yes = 1 / (1 + math.exp(-z))
        assert stored[key] == pytest.approx(p_yes, abs=1e-9), key
        pred.append("yes" if p_yes >= opts["threshold"] else "no")
        truth.append(hv[key])
    want = _agreement(pred, truth)
    assert rep["confusion"] == want["confusion"]
    assert rep["accuracy"] == pytest.approx(want["accuracy"])
    assert rep["kappa"] == pytest.approx(want["kappa"])


def _words(s: str) -> list[str]:
    from vlmdyn_cli.judging.normalize import normalize

    return normalize(s).split()


def _features(it: dict) -> list[float]:
    """rules, token-f1, contains, len-ratio for one item, written out here from their definitions."""
    d = decide(it["question"], it["answer"], it["prediction"])
    rules = {"yes": 1.0, "no": -1.0}.get(d.verdict or "", 0.0) * d.confidence
    a, p = _words(it["answer"]), _words(it["prediction"])
    common = sum(min(a.count(w), p.count(w)) for w in set(a))
    f1 = 0.0 if not common else 2 * common / (len(a) + len(p))
    sa, sp = " ".join(a), " ".join(p)
    contains = float(bool(sa and sp) and (f" {sa} " in f" {sp} " or f" {sp} " in f" {sa} "))
    len_ratio = math.log((len(p) + 1) / (len(a) + 1))
    return [rules, f1, contains, len_ratio]
