"""`vlmdyn plot`: the numbers behind every figure against an independent computation.

The reference numbers are computed here in plain Python from rows fetched with
simple SELECTs (no GROUP BY, no joins through the plots module), then compared
with what `vlmdyn plot FIGURE --json` reports.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

import pytest

from vlmdyn_cli.store import open_db
from vlmdyn_cli.testing.synthdb import fill_synthetic

CKPTS = (51, 357, 1275)
JUDGE = "rules"


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    path = tmp_path_factory.mktemp("plots") / "exp.db"
    db = open_db(path)
    fill_synthetic(db, seeds=3, checkpoints=CKPTS, set_size=40, judges=(JUDGE, "openai/gpt-4o-mini"),
                   total_steps=2000)
    db.close()
    return path


# --------------------------------------------------------------------------- independent reference


def reference(path, judge=JUDGE):
    """Per (run, step, set, category, subcategory): [yes, scored, unscored], computed in Python."""
    db = open_db(path)
    spec = db.execute("SELECT hash FROM judge_specs WHERE name = ?", [judge]).fetchone()[0]
    sets = {sid: dict(run=r, name=n, kind=k, k=kk, dedup=d)
            for sid, r, n, k, kk, d in db.execute("SELECT id, run_id, name, kind, k_step, dedup FROM eval_sets")}
    members = db.execute("SELECT set_id, qa_id FROM eval_set_members").fetchall()
    qa = {i: (c, s) for i, c, s in db.execute("SELECT id, category, subcategory FROM qa_pairs")}
    gens = defaultdict(list)
    for run, step, qa_id, h in db.execute("SELECT run_id, step, qa_id, triple_hash FROM generations"):
        gens[(run, qa_id)].append((step, h))
    verdict = {h: (st, v) for h, st, v in db.execute(
        "SELECT triple_hash, status, verdict FROM judgements WHERE spec_hash = ?", [spec])}
    cells = defaultdict(lambda: [0, 0, 0])
    for set_id, qa_id in members:
        s = sets[set_id]
        for step, h in gens[(s["run"], qa_id)]:
            st, v = verdict.get(h, (None, None))
            c = cells[(s["run"], step, set_id, *qa[qa_id])]
            if st == "scored":
                c[1] += 1
                c[0] += v == "yes"
            elif st == "unscored":
                c[2] += 1
    runs = [r for (r,) in db.execute("SELECT id FROM runs ORDER BY seed")]
    db.close()
    return sets, cells, runs


def per_run_acc(sets, cells, runs, step, pick):
    """Accuracy per run of the cells where pick(set, category, subcategory) is true (pooled)."""
    out = []
    for r in runs:
        yes = scored = 0
        for (run, st, sid, cat, sub), (y, n, _u) in cells.items():
            if run == r and st == step and pick(sets[sid], cat, sub):
                yes, scored = yes + y, scored + n
        if scored:
            out.append(yes / scored)
    return out


def mean_std(xs):
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
    return m, sd


def check(points, expected_by_step):
    got = {p["step"]: p for p in points}
    assert sorted(got) == sorted(expected_by_step)
    for step, accs in expected_by_step.items():
        m, sd = mean_std(accs)
        assert got[step]["mean"] == pytest.approx(m, abs=1e-9), step
        assert got[step]["n_seeds"] == len(accs)
        if sd is None:
            assert got[step]["std"] is None
        else:
            assert got[step]["std"] == pytest.approx(sd, abs=1e-7), step


def plot_json(cli, path, figure, *extra):
    r = cli("plot", figure, "--db", path, "--judge", JUDGE, "--json", *extra)
    assert r.code == 0, r.err
    return json.loads(r.out)


def series(spec, label, panel=0):
    found = [s for s in spec["panels"][panel]["series"] if s["label"] == label]
    assert found, [s["label"] for s in spec["panels"][panel]["series"]]
    return found[0]["points"]


# --------------------------------------------------------------------------- the numbers


def test_frontiers_numbers(cli, exp):
    spec = plot_json(cli, exp, "frontiers")
    sets, cells, runs = reference(exp)
    assert spec["n_seeds"] == 3 and spec["judge"].startswith("rules")
    for k in CKPTS:
        check(series(spec, f"seen@{k}"), {st: per_run_acc(sets, cells, runs, st, lambda s, c, u: s["name"] == f"seen@{k}")
                                          for st in CKPTS})
    unseen = {st: per_run_acc(sets, cells, runs, st, lambda s, c, u: s["name"] == "unseen") for st in CKPTS}
    check(series(spec, "unseen"), unseen)
    check(series(spec, "validation frontier (unseen)"), unseen)
    train = {}
    for st in CKPTS:
        best = []
        for r in runs:
            accs = [per_run_acc(sets, cells, [r], st, lambda s, c, u, k=k: s["name"] == f"seen@{k}")[0]
                    for k in CKPTS if k <= st]
            best.append(max(accs))
        train[st] = best
    check(series(spec, "training frontier (best seen set)"), train)
    # the caption counts the unscored items that were left out
    unscored = sum(u for (_r, _s, _sid, _c, _sub), (_y, _n, u) in cells.items())
    assert f"{unscored:,} unscored" in spec["caption"]
    assert spec["totals"]["unscored"] == unscored


def test_categories_numbers(cli, exp):
    spec = plot_json(cli, exp, "categories")
    sets, cells, runs = reference(exp)
    for cat in ("Bounding", "Complex", "Object", "OCR", "Spatial"):
        seen = {st: per_run_acc(sets, cells, runs, st, lambda s, c, u, st=st, cat=cat:
                                c == cat and s["kind"] == "seen" and s["k"] <= st) for st in CKPTS}
        unseen = {st: per_run_acc(sets, cells, runs, st, lambda s, c, u, cat=cat:
                                  c == cat and s["kind"] == "unseen" and s["dedup"] == "image") for st in CKPTS}
        check(series(spec, f"{cat} seen"), seen)
        check(series(spec, f"{cat} unseen"), unseen)
    # one colour per category, the same for seen and unseen
    colours = {s["category"]: s["color"] for s in spec["panels"][0]["series"]}
    assert len(set(colours.values())) == 5


def test_seen_sets_numbers(cli, exp):
    spec = plot_json(cli, exp, "seen-sets")
    sets, cells, runs = reference(exp)
    titles = [p["title"] for p in spec["panels"]]
    assert titles == ["Bounding", "Complex", "Object", "OCR", "Spatial"]
    for i, cat in enumerate(titles):
        for k in CKPTS:
            pts = series(spec, f"seen@{k}", panel=i)
            check(pts, {st: per_run_acc(sets, cells, runs, st, lambda s, c, u, k=k, cat=cat:
                                        c == cat and s["name"] == f"seen@{k}") for st in CKPTS})


def test_subcategories_numbers(cli, exp):
    spec = plot_json(cli, exp, "subcategories")
    sets, cells, runs = reference(exp)
    assert [p["title"] for p in spec["panels"]] == ["Bounding", "OCR"]
    for i, subs in enumerate((("bbox", "describe"), ("recognition", "semantic"))):
        for sub in subs:
            check(series(spec, f"{sub} unseen", panel=i),
                  {st: per_run_acc(sets, cells, runs, st, lambda s, c, u, sub=sub:
                                   u == sub and s["name"] == "unseen") for st in CKPTS})
            check(series(spec, f"{sub} seen", panel=i),
                  {st: per_run_acc(sets, cells, runs, st, lambda s, c, u, sub=sub, st=st:
                                   u == sub and s["kind"] == "seen" and s["k"] <= st) for st in CKPTS})


def test_dedup_numbers(cli, exp):
    spec = plot_json(cli, exp, "dedup")
    sets, cells, runs = reference(exp)
    for dedup, label in (("image", "unseen, image de-dup"), ("pair", "unseen, pair de-dup only"),
                         ("none", "unseen, no de-dup")):
        check(series(spec, label), {st: per_run_acc(sets, cells, runs, st, lambda s, c, u, d=dedup:
                                                    s["kind"] == "unseen" and s["dedup"] == d) for st in CKPTS})


@pytest.mark.parametrize("figure,finding", [("frontiers", "findings 1 (two frontiers) and 2"),
                                            ("dedup", "finding 3"), ("categories", "findings 4"),
                                            ("seen-sets", "finding 6"), ("subcategories", "findings 7")])
def test_caption_names_the_finding_it_shows(cli, exp, figure, finding):
    assert plot_json(cli, exp, figure)["caption"].startswith(f"Shows {finding}")


def test_loss_numbers(cli, exp):
    r = cli("plot", "loss", "--db", exp, "--json")
    assert r.code == 0, r.err
    spec = json.loads(r.out)
    db = open_db(exp)
    by_step = defaultdict(list)
    for step, loss in db.execute("SELECT step, loss FROM metrics"):
        by_step[step].append(loss)
    db.close()
    pts = {p["step"]: p for p in spec["panels"][0]["series"][0]["points"]}
    assert len(pts) == len(by_step) == 2000
    for step in (1, 2, 500, 1999, 2000):
        m, sd = mean_std(by_step[step])
        assert pts[step]["mean"] == pytest.approx(m) and pts[step]["std"] == pytest.approx(sd, abs=1e-7)


def test_cache_follows_new_judgements(cli, exp, tmp_path):
    import shutil

    path = tmp_path / "copy.db"
    shutil.copy(exp, path)
    before = series(plot_json(cli, path, "frontiers"), "unseen")
    db = open_db(path)
    with db.conn:  # the judge flips every verdict of the unseen set at the last checkpoint to "yes"
        db.execute("UPDATE judgements SET verdict = 'yes' WHERE status = 'scored' AND triple_hash IN ("
                   "SELECT g.triple_hash FROM generations g JOIN eval_sets s ON s.run_id = g.run_id "
                   "JOIN eval_set_members m ON m.set_id = s.id AND m.qa_id = g.qa_id "
                   "WHERE s.name = 'unseen' AND g.step = 1275)")
    db.close()
    after = series(plot_json(cli, path, "frontiers"), "unseen")
    assert before[-1]["mean"] < 0.9 and after[-1]["mean"] == pytest.approx(1.0)
    assert after[0] == before[0]


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_every_figure_writes_a_valid_file(cli, exp, tmp_path, fmt):
    figure = "all" if fmt == "png" else "dedup"  # every figure as PNG; the other formats once
    r = cli("plot", figure, "--db", exp, "--judge", JUDGE, "--out", tmp_path, "--format", fmt, "-q")
    assert r.code == 0, r.err
    files = sorted(tmp_path.glob(f"*.{fmt}"))
    want = ["frontiers", "categories", "seen-sets", "subcategories", "dedup", "loss"] if fmt == "png" else ["dedup"]
    assert [f.stem for f in files] == sorted(want)
    assert r.out.split() == [str(f) for f in sorted(files, key=lambda f: want.index(f.stem))]
    for f in files:
        assert f.stat().st_size > 2000
        if fmt == "png":
            from PIL import Image

            with Image.open(f) as im:
                im.verify()
                assert im.size[0] > 800 and im.size[1] > 400
        elif fmt == "svg":
            assert "<svg" in f.read_text()[:2000]
        else:
            assert f.read_bytes()[:5] == b"%PDF-"


def test_terminal_output(cli, exp):
    r = cli("plot", "categories", "--db", exp, "--judge", JUDGE, "--terminal")
    assert r.code == 0, r.err
    assert "Accuracy per skill category" in r.out and "OCR seen" in r.out and "unscored" in r.out


def test_runs_like_selects_a_subset(cli, exp):
    spec = plot_json(cli, exp, "frontiers", "--runs-like", "synth-s[01]")
    assert spec["runs"] == ["synth-s0", "synth-s1"] and spec["n_seeds"] == 2
    spec = plot_json(cli, exp, "dedup", "--run", "synth-s2")
    assert spec["runs"] == ["synth-s2"]
    assert all(p["std"] is None and p["n_seeds"] == 1 for p in spec["panels"][0]["series"][0]["points"])


# --------------------------------------------------------------------------- bad input


def test_unknown_figure_lists_the_valid_ones(cli, exp):
    r = cli("plot", "frontier", "--db", exp)
    assert r.code == 2 and "did you mean 'frontiers'" in r.err and "seen-sets" in r.err


def test_two_judges_need_a_choice_and_unknown_judge(cli, exp):
    r = cli("plot", "frontiers", "--db", exp)
    assert r.code == 2 and "several judges" in r.err and "rules" in r.err
    r = cli("plot", "frontiers", "--db", exp, "--judge", "gpt-5")
    assert r.code == 2 and "unknown judge 'gpt-5'" in r.err


def test_unknown_run_and_empty_pattern(cli, exp):
    r = cli("plot", "frontiers", "--db", exp, "--run", "nope", "--judge", JUDGE)
    assert r.code == 2 and "unknown run 'nope'" in r.err
    r = cli("plot", "frontiers", "--db", exp, "--runs-like", "zzz*", "--judge", JUDGE)
    assert r.code == 2 and "matches no run" in r.err


def test_runs_from_different_datasets(cli, tmp_path):
    path = tmp_path / "two.db"
    db = open_db(path)
    fill_synthetic(db, seeds=1, checkpoints=(51, 357), set_size=10, name="a", total_steps=600)
    fill_synthetic(db, seeds=1, checkpoints=(51, 357), set_size=10, name="b", total_steps=600)
    db.close()
    r = cli("plot", "frontiers", "--db", path)
    assert r.code == 2 and "different datasets" in r.err and "a-s0" in r.err and "b-s0" in r.err
    r = cli("plot", "frontiers", "--db", path, "--runs-like", "b-*")
    assert r.code == 0, r.err


def test_no_judgements_and_missing_sets(cli, tmp_path):
    path = tmp_path / "nj.db"
    db = open_db(path)
    fill_synthetic(db, seeds=1, checkpoints=(51, 357), set_size=10, dedup_size=0, total_steps=600)
    db.close()
    r = cli("plot", "dedup", "--db", path)
    assert r.code == 2 and "at least two de-dup modes" in r.err
    db = open_db(path)
    with db.conn:
        db.execute("DELETE FROM judgements")
    db.close()
    r = cli("plot", "frontiers", "--db", path)
    assert r.code == 2 and "no judgements for the selected runs" in r.err
    assert cli("plot", "loss", "--db", path, "--out", tmp_path).code == 0  # loss needs no judge


def test_a_category_without_items_is_named(cli, exp, tmp_path):
    import shutil

    path = tmp_path / "nocat.db"
    shutil.copy(exp, path)
    db = open_db(path)
    with db.conn:
        db.execute("UPDATE qa_pairs SET category = 'Object', subcategory = NULL WHERE category IN ('OCR', 'Bounding')")
    db.close()
    spec = plot_json(cli, path, "categories")
    assert any("no items in categories: Bounding, OCR" in n for n in spec["notes"])
    assert not [s for s in spec["panels"][0]["series"] if s["label"].startswith("OCR")]
    r = cli("plot", "subcategories", "--db", path, "--judge", JUDGE)
    assert r.code == 2 and "no Bounding or OCR items" in r.err
    r = cli("plot", "seen-sets", "--db", path, "--judge", JUDGE, "--json")
    assert [p["title"] for p in json.loads(r.out)["panels"]] == ["Complex", "Object", "Spatial"]


def test_bad_format(cli, exp):
    r = cli("plot", "frontiers", "--db", exp, "--judge", JUDGE, "--format", "jpg")
    assert r.code == 2 and "png, pdf or svg" in r.err


def test_a_query_only_connection_still_gets_cached_cells(exp, tmp_path):
    """The TUI reads through `PRAGMA query_only`: the cache is written through a connection of its own."""
    import shutil
    import sqlite3

    from vlmdyn_cli.plots import aggregate as A

    path = tmp_path / "ro.db"
    shutil.copy(exp, path)
    with sqlite3.connect(path) as w:  # earlier tests cached cells in the shared DB: make them stale
        w.execute("UPDATE plot_data_version SET n = n + 1")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA query_only = 1")
    sel = A.selection(conn, judge=JUDGE)
    first = A.ensure_cells(conn, sel)
    assert len(first["recomputed"]) == 3
    assert A.ensure_cells(conn, sel)["recomputed"] == []
    sets, cells, runs = reference(path)
    pts = [p.as_dict() for p in A.seed_stats(conn, sel, ["s.name"], "s.name = 'unseen'")]
    check(pts, {st: per_run_acc(sets, cells, runs, st, lambda s, c, u: s["name"] == "unseen") for st in CKPTS})
    conn.close()
