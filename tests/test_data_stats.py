"""`data stats` (the Table-1 view) and `data list`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vlmdyn_cli.data.importer import import_dataset
from vlmdyn_cli.data.stats import category_stats, population_counts, sample_ids, source_counts
from vlmdyn_cli.errors import BadInput

# (category, subcategory, number of QA pairs): 1,000 pairs with the paper's mix
MIX = [("Bounding", "bbox", 200), ("Bounding", "describe", 145), ("Complex", None, 138), ("Object", None, 198),
       ("OCR", "recognition", 92), ("OCR", "semantic", 50), ("Spatial", None, 177)]


def _conv(q: str, a: str) -> list[dict]:
    return [{"from": "human", "value": q}, {"from": "gpt", "value": a}]


@pytest.fixture
def labelled_db(tmp_path, db):
    """1,000 single-turn text conversations from two sources, labelled as `data categorize` would."""
    recs, labels = [], []
    for cat, sub, n in MIX:
        for i in range(n):
            recs.append({"id": f"{cat}-{sub}-{i}", "source": "alpha" if i % 4 else "beta",
                         "conversations": _conv(f"{cat} question {i}?", "answer")})
            labels.append((cat, sub))
    (tmp_path / "mix.json").write_text(json.dumps(recs))
    import_dataset(db, tmp_path / "mix.json", hash_images=False)
    with db.atomic():
        db.conn.executemany("UPDATE qa_pairs SET category = ?, subcategory = ?, category_method = 'rules' "
                            "WHERE id = ?", [(c, s, i + 1) for i, (c, s) in enumerate(labels)])
    return db


def test_shares_mean_and_std(labelled_db):
    st = category_stats(labelled_db, samples=7, size=300, seed=1)
    cats = {c["category"]: c for c in st["categories"]}
    assert list(cats) == ["Bounding", "Complex", "Object", "OCR", "Spatial"]
    assert st["n_qa"] == st["n_categorised"] == 1000 and st["size"] == 300 and st["methods"] == {"rules": 1000}
    assert cats["Bounding"]["population_pct"] == 34.5 and cats["OCR"]["population_pct"] == 14.2
    assert cats["Spatial"]["paper_pct"] == 17.7
    for c in cats.values():
        # 7 samples of 300 from 1,000: the mean lands near the population share, with a non-zero spread
        assert abs(c["mean_pct"] - c["population_pct"]) < 4.0
        assert 0 < c["std_pct"] < 6.0
    # every sample's shares add up to 100 %
    assert sum(c["mean_pct"] for c in cats.values()) == pytest.approx(100.0, abs=0.01)
    subs = {s["subcategory"]: s for s in cats["OCR"]["subcategories"]}
    assert set(subs) == {"recognition", "semantic"}
    assert subs["recognition"]["of_category_mean_pct"] + subs["semantic"]["of_category_mean_pct"] == \
        pytest.approx(100.0, abs=0.01)
    assert cats["Complex"]["subcategories"] == []


def test_full_size_samples_are_exact_and_seed_is_deterministic(labelled_db):
    st = category_stats(labelled_db, samples=3, size=5000, seed=0)  # size capped at the 1,000 available
    assert st["size"] == 1000
    for c in st["categories"]:
        assert c["mean_pct"] == c["population_pct"] and c["std_pct"] == 0.0
    a = category_stats(labelled_db, samples=5, size=100, seed=42)
    b = category_stats(labelled_db, samples=5, size=100, seed=42)
    c = category_stats(labelled_db, samples=5, size=100, seed=43)
    assert a == b and a["categories"] != c["categories"]


def test_hypergeometric_counts_match_explicit_id_sampling(labelled_db):
    """The shortcut draws category counts directly; it must agree with sampling ids one by one."""
    groups, pop = population_counts(labelled_db)
    rng = np.random.default_rng(7)
    cat_of = dict(labelled_db.execute("SELECT id, category FROM qa_pairs").fetchall())
    explicit = np.array([[sum(cat_of[int(i)] == "Bounding" for i in sample_ids(labelled_db, 200, rng))]
                         for _ in range(300)]).ravel() / 2.0
    st = category_stats(labelled_db, samples=300, size=200, seed=3)["categories"][0]
    assert st["category"] == "Bounding" and groups[0] == ("Bounding", "bbox") and pop.sum() == 1000
    # finite-population std of a share: sqrt(p(1-p)/n * (N-n)/(N-1))
    expected_std = 100 * np.sqrt(0.345 * 0.655 / 200 * (1000 - 200) / 999)
    assert abs(explicit.mean() - 34.5) < 0.6 and abs(st["mean_pct"] - 34.5) < 0.6
    assert explicit.std(ddof=1) == pytest.approx(expected_std, rel=0.15)
    assert st["std_pct"] == pytest.approx(expected_std, rel=0.15)


def test_source_counts(labelled_db):
    rows = {r["source"]: r for r in source_counts(labelled_db)}
    assert rows["alpha"]["conversations"] + rows["beta"]["conversations"] == 1000
    assert rows["beta"]["qa_pairs"] == sum((n + 3) // 4 for _c, _s, n in MIX)
    assert rows["alpha"]["kept"] == rows["alpha"]["conversations"]


def test_cli_stats_table_and_json(cli, labelled_db, db_path):
    r = cli("data", "stats", "--db", db_path, "--samples", "4", "--size", "250", "--json")
    assert r.code == 0, r.err
    st = json.loads(r.out)
    assert st["samples"] == 4 and st["size"] == 250 and len(st["categories"]) == 5
    assert {s["source"] for s in st["sources"]} == {"alpha", "beta"}
    r = cli("data", "stats", "--db", db_path, "-k", "4", "-n", "250", "--dataset", "mix")
    assert r.code == 0 and "Bounding" in r.out and "34." in r.out and "by source" in r.out
    r = cli("data", "stats", "--db", db_path, "--dataset", "mx")
    assert r.code == 2 and "no dataset named 'mx'" in r.err and "did you mean 'mix'" in r.err
    r = cli("data", "list", "--db", db_path)
    assert r.code == 0 and "mix" in r.out and "1000" in r.out


def test_nothing_categorised_is_exit_2_with_a_hint(cli, tmp_path, db, db_path):
    (tmp_path / "d.json").write_text(json.dumps([{"id": "1", "conversations": _conv("What is it?", "A cat")}]))
    import_dataset(db, tmp_path / "d.json", hash_images=False)
    with pytest.raises(BadInput, match="vlmdyn data categorize"):
        category_stats(db)
    r = cli("data", "stats", "--db", db_path)
    assert r.code == 2 and "vlmdyn data categorize" in r.err


def test_stats_without_database_or_datasets(cli, tmp_path, db, db_path):
    r = cli("data", "stats", "--db", tmp_path / "missing.db")
    assert r.code == 2 and "does not exist" in r.err
    r = cli("data", "stats", "--db", db_path)
    assert r.code == 2 and "no datasets yet" in r.err
