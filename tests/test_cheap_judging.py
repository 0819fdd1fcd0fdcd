"""Issue 16: the calibrated cascade, teacher labels, the cost view, the honest offline default,
fail-fast on an unreachable endpoint (exit 1), and the rubric score (issue 15 item 2).

Real data: judges/data/nq-dev.jsonl (731 distinct answers with 2-3 human votes each and GPT-4's
stored verdict). The escalation judge is a real loopback HTTP server (tests/servers/
replay_verdicts.py) that answers with the stored GPT-4 verdict in the gpt-4o-mini format.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openai")

from servers.fake_openai import FakeOpenAI  # noqa: E402
from servers.openai_specs import write_spec  # noqa: E402
from servers.replay_verdicts import ReplayVerdicts  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NQ = REPO / "judges" / "data" / "nq-dev.jsonl"
REPLAY_SPEC = REPO / "examples" / "calibration" / "nq" / "gpt4-replay.toml"
ROWS = [json.loads(line) for line in NQ.read_text().splitlines() if line.strip()]


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def nq_db(tmp_path_factory) -> Path:
    """The NQ human votes imported once (tests copy it before writing)."""
    from conftest import run_cli

    p = tmp_path_factory.mktemp("nq") / "nq.db"
    r = run_cli("calibrate", "import", NQ, "--db", p)
    assert r.code == 0, r.err
    return p


@pytest.fixture
def nq(nq_db, tmp_path) -> Path:
    p = tmp_path / "nq.db"
    src, dst = sqlite3.connect(nq_db), sqlite3.connect(p)
    src.backup(dst)
    src.close()
    dst.close()
    return p


@pytest.fixture(scope="module")
def replay():
    with ReplayVerdicts(NQ, "gpt4") as srv:
        yield srv


# ---------------------------------------------------------------- references and features


def test_references_are_kept_apart_and_matched_best_of():
    from vlmdyn_cli.judging import features as F
    from vlmdyn_cli.judging.backends.base import Item
    from vlmdyn_cli.judging.references import decode, display, encode
    from vlmdyn_cli.judging.rules import decide_any

    refs = ["savior", "save, rescue, savior", "rescue"]
    ans = encode(refs)
    assert decode(ans) == refs and encode(["red"]) == "red" and decode("[0.1, 0.2, 0.3, 0.4]") == ["[0.1, 0.2, 0.3, 0.4]"]
    assert display(ans) == 'any of: "savior"; "save, rescue, savior"; "rescue"'
    it = Item("k", "what does hosanna mean", ans, "rescue")
    joined = Item("k", "what does hosanna mean", " ".join(refs), "rescue")
    assert F.f_exact(it) == 1.0 and F.f_exact(joined) == 0.0          # best over references, not a joined string
    assert F.f_token_f1(it) == 1.0 and F.f_token_f1(joined) < 0.5
    assert decide_any(it.question, it.answer, "rescue").verdict == "yes"
    assert decide_any(it.question, it.answer, "praise").verdict in (None, "no")


def test_features_see_through_broken_encoding_accents_and_word_forms():
    from vlmdyn_cli.judging import features as F
    from vlmdyn_cli.judging.backends.base import Item
    from vlmdyn_cli.judging.normalize import repair
    from vlmdyn_cli.judging.references import encode

    # references scraped as UTF-8 read as Windows-1252 (as in nq-dev.jsonl), predictions with or without accents
    assert repair("DÃ¡in") == repair("Dáin") == "Dain" and repair("naïve café") == "naive cafe"
    assert repair("plain text") == "plain text" and repair("日本") == "日本"
    dain = encode(["DÃ¡in", "his cousin DÃ¡in"])
    for pred in ("Dain", "Dáin"):
        assert F.f_exact(Item("k", "who became king of erebor after thorin dies", dain, pred)) == 1.0, pred
    assert F.f_ref_in_pred(Item("k", "who became king after thorin", dain, "Dáin Ironfoot")) == 1.0
    # word forms: the stem features match what the word features miss
    crop = Item("k", "farmers who kept a small portion of their crops", "Sharecropping", "sharecroppers")
    assert F.f_key_recall(crop) == 0.0 and F.f_stem_recall(crop) == 1.0 and F.f_stem_precision(crop) == 1.0
    other = Item("k", "farmers who kept a small portion of their crops", "Sharecropping", "tenant farmers")
    assert F.f_stem_recall(other) == 0.0 and F.f_stem_precision(other) == 0.0
    # character trigrams: partial credit for a spelling without spaces, none for an unrelated word
    mare = Item("k", "where was the film shot", "Weston-super-Mare", "westonsupermare")
    assert 0.3 < F.f_trigram_recall(mare) < 1.0 and F.f_key_recall(mare) == 0.0
    assert F.f_trigram_recall(Item("k", "where was the film shot", "Weston-super-Mare", "Weston super Mare")) == 1.0
    assert F.f_trigram_recall(Item("k", "where was the film shot", "Weston-super-Mare", "Bath")) == 0.0
    # the answer-type cue: the question asks for a place (whole word only)
    assert [F.f_asks_where(Item("k", q, "x", "y")) for q in
            ("Where did the goat originate", "who played doctor smith", "is it nowhere to be seen")] == [1.0, 0.0, 0.0]


def test_nq_import_keeps_votes_references_and_majority(nq, cli):
    con = sqlite3.connect(nq)
    n_labels = con.execute("SELECT COUNT(*) FROM human_labels").fetchone()[0]
    answers = {a for (a,) in con.execute("SELECT answer FROM triples")}
    con.close()
    distinct = {(r["question"], json.dumps(r["references"]), r["prediction"]): r for r in ROWS}
    assert n_labels == sum(len(r["votes"]) for r in distinct.values())
    assert json.dumps(ROWS[0]["references"], ensure_ascii=False) in answers
    r = cli("calibrate", "labels", "--db", nq, "--agreement", "0.5", "--json")
    assert r.code == 0 and json.loads(r.out)["items"] == len(distinct)
    # with --agreement 0.5 the human verdict is the dataset's own majority, item by item
    from vlmdyn_cli.calibration.labels import human_verdicts
    from vlmdyn_cli.store import open_db
    from vlmdyn_cli.store.db import triple_hash

    d = open_db(nq)
    hv = human_verdicts(d, agreement=0.5)
    d.close()
    from vlmdyn_cli.judging.references import encode

    for row in distinct.values():
        assert hv.verdict[triple_hash(row["question"], encode(row["references"]), row["prediction"])] == row["human"]


# ---------------------------------------------------------------- the honest offline default


def test_shipped_lexical_judge_is_reproduced_by_its_documented_command(nq, cli, tmp_path):
    import tomllib

    from vlmdyn_cli.judging.spec import builtin_dir

    shipped = tomllib.loads((Path(str(builtin_dir())) / "lexical.toml").read_text())
    r = cli("calibrate", "fit", "--name", "lexical", "--features", "lexical", "--agreement", "0.5",
            "--folds", "10", "--out-dir", tmp_path / "j", "--db", nq, "--json")
    assert r.code == 0, r.err
    refit = tomllib.loads((tmp_path / "j" / "lexical.toml").read_text())
    assert refit["options"]["features"] == shipped["options"]["features"]
    for k in ("weights", "mean", "scale"):
        assert refit["options"][k] == pytest.approx(shipped["options"][k], abs=1e-9)
    assert json.loads(r.out)["held_out"]["accuracy"] > 0.78


def test_default_cascade_is_never_at_chance_and_says_who_decided(cli, tmp_path, db_path):
    r = cli("judge", "--input", NQ, "--judge", "cascade", "--db", db_path, "--json")
    assert r.code == 0, r.err
    out = [json.loads(line) for line in r.out.splitlines()]
    truth = [row["human"] for row in ROWS]
    by = {}
    for o, t in zip(out, truth):
        by.setdefault(o["decided_by"], []).append(o["verdict"] == t)
    assert set(by) == {"rules", "lexical"}
    base = max(truth.count("yes"), truth.count("no")) / len(truth)
    lex = sum(by["lexical"]) / len(by["lexical"])
    assert lex > 0.70 and sum(by["rules"]) / len(by["rules"]) > 0.85   # (in sample for lexical: a floor)
    assert sum(sum(v) for v in by.values()) / len(truth) > base + 0.15
    r = cli("judgements", "status", "--db", db_path, "--json")
    st = json.loads(r.out)[0]
    distinct = {(x["question"], json.dumps(x["references"]), x["prediction"]): o["decided_by"]
                for x, o in zip(ROWS, out)}                       # (two lines of the file are one item)
    assert st["decided_by"] == {k: list(distinct.values()).count(k) for k in ("rules", "lexical")}


def test_half_split_estimate_of_the_hidden_check():
    """Fitted on the questions of one half, scored on the other (both ways, three splits): the
    offline default (rules >= 0.8, else lexical, l2 30 as shipped) agrees with the humans on 79% or
    more on average. (Halves of ~365 items vary a lot: over 100 random splits the mean is 81.2% and the
    5th percentile 77.7%, examples/calibration/nq/halfsplit.py; these three splits are a fixed sample.)"""
    import random

    import numpy as np

    from vlmdyn_cli.calibration.logreg import fit_logreg
    from vlmdyn_cli.judging import features as F
    from vlmdyn_cli.judging.backends.base import Item
    from vlmdyn_cli.judging.references import encode
    from vlmdyn_cli.judging.rules import decide_any

    items = [Item(r["id"], r["question"], encode(r["references"]), r["prediction"]) for r in ROWS]
    y = np.array([r["human"] == "yes" for r in ROWS], int)
    names = F.expand(["lexical"])
    X = np.array([[F.TEXT_FEATURES[f](it) for f in names] for it in items])
    rules = [decide_any(it.question, it.answer, it.prediction) for it in items]
    qs = sorted({r["question"] for r in ROWS})
    accs = []
    for seed in (1, 2, 3):
        random.Random(seed).shuffle(qs)
        half = np.array([r["question"] in set(qs[:len(qs) // 2]) for r in ROWS])
        for tr in (half, ~half):
            m = fit_logreg(X[tr].tolist(), y[tr].tolist(), l2=30.0)
            v = np.array([m.prob(x) >= 0.5 for x in X[~tr].tolist()], int)
            for j, i in enumerate(np.flatnonzero(~tr)):
                if rules[i].verdict and rules[i].confidence >= 0.8:
                    v[j] = rules[i].verdict == "yes"
            accs.append((v == y[~tr]).mean())
    assert np.mean(accs) >= 0.79 and min(accs) >= 0.77, accs


# ---------------------------------------------------------------- the calibrated cascade


def test_calibrated_cascade_matches_the_llm_with_a_quarter_of_the_calls(nq, cli, replay, tmp_path):
    out = tmp_path / "judges-local"
    r = cli("calibrate", "fit", "--name", "nqc", "--features", "lexical", "--agreement", "0.5",
            "--folds", "10", "--escalate-to", REPLAY_SPEC, "--base-url", replay.base_url, "--max-escalation", "0.25",
            "--out-dir", out, "--db", nq, "--json")
    assert r.code == 0, r.err
    res = json.loads(r.out)
    c = res["cascade"]
    assert res["l2_chosen_by_cv"] and res["l2"] in (1, 3, 10, 30, 100)     # no --l2: chosen by grouped CV
    assert res["fit_to"] == "blend"                       # with --escalate-to: label and LLM verdict averaged
    assert replay.unknown == 0
    # the replayed verdicts are GPT-4's: LLM alone = their agreement with the majority, counted here
    distinct = {(x["question"], json.dumps(x["references"]), x["prediction"]): x for x in ROWS}.values()
    gpt4 = sum(x["gpt4"] == x["human"] for x in distinct) / len(distinct)
    assert c["llm"]["accuracy"] == pytest.approx(gpt4)
    assert c["escalated_share"] <= 0.25
    assert c["cascade"]["accuracy"] >= c["llm"]["accuracy"] - 0.005          # the bar, held out
    assert c["cascade"]["accuracy"] > res["held_out"]["accuracy"] + 0.03
    assert c["usd_per_1000"]["cascade"] == pytest.approx(c["usd_per_1000"]["llm"] * c["escalated_share"])
    # the cascade spec runs like any judge; the LLM stage's verdicts come from the cache (no new call)
    before = replay.counts.get("requests", 0)
    r = cli("judge", "--input", NQ, "--judge", out / "nqc.toml", "--db", nq, "--json")
    assert r.code == 0, r.err
    rows = [json.loads(line) for line in r.out.splitlines()]
    who = {x["decided_by"] for x in rows}
    assert who == {"nqc-cheap", "gpt4-replay"}
    assert replay.counts.get("requests", 0) == before
    sent = {(x["question"], x["answer"], x["prediction"]) for x in rows if x["decided_by"] == "gpt4-replay"}
    assert len(sent) == int(0.25 * len(distinct))         # the per-run budget (two lines of the file are one item)


def test_target_agreement_fits_a_band_and_the_cascade_escalates_exactly_inside_it(nq, cli, replay, tmp_path):
    import tomllib

    out = tmp_path / "jl"
    r = cli("calibrate", "fit", "--name", "tgt", "--features", "lexical", "--agreement", "0.5", "--l2", "10",
            "--folds", "5", "--escalate-to", REPLAY_SPEC, "--base-url", replay.base_url, "--target-agreement", "0.84",
            "--out-dir", out, "--db", nq, "--json")
    assert r.code == 0, r.err
    c = json.loads(r.out)["cascade"]
    dec = tomllib.loads((out / "tgt.toml").read_text())["decoding"]
    lo, hi = dec["defer_band"]
    assert "max_escalation" not in dec and 0 < lo < 0.5 < hi < 1, dec          # a fitted band, no budget
    assert c["target_reached"] and c["band_escalated_in_sample"] < 1
    r = cli("judge", "--input", NQ, "--judge", out / "tgt.toml", "--db", nq, "--json")
    assert r.code == 0, r.err
    cheap = {json.loads(x)["prediction"] + json.loads(x)["answer"]: json.loads(x)["p_yes"] for x in
             cli("judge", "--input", NQ, "--judge", out / "tgt-cheap.toml", "--db", nq, "--json").out.splitlines()}
    for o in map(json.loads, r.out.splitlines()):
        p = cheap[o["prediction"] + o["answer"]]
        assert (o["decided_by"] == "gpt4-replay") == (lo < p < hi)


def _cascade_spec(path: Path, stages: list[str], decoding: str) -> Path:
    path.write_text(f'name = "{path.stem}"\nbackend = "cascade"\nstages = {json.dumps(stages)}\n'
                    f"[decoding]\n{decoding}\n")
    return path


def test_max_escalation_is_a_budget_every_run_keeps_least_sure_first(cli, tmp_path, db_path):
    """A band wider than the budget: only floor(share x n) items reach the last stage, the ones the
    fitted stage is least sure of (ranked in blocks of 512); it decides the others and says why."""
    spec = _cascade_spec(tmp_path / "budget.toml", ["lexical", "rules"],
                         "defer_band = [0.05, 0.95]\nmax_escalation = 0.1")
    r = cli("judge", "--input", NQ, "--judge", "lexical", "--db", db_path, "--json")
    assert r.code == 0, r.err
    p_yes = {(x["question"], json.dumps(x["references"]), x["prediction"]): o["p_yes"]
             for x, o in zip(ROWS, map(json.loads, r.out.splitlines()))}
    for n in (731, 200):
        sub = tmp_path / f"sub{n}.jsonl"
        distinct = list({(x["question"], json.dumps(x["references"]), x["prediction"]): x for x in ROWS}.values())[:n]
        sub.write_text("".join(json.dumps(x) + "\n" for x in distinct))
        r = cli("judge", "--input", sub, "--judge", spec, "--db", tmp_path / f"b{n}.db", "--json")
        assert r.code == 0, r.err
        out = [json.loads(line) for line in r.out.splitlines()]
        p = [p_yes[(x["question"], json.dumps(x["references"]), x["prediction"])] for x in distinct]
        unsure = [i for i in range(n) if 0.05 < p[i] < 0.95]
        assert len(unsure) > 0.1 * n                                     # the band alone would send more
        went = [i for i in range(n) if out[i]["decided_by"] == "rules"]
        assert len(went) == int(0.1 * n)
        if n <= 512:                                                     # one block: ranked against each other
            assert max(abs(p[i] - 0.5) for i in went) <= min(abs(p[i] - 0.5) for i in unsure if i not in went)
        kept = [out[i] for i in unsure if i not in went]
        assert kept and all(o["decided_by"] == "lexical" and "max_escalation 0.1 reached" in o["reason"] for o in kept)


def test_the_budget_goes_to_the_highest_defer_priority(cli, tmp_path, db_path):
    """A fitted stage with a model of whether the last stage is right: the budget goes to the items
    where its own chance of being wrong, less half the last stage's, is highest (recomputed here from
    the spec's weights), which is not the same set as the least sure ones."""
    import tomllib

    from vlmdyn_cli.judging import features as F
    from vlmdyn_cli.judging.backends.base import Item
    from vlmdyn_cli.judging.references import encode

    lex = tomllib.loads((REPO / "judges" / "lexical.toml").read_text())
    names, o = lex["options"]["features"], lex["options"]
    ok_w = [0.0] * len(names)
    ok_w[names.index("token-f1")], ok_w[names.index("pred-len")] = 1.5, -1.0   # "the last stage errs on long answers"
    opts = {**o, "llm_ok_weights": ok_w, "llm_ok_bias": 1.0}
    cheap = tmp_path / "cheap.toml"
    cheap.write_text('name = "cheap"\nbackend = "fitted"\n[options]\n'
                     + "".join(f"{k} = {json.dumps(v)}\n" for k, v in opts.items()))
    spec = _cascade_spec(tmp_path / "prio.toml", [cheap.name, "rules"], "defer_band = [0.0, 1.0]\nmax_escalation = 0.2")
    distinct = list({(x["question"], json.dumps(x["references"]), x["prediction"]): x for x in ROWS}.values())[:300]
    sub = tmp_path / "sub.jsonl"
    sub.write_text("".join(json.dumps(x) + "\n" for x in distinct))
    r = cli("judge", "--input", sub, "--judge", spec, "--db", db_path, "--json")
    assert r.code == 0, r.err
    went = {i for i, line in enumerate(r.out.splitlines()) if json.loads(line)["decided_by"] == "rules"}

    def prob(w, b, x):
        z = b + sum(wi * (xi - m) / sc for wi, xi, m, sc in zip(w, x, o["mean"], o["scale"]))
        return 1 / (1 + np.exp(-z))

    items = [Item(x["id"], x["question"], encode(x["references"]), x["prediction"]) for x in distinct]
    X = [[F.TEXT_FEATURES[f](it) for f in names] for it in items]
    p = np.array([prob(o["weights"], o["bias"], x) for x in X])
    q = np.array([prob(ok_w, 1.0, x) for x in X])
    prio = np.minimum(p, 1 - p) - 0.5 * (1 - q)
    k = int(0.2 * len(items))
    assert len(went) == k
    assert min(prio[i] for i in went) >= max(prio[i] for i in range(len(items)) if i not in went) - 1e-9
    least_sure = set(np.argsort(np.abs(p - 0.5), kind="stable")[:k].tolist())
    assert len(went - least_sure) >= 5                     # the second model changed which items went


