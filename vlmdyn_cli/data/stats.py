"""The Table-1 view: category and sub-category shares over random samples, counts by source.

METHOD.md section 2 reports each category's share of QA pairs averaged over
sampled sets. Here: K samples of N QA pairs each, drawn uniformly without
replacement from the categorised QA pairs of the chosen dataset(s); for each
category and sub-category the mean and standard deviation (ddof=1) of its
share across the K samples, in percent.

Only the category counts of a sample matter, and the counts of a uniform
N-subset of a population follow the multivariate hypergeometric
distribution. So the sampling draws those counts directly from the grouped
population counts (one GROUP BY query, ``numpy.random.Generator.
multivariate_hypergeometric``) instead of materialising 3.4M ids: exactly
the same distribution, in constant memory. ``sample_ids`` does it the long
way for cross-checking.
"""

from __future__ import annotations

import json

import numpy as np

from vlmdyn_cli.data.categories import CATEGORIES, PAPER_MIX
from vlmdyn_cli.errors import BadInput, did_you_mean


def list_datasets(db) -> list[dict]:
    rows = db.execute(
        "SELECT d.id, d.name, d.n_conversations, d.n_kept, d.n_qa, d.imported_at, d.source_path, d.meta_json, "
        "(SELECT COUNT(*) FROM qa_pairs q WHERE q.dataset_id = d.id AND q.category IS NOT NULL) "
        "FROM datasets d ORDER BY d.id").fetchall()
    out = []
    for r in rows:
        meta = json.loads(r[7] or "{}")
        out.append({"id": r[0], "name": r[1], "conversations": r[2], "kept": r[3], "qa_pairs": r[4],
                    "categorised": r[8], "image_identity": meta.get("image_identity"),
                    "imported_at": r[5], "source_path": r[6]})
    return out


def _dataset_filter(db, dataset: str | None) -> tuple[str, list, list[str]]:
    """A condition on a ``dataset_id`` column (all datasets, or the named one), its params, the names."""
    names = [r[0] for r in db.execute("SELECT name FROM datasets ORDER BY id").fetchall()]
    if not names:
        raise BadInput("the database has no datasets yet: run `vlmdyn data import FILE.json --images DIR`")
    if dataset is None:
        return "1", [], names
    row = db.execute("SELECT id FROM datasets WHERE name = ?", [dataset]).fetchone()
    if not row:
        raise BadInput(f"no dataset named '{dataset}'{did_you_mean(dataset, names)}; "
                       f"datasets: {', '.join(names)}")
    return "dataset_id = ?", [row[0]], [dataset]


def _order(cat: str) -> tuple:
    return (CATEGORIES.index(cat), "") if cat in CATEGORIES else (len(CATEGORIES), cat)


def population_counts(db, dataset: str | None = None) -> tuple[list[tuple[str, str | None]], np.ndarray]:
    cond, params, _ = _dataset_filter(db, dataset)
    rows = db.execute(
        f"SELECT category, subcategory, COUNT(*) FROM qa_pairs WHERE category IS NOT NULL AND {cond} "
        f"GROUP BY category, subcategory", params).fetchall()
    rows.sort(key=lambda r: (_order(r[0]), r[1] or ""))
    return [(r[0], r[1]) for r in rows], np.array([r[2] for r in rows], dtype=np.int64)


def sample_ids(db, n: int, rng: np.random.Generator, dataset: str | None = None) -> np.ndarray:
    """N categorised QA pair ids drawn uniformly without replacement (the explicit way)."""
    cond, params, _ = _dataset_filter(db, dataset)
    ids = np.array([r[0] for r in db.execute(
        f"SELECT id FROM qa_pairs WHERE category IS NOT NULL AND {cond}", params)], dtype=np.int64)
    return rng.choice(ids, size=min(n, len(ids)), replace=False)


def _mean_std(x: np.ndarray) -> tuple[float, float]:
    std = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    return round(float(x.mean()), 3), round(std, 3)


def category_stats(db, dataset: str | None = None, samples: int = 7, size: int = 5000,
                   seed: int = 0) -> dict:
    """Mean and std (percent) of category and sub-category shares over ``samples`` draws of ``size``."""
    if samples < 1 or size < 1:
        raise BadInput("--samples and --size must be at least 1")
    cond, params, names = _dataset_filter(db, dataset)
    n_qa = db.execute(f"SELECT COUNT(*) FROM qa_pairs WHERE {cond}", params).fetchone()[0]
    groups, pop = population_counts(db, dataset)
    if pop.sum() == 0:
        raise BadInput(f"no QA pair of {', '.join(names)} is categorised yet ({n_qa} QA pairs): "
                       f"run `vlmdyn data categorize` first")
    n = int(min(size, pop.sum()))
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_hypergeometric(pop, n, size=samples)   # samples x groups
    share = 100.0 * draws / n

    categories = []
    for cat in dict.fromkeys(g[0] for g in groups):
        cols = [i for i, g in enumerate(groups) if g[0] == cat]
        cat_share = share[:, cols].sum(axis=1)
        cat_draws = draws[:, cols].sum(axis=1)
        mean, std = _mean_std(cat_share)
        entry = {"category": cat, "mean_pct": mean, "std_pct": std,
                 "population_pct": round(100.0 * pop[cols].sum() / pop.sum(), 3),
                 "paper_pct": PAPER_MIX.get(cat),
                 "count": int(pop[cols].sum()), "subcategories": []}
        for i in cols:
            sub = groups[i][1]
            if sub is None:
                continue
            of_cat = np.where(cat_draws > 0, 100.0 * draws[:, i] / np.maximum(cat_draws, 1), 0.0)
            m, s = _mean_std(share[:, i])
            mc, sc = _mean_std(of_cat)
            entry["subcategories"].append({"subcategory": sub, "mean_pct": m, "std_pct": s,
                                           "of_category_mean_pct": mc, "of_category_std_pct": sc,
                                           "count": int(pop[i])})
        categories.append(entry)

    return {"datasets": names, "samples": samples, "size": n, "seed": seed, "n_qa": n_qa,
            "n_categorised": int(pop.sum()), "methods": _methods(db, cond, params),
            "categories": categories, "sources": source_counts(db, dataset)}


def _methods(db, cond: str, params: list) -> dict[str, int]:
    rows = db.execute(f"SELECT category_method, COUNT(*) FROM qa_pairs WHERE category IS NOT NULL AND {cond} "
                      f"GROUP BY category_method ORDER BY 2 DESC", params).fetchall()
    return {str(r[0]): r[1] for r in rows}


def source_counts(db, dataset: str | None = None) -> list[dict]:
    """Conversations (all, kept) and QA pairs per source dataset."""
    cond, params, _ = _dataset_filter(db, dataset)
    conv = db.execute(f"SELECT source, COUNT(*), SUM(kept) FROM conversations WHERE {cond} GROUP BY source",
                      params).fetchall()
    qa = dict(db.execute(
        f"SELECT c.source, COUNT(*) FROM qa_pairs q JOIN conversations c ON c.id = q.conversation_id "
        f"WHERE q.{cond} GROUP BY c.source" if params else
        "SELECT c.source, COUNT(*) FROM qa_pairs q JOIN conversations c ON c.id = q.conversation_id "
        "GROUP BY c.source", params).fetchall())
    out = [{"source": s, "conversations": n, "kept": int(k or 0), "qa_pairs": qa.get(s, 0)} for s, n, k in conv]
    out.sort(key=lambda r: (-r["qa_pairs"], -r["conversations"], str(r["source"])))
    return out
