"""The whole calibration workflow through the CLI on a real database, with real judges."""

import csv
import json

from vlmdyn_cli.store import open_db

# (question, reference, prediction, human label) written and rated by hand for this test
ITEMS = [
    ("What colour is the circle?", "red", "red", "y"),
    ("What colour is the circle?", "red", "blue", "n"),
    ("How many squares are there?", "3", "three", "y"),
    ("How many squares are there?", "3", "4", "n"),
    ("Is the cup on the table?", "yes", "Yes, it is.", "y"),
    ("Is the cup on the table?", "no", "yes", "n"),
    ("What is the title of this book?", "The Silent River", "the silent river", "y"),
    ("What is the title of this book?", "The Silent River", "River Song", "n"),
    ("What is the genre of this book?", "mystery", "a mystery novel", "y"),
    ("What is the genre of this book?", "cookbook", "travel", "n"),
    ("What shape is left of the star?", "triangle", "a triangle", "y"),
    ("What shape is left of the star?", "triangle", "circle", "n"),
    ("Who wrote this book?", "Ana Lind", "Ana Lind", "y"),
    ("Who wrote this book?", "Ana Lind", "Tom Berg", "n"),
    ("What is the man holding?", "umbrella", "an umbrella", "y"),
    ("What is the man holding?", "umbrella", "a kite", "n"),
    ("What colour is the square?", "green", "green", "y"),
    ("What colour is the square?", "green", "yellow", "n"),
    ("How many stars are there?", "2", "2", "y"),
    ("How many stars are there?", "2", "5", "n"),
]


def _prepare(tmp_path, cli, db_path):
    src = tmp_path / "triples.jsonl"
    src.write_text("\n".join(json.dumps({"id": i, "question": q, "answer": a, "prediction": p,
                                         "category": "Object"}) for i, (q, a, p, _) in enumerate(ITEMS)))
    sheet = tmp_path / "study.csv"
    r = cli("calibrate", "sample", "--n", len(ITEMS), "--input", src, "--name", "study", "--out", sheet,
            "--db", db_path, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["n"] == len(ITEMS)
    truth = {(q, a, p): lab for q, a, p, lab in ITEMS}
    rows = list(csv.DictReader(sheet.open()))
    for rater in ("ann", "bob"):
        out = tmp_path / f"{rater}.csv"
        with out.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            for row in rows:
                w.writerow({**row, "label": truth[(row["question"], row["reference"], row["prediction"])]})
        r = cli("calibrate", "import", out, "--rater", rater, "--db", db_path)
        assert r.code == 0, r.err
    return truth


def test_labels_report_and_fitted_judge(tmp_path, cli, db_path):
    _prepare(tmp_path, cli, db_path)
    r = cli("calibrate", "labels", "--db", db_path, "--json")
    assert r.code == 0, r.err
    lab = json.loads(r.out)
    assert lab["items"] == 20 and lab["pairwise"]["overall"] == 1.0 and lab["fleiss_kappa"] == 1.0

    r = cli("calibrate", "report", "--judge", "rules", "--db", db_path, "--json", "--quiet")
    assert r.code == 0, r.err
    rep = json.loads(r.out)["judges"][0]
    # every item is a short answer the rules decide; check the numbers against the stored rows
    d = open_db(db_path)
    rows = d.execute("""SELECT j.verdict, h.label FROM judgements j JOIN human_labels h
                        ON h.triple_hash = j.triple_hash AND h.rater = 'ann'
                        WHERE j.judge_name = 'rules' AND j.status = 'scored'""").fetchall()
    agree = sum(v == h for v, h in rows)
    assert rep["n_scored"] == len(rows) and rep["n_scored"] + rep["n_unscored"] == 20
    assert abs(rep["accuracy"] - agree / len(rows)) < 1e-9
    assert d.execute("select count(*) from calibration_results").fetchone()[0] == 1

    out_dir = tmp_path / "fitted"
    r = cli("calibrate", "fit", "--name", "cheap", "--features", "exact,token-f1,rules", "--out-dir", out_dir,
            "--folds", "4", "--db", db_path, "--json")
    assert r.code == 0, r.err
    fit = json.loads(r.out)
    assert fit["n_items"] == 20 and fit["held_out"]["n"] == 20
    spec = out_dir / "cheap.toml"
    assert spec.exists()
    # the fitted judge runs like any other judge
    r = cli("judge", "--input", tmp_path / "triples.jsonl", "--judge", spec, "--db", db_path, "--json")
    assert r.code == 0, r.err
    n = d.execute("select count(*) from judgements where judge_name = 'cheap' and status = 'scored'").fetchone()[0]
    assert n == 20
    p = d.execute("select min(p_yes), max(p_yes) from judgements where judge_name = 'cheap'").fetchone()
    assert 0 <= p[0] < 0.5 < p[1] <= 1


def test_fit_rejects_unknown_feature_and_one_class(tmp_path, cli, db_path):
    _prepare(tmp_path, cli, db_path)
    r = cli("calibrate", "fit", "--name", "x", "--features", "token_f1", "--db", db_path)
    assert r.code == 2 and "token-f1" in r.err  # did-you-mean
    r = cli("calibrate", "report", "--judge", "no-such-judge", "--db", db_path)
    assert r.code == 2 and "unknown judge spec" in r.err
    r = cli("calibrate", "labels", "--agreement", "1.5", "--db", db_path)
    assert r.code == 2