@pytest.mark.parametrize("change,needle", [
    ({"weights": [1.0]}, "one weight, mean and scale per feature"),
    ({"llm_ok_weights": [1.0, 2.0]}, "llm_ok_weights need one weight per feature"),
])
def test_a_fitted_spec_with_the_wrong_number_of_weights_is_exit_2(cli, tmp_path, db_path, change, needle):
    import tomllib

    opts = tomllib.loads((REPO / "judges" / "lexical.toml").read_text())["options"] | change
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nbackend = "fitted"\n[options]\n' + "".join(f"{k} = {json.dumps(v)}\n"
                                                                          for k, v in opts.items()))
    r = cli("judge", "--input", NQ, "--judge", bad, "--db", db_path)
    assert r.code == 2 and needle in r.err and "Traceback" not in r.err, (r.code, r.err)


@pytest.mark.parametrize("stages,decoding,needle", [
    (["lexical", "rules"], "max_escalation = 1.5", "max_escalation = 1.5 must be a number from 0 to 1"),
    (["rules", "lexical"], "max_escalation = 0.2", "needs a fitted stage just before the last one"),
])
def test_bad_max_escalation_is_exit_2_naming_it(cli, tmp_path, db_path, stages, decoding, needle):
    spec = _cascade_spec(tmp_path / "bad.toml", stages, decoding)
    r = cli("judge", "--input", NQ, "--judge", spec, "--db", db_path)
    assert r.code == 2 and needle in r.err and "Traceback" not in r.err, (r.code, r.err)
    if db_path.exists():                                       # nothing written
        con = sqlite3.connect(db_path)
        assert con.execute("SELECT COUNT(*) FROM judgements").fetchone()[0] == 0
        con.close()


