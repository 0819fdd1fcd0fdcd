"""`vlmdyn report`: one self-contained document with the numbers, the judge, figures and configs."""

from __future__ import annotations

import base64
import io
import json
import re
from collections import Counter

import pytest

from vlmdyn_cli.store import now, open_db
from vlmdyn_cli.testing.synthdb import fill_synthetic


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "exp.db"
    db = open_db(path)
    fill_synthetic(db, seeds=2, checkpoints=(51, 357), set_size=30, total_steps=800)
    db.close()
    return path


def test_html_report_is_self_contained_and_shows_the_numbers(cli, exp, tmp_path):
    out = tmp_path / "r.html"
    r = cli("report", "--db", exp, "--out", out, "--json", "-q")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["calibrated"] is False and len(summary["figures"]) == 6 and not summary["missing"]
    text = out.read_text()
    # nothing fetched from the network: no external src/href
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", text)
    imgs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    assert len(imgs) == 6
    from PIL import Image

    for b in imgs:
        with Image.open(io.BytesIO(base64.b64decode(b))) as im:
            assert im.size[0] > 800
    # Table 1 shares equal a count over qa_pairs
    db = open_db(exp)
    n = Counter(dict(db.execute("SELECT category, COUNT(*) FROM qa_pairs GROUP BY category").fetchall()))
    total = sum(n.values())
    for cat, k in n.items():
        assert f"<td>{cat}</td><td>{k:,}</td><td>{100 * k / total:.1f}%</td>" in text
    # one accuracy cell checked against a direct count (run 0 + run 1, seen@357 at step 357, OCR)
    accs, yes_total, scored_total = [], 0, 0
    for (run_id,) in db.execute("SELECT id FROM runs ORDER BY seed"):
        yes = scored = 0
        for (v,) in db.execute(
                "SELECT j.verdict FROM eval_sets s JOIN eval_set_members m ON m.set_id = s.id "
                "JOIN qa_pairs q ON q.id = m.qa_id JOIN generations g ON g.run_id = s.run_id AND g.qa_id = m.qa_id "
                "JOIN judgements j ON j.triple_hash = g.triple_hash WHERE s.run_id = ? AND s.name = 'seen@357' "
                "AND g.step = 357 AND q.category = 'OCR' AND j.status = 'scored'", [run_id]):
            yes += v == "yes"
            scored += 1
        accs.append(yes / scored)
        yes_total, scored_total = yes_total + yes, scored_total + scored
    db.close()
    mean = sum(accs) / 2
    sd = abs(accs[0] - accs[1]) / 2 ** 0.5
    assert f"{100 * mean:.1f} \u00b1 {100 * sd:.1f}<br><small>{yes_total}/{scored_total}" in text
    assert "not calibrated" in text and "vlmdyn calibrate report --judge rules" in text
    assert "synth-s1" in text and "&quot;schedule&quot;: &quot;cosine&quot;" in text


def test_markdown_report_with_calibration(cli, exp, tmp_path):
    db = open_db(exp)
    spec = db.execute("SELECT hash FROM judge_specs WHERE name='rules'").fetchone()[0]
    with db.conn:
        db.execute("INSERT INTO calibration_results(spec_hash, judge_name, agreement_threshold, n_items, metrics_json,"
                   " created_at) VALUES (?,?,?,?,?,?)",
                   [spec, "rules", 0.75, 100, json.dumps({"accuracy": 0.771, "precision": 0.8, "recall": 0.7,
                                                          "f1": 0.747, "n_items": 100}), now()])
    db.close()
    out = tmp_path / "sub" / "report.md"
    r = cli("report", "--db", exp, "--out", out, "-q")
    assert r.code == 0, r.err
    text = out.read_text()
    assert "| accuracy | 0.771 |" in text and "| F1 | 0.747 |" in text and "not calibrated" not in text
    figs = sorted(p.name for p in (tmp_path / "sub" / "report_figures").glob("*.png"))
    assert figs == sorted(f"{n}.png" for n in ("frontiers", "categories", "seen-sets", "subcategories", "dedup",
                                                "loss"))
    for name in figs:
        assert f"(report_figures/{name})" in text
    assert "| seen@51 | 51 |" in text and "| unseen | 357 |" in text


def test_report_bad_inputs(cli, exp, tmp_path):
    r = cli("report", "--db", exp, "--out", tmp_path / "r.pdf")
    assert r.code == 2 and ".html or .md" in r.err
    r = cli("report", "--db", exp, "--judge", "nobody", "--out", tmp_path / "r.html")
    assert r.code == 2 and "unknown judge" in r.err
    assert not (tmp_path / "r.html").exists()
    r = cli("report", "--db", tmp_path / "missing.db")
    assert r.code == 2 and "does not exist" in r.err