@pytest.mark.parametrize("args,needle", [
    (["--max-escalation", "1.5"], "--max-escalation must be between 0 and 1"),
    (["--max-escalation", "0.2", "--target-agreement", "0.8"], "not both"),
    (["--folds", "1000"], "at least one per fold"),
    (["--fit-to", "teacher"], "--fit-to must be one of labels, blend"),
])
def test_fit_bad_input_exit_2_nothing_written(nq, cli, replay, tmp_path, args, needle):
    out = tmp_path / "jl"
    r = cli("calibrate", "fit", "--name", "x", "--features", "lexical", "--agreement", "0.5", "--escalate-to",
            REPLAY_SPEC, "--base-url", replay.base_url, "--out-dir", out, "--db", nq, *args)
    assert r.code == 2, (r.code, r.err)
    assert needle in r.err and "Traceback" not in r.err
    assert not out.exists()


def test_fit_to_blend_needs_an_escalation_judge(nq, cli, tmp_path):
    out = tmp_path / "jl"
    r = cli("calibrate", "fit", "--name", "x", "--features", "lexical", "--agreement", "0.5", "--fit-to", "blend",
            "--out-dir", out, "--db", nq)
    assert r.code == 2 and "--fit-to blend mixes in the --escalate-to judge's verdicts" in r.err, (r.code, r.err)
    assert not out.exists()


def test_blended_targets_are_the_mean_of_label_and_llm_verdict(nq, cli, replay, tmp_path):
    """--fit-to blend (the cascade default) fits the cheap judge to the mean of each item's human
    label and the escalation judge's verdict; --fit-to labels to the labels. Both saved judges are
    recomputed here from the file's votes and GPT-4 verdicts with an independent fit."""
    import tomllib

    from vlmdyn_cli.calibration.logreg import fit_logreg
    from vlmdyn_cli.judging import features as F
    from vlmdyn_cli.judging.backends.base import Item
    from vlmdyn_cli.judging.references import encode

    distinct = list({(x["question"], json.dumps(x["references"]), x["prediction"]): x for x in ROWS}.values())
    items = [Item(x["id"], x["question"], encode(x["references"]), x["prediction"]) for x in distinct]
    names = F.expand(["lexical"])
    X = [[F.TEXT_FEATURES[f](it) for f in names] for it in items]
    human = np.array([x["human"] == "yes" for x in distinct], float)
    gpt4 = np.array([x["gpt4"] == "yes" for x in distinct], float)
    weights = {}
    for fit_to, target in (("labels", human), ("blend", (human + gpt4) / 2)):
        out = tmp_path / fit_to
        r = cli("calibrate", "fit", "--name", "c", "--features", "lexical", "--agreement", "0.5", "--l2", "10",
                "--folds", "5", "--escalate-to", REPLAY_SPEC, "--base-url", replay.base_url, "--fit-to", fit_to,
                "--out-dir", out, "--db", nq, "--json")
        assert r.code == 0, r.err
        res = json.loads(r.out)
        assert res["fit_to"] == fit_to and res["cascade"]["escalated_share"] <= 0.25
        opts = tomllib.loads((out / "c-cheap.toml").read_text())["options"]
        expect = fit_logreg(X, target.tolist(), l2=10.0)
        assert opts["weights"] == pytest.approx(expect.weights, abs=1e-6)
        assert opts["bias"] == pytest.approx(expect.bias, abs=1e-6)
        weights[fit_to] = np.array(opts["weights"])
        # the budget's second fit: whether GPT-4's verdict agrees with the label, same features and penalty
        agrees = fit_logreg(X, (human == gpt4).astype(float).tolist(), l2=10.0)
        assert opts["llm_ok_weights"] == pytest.approx(agrees.weights, abs=1e-6)
        assert opts["llm_ok_bias"] == pytest.approx(agrees.bias, abs=1e-6)
    assert np.abs(weights["blend"] - weights["labels"]).max() > 0.05      # (the two really differ)


def test_fit_escalation_that_cannot_run_is_caught_before_fitting(nq, cli, tmp_path, monkeypatch):
    out = tmp_path / "jl"
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    t0 = time.monotonic()
    r = cli("calibrate", "fit", "--name", "x", "--features", "lexical", "--agreement", "0.5", "--escalate-to",
            REPLAY_SPEC, "--base-url", url, "--out-dir", out, "--db", nq)
    assert r.code == 2 and url in r.err and "cannot reach" in r.err, r.err
    assert time.monotonic() - t0 < 20 and not out.exists()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    r = cli("calibrate", "fit", "--name", "x", "--features", "lexical", "--escalate-to", "gpt-4o-mini",
            "--out-dir", out, "--db", nq)
    assert r.code == 2 and "OPENAI_API_KEY" in r.err and not out.exists()
    con = sqlite3.connect(nq)
    assert con.execute("SELECT COUNT(*) FROM judgements").fetchone()[0] == 0
    con.close()


def test_fit_one_class_is_bad_input(cli, tmp_path, db_path):
    f = tmp_path / "one.jsonl"
    f.write_text("".join(json.dumps({"id": f"i{i}", "question": f"q{i}", "answer": "a", "prediction": "a",
                                     "label": "yes", "rater": "r"}) + "\n" for i in range(20)))
    assert cli("calibrate", "import", f, "--db", db_path).code == 0
    r = cli("calibrate", "fit", "--name", "x", "--features", "lexical", "--out-dir", tmp_path / "o", "--db", db_path)
    assert r.code == 2 and "one class" in r.err and not (tmp_path / "o").exists()


def test_teacher_labels_fit_against_the_teacher(nq, cli, replay, tmp_path):
    r = cli("calibrate", "fit", "--name", "taught", "--features", "lexical", "--teacher", REPLAY_SPEC, "--n", "400",
            "--base-url", replay.base_url, "--agreement", "0.5", "--out-dir", tmp_path / "o", "--db", nq, "--json")
    assert r.code == 0, r.err
    res = json.loads(r.out)
    assert res["labels"] == "gpt4-replay-labelled" and res["n_items"] == 400
    assert res["held_out"]["accuracy"] > 0.7 and res["held_out_vs_humans"]["n"] == 400
    assert (tmp_path / "o" / "taught.toml").is_file()


def test_report_cost_view_and_rubric_bands(nq, cli, replay, tmp_path):
    png = tmp_path / "cost.png"
    r = cli("calibrate", "report", "--judge", "rules", "--judge", REPLAY_SPEC, "--base-url", replay.base_url,
            "--agreement", "0.5", "--png", png, "--db", nq, "--json")
    assert r.code == 0, r.err
    rep = json.loads(r.out)
    pts = {p["judge"]: p for p in rep["cost_view"]["points"]}
    assert pts["rules"]["usd_per_1000"] == 0 and pts["gpt4-replay"]["usd_per_1000"] > 0
    assert png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"
    bands = {b["band"]: b for b in rep["judges"][1]["per_score_band"]}
    # the replay server scores a "yes" 5/5/5 and a "no" 1/1/1: two bands, each one verdict
    assert set(bands) == {"[1, 2)", "5"} and bands["5"]["share_yes"] == 1.0 and bands["[1, 2)"]["share_yes"] == 0.0
    r = cli("calibrate", "report", "--judge", "rules", "--agreement", "0.5", "--db", nq, "--no-run")
    assert "agreement with humans vs $ per 1,000 judgements" in r.out and "89.4%" in r.out


def test_the_cost_view_curve_escalates_in_defer_priority_order(nq, cli, replay, tmp_path):
    """`calibrate report`'s curve of a budget cascade escalates the labelled items in the order its
    cheap stage ranks them (defer priority, recomputed here from the spec's weights), not by P(yes)."""
    import sqlite3
    import tomllib

    from vlmdyn_cli.judging import features as F
    from vlmdyn_cli.judging.backends.base import Item

    out = tmp_path / "jl"
    r = cli("calibrate", "fit", "--name", "c", "--features", "lexical", "--agreement", "0.5", "--l2", "10",
            "--folds", "5", "--escalate-to", REPLAY_SPEC, "--base-url", replay.base_url, "--out-dir", out,
            "--db", nq, "--json")
    assert r.code == 0, r.err
    r = cli("calibrate", "report", "--judge", out / "c.toml", "--base-url", replay.base_url, "--agreement", "0.5",
            "--db", nq, "--json")
    assert r.code == 0, r.err
    curve = json.loads(r.out)["cost_view"]["cascade_curves"]["c"]
    o = tomllib.loads((out / "c-cheap.toml").read_text())["options"]
    con = sqlite3.connect(nq)
    triples = con.execute("SELECT hash, question, answer, prediction FROM triples ORDER BY hash").fetchall()
    con.close()
    by_text = {(x["question"], x["prediction"]): x for x in ROWS}
    items = [Item(h, q, a, p) for h, q, a, p in triples if (q, p) in by_text]
    X = np.array([[F.TEXT_FEATURES[f](it) for f in o["features"]] for it in items])
    z = (X - np.array(o["mean"])) / np.array(o["scale"])
    p = 1 / (1 + np.exp(-(o["bias"] + z @ np.array(o["weights"]))))
    q = 1 / (1 + np.exp(-(o["llm_ok_bias"] + z @ np.array(o["llm_ok_weights"]))))
    human = np.array([by_text[(it.question, it.prediction)]["human"] == "yes" for it in items], int)
    gpt4 = np.array([by_text[(it.question, it.prediction)]["gpt4"] == "yes" for it in items], int)

    def agreement(order, k):
        v = (p >= 0.5).astype(int)
        v[order[:k]] = gpt4[order[:k]]
        return float((v == human).mean())

    by_priority = np.argsort(-(np.minimum(p, 1 - p) - 0.5 * (1 - q)), kind="stable")
    by_p = np.argsort(np.abs(p - 0.5), kind="stable")
    differs = 0
    for point in curve:
        k = int(round(point["escalated"] * len(items)))
        assert point["agreement"] == pytest.approx(agreement(by_priority, k), abs=1e-9), point
        differs += abs(agreement(by_p, k) - agreement(by_priority, k)) > 1e-9
    assert differs >= 3                                  # the two orders really give another curve


# ---------------------------------------------------------------- fail fast, exit 1 (issue 17 item 3)


def _triples(path: Path, n: int, question: str = "What colour is it?") -> Path:
    path.write_text("".join(json.dumps({"id": f"t{i}", "question": f"{question} #{i}", "answer": "red",
                                        "prediction": "blue"}) + "\n" for i in range(n)))
    return path


@pytest.mark.parametrize("scheme", ["http", "ftp"])
def test_unreachable_endpoint_stops_fast_exit_1_items_left_unjudged(cli, tmp_path, db_path, scheme):
    url = f"{scheme}://127.0.0.1:{_closed_port()}/v1"
    spec = write_spec(tmp_path, options={"max_retries": 6})
    t0 = time.monotonic()
    r = cli("judge", "--input", _triples(tmp_path / "t.jsonl", 30), "--judge", spec, "--base-url", url,
            "--db", db_path)
    assert r.code == 1, (r.code, r.err)
    assert url in r.err and "cannot reach" in r.err and "Traceback" not in r.err
    assert time.monotonic() - t0 < 20            # (was ~7 attempts with backoff for every item)
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT COUNT(*) FROM judgements WHERE status = 'scored'").fetchone()[0] == 0
    con.close()


@pytest.mark.parametrize("fault,kind", [("401echo*", "HTTP 401"), ("500*", "HTTP 500")])
def test_nothing_judged_because_of_the_endpoint_exits_1_with_reasons(cli, tmp_path, db_path, fault, kind):
    spec = write_spec(tmp_path, options={"max_retries": 1})
    with FakeOpenAI() as srv:
        url = srv.base_url
        r = cli("judge", "--input", _triples(tmp_path / "t.jsonl", 3, f"FAULTS={fault} what?"), "--judge", spec,
                "--base-url", url, "--db", db_path)
    assert r.code == 1, (r.code, r.out, r.err)
    assert url in r.err and "no item could be judged" in r.err and kind in r.err
    assert f"unscored: {kind} 3" in r.out
    if fault == "500*":
        assert "3 retries" in r.out                 # one retry per item (max_retries 1)


def test_partial_failure_is_not_exit_1(cli, tmp_path, db_path):
    spec = write_spec(tmp_path, options={"max_retries": 0})
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps({"question": "FAULTS=500* q", "answer": "a", "prediction": "b"}) + "\n"
                 + json.dumps({"question": "fine MS", "answer": "a", "prediction": "b"}) + "\n")
    with FakeOpenAI() as srv:
        r = cli("judge", "--input", f, "--judge", spec, "--base-url", srv.base_url, "--db", db_path)
    assert r.code == 0 and "unscored: HTTP 500 1" in r.out


# ---------------------------------------------------------------- the rubric score (issue 15 item 2)


def test_rubric_score_stored_and_filtered(cli, tmp_path, db_path):
    spec = write_spec(tmp_path)
    with FakeOpenAI() as srv:   # the canned rubric answer: MS 5, MD 4, H 5
        r = cli("judge", "--input", _triples(tmp_path / "t.jsonl", 2, "MS q"), "--judge", spec,
                "--base-url", srv.base_url, "--db", db_path)
    assert r.code == 0, r.err
    assert cli("judge", "--input", _triples(tmp_path / "u.jsonl", 2, "other"), "--judge", "rules",
               "--db", db_path).code == 0
    con = sqlite3.connect(db_path)
    scores = sorted(x for (x,) in con.execute("SELECT rubric_score FROM judgements WHERE rubric_score IS NOT NULL"))
    con.close()
    assert scores == [pytest.approx(14 / 3)] * 2
    rows = json.loads(cli("judgements", "list", "--min-score", "4.5", "--db", db_path, "--json").out)
    assert len(rows) == 2 and all(x["judge_name"] == "api-test" for x in rows)
    assert json.loads(cli("judgements", "list", "--max-score", "4.5", "--db", db_path, "--json").out) == []
    r = cli("judgements", "list", "--min-score", "7", "--db", db_path)
    assert r.code == 2 and "--min-score" in r.err
