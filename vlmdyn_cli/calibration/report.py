"""Judge-vs-human agreement: the calibration report and threshold sweeps.

Inputs are the human verdicts (labels.human_verdicts) and the judgements a
judge spec stored for the same triples. Unscored judgements are never
counted as "no": they are excluded from every metric and reported as a count.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict

from sqlite_utils import Database

from vlmdyn_cli.calibration import metrics as M
from vlmdyn_cli.calibration.labels import HumanVerdicts
from vlmdyn_cli.store.db import immediate, now

PAPER_TABLE = {  # METHOD.md section 4: gpt-4o-mini vs the human majority (100 items, 4 raters)
    "gpt-4o-mini (paper, with rubric)": {"accuracy": 0.894, "precision": 0.930, "recall": 0.898, "f1": 0.91},
    "gpt-4o-mini (paper, without rubric)": {"accuracy": 0.851, "precision": 0.979, "recall": 0.780, "f1": 0.87},
}


def human_summary(hv: HumanVerdicts) -> dict:
    """The raters among themselves: items, raters, Fleiss' kappa, pairwise agreement, share yes."""
    return {
        "items": len(hv.verdict),
        "raters": sorted(hv.by_rater),
        "items_by_rater_count": {str(k): sum(1 for v in hv.n_raters.values() if v == k)
                                 for k in sorted(set(hv.n_raters.values()))},
        "excluded_too_few_raters": len(hv.too_few),
        "fleiss_kappa": M.fleiss_kappa(list(hv.ratings.values())),
        "pairwise": M.pairwise_agreement(hv.by_rater),
        "share_yes": sum(1 for v in hv.verdict.values() if v == "yes") / len(hv.verdict),
    }


def stored_judgements(db: Database, spec_hash: str, hashes: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for i in range(0, len(hashes), 500):
        chunk = hashes[i:i + 500]
        q = ("SELECT triple_hash, status, verdict, reason, p_yes, cost_usd, latency_s, decided_by, rubric_score "
             f"FROM judgements WHERE spec_hash = ? AND triple_hash IN ({','.join('?' * len(chunk))})")
        for row in db.execute(q, [spec_hash, *chunk]).fetchall():
            out[row[0]] = dict(zip(("triple_hash", "status", "verdict", "reason", "p_yes", "cost_usd",
                                    "latency_s", "decided_by", "rubric_score"), row))
    return out


def item_categories(db: Database, hashes: list[str]) -> dict[str, str]:
    """Category of each triple: from its calibration item, else from the QA pair it was generated for."""
    cats: dict[str, str] = {}
    for h, c in db.execute("SELECT triple_hash, category FROM calibration_items WHERE category IS NOT NULL"):
        cats.setdefault(h, c)
    missing = [h for h in hashes if h not in cats]
    for i in range(0, len(missing), 500):
        chunk = missing[i:i + 500]
        q = ("SELECT g.triple_hash, q.category FROM generations g JOIN qa_pairs q ON q.id = g.qa_id "
             f"WHERE g.triple_hash IN ({','.join('?' * len(chunk))})")
        for h, c in db.execute(q, chunk).fetchall():
            if c:
                cats.setdefault(h, c)
    return cats


def _rounded_ci(pred, truth, fn, seed):
    ci = M.bootstrap_ci(pred, truth, fn, n_boot=1000, seed=seed)
    return None if ci is None else [round(ci[0], 4), round(ci[1], 4)]


def judge_report(db: Database, name: str, spec_hash: str, hv: HumanVerdicts, seed: int = 0,
                 folds: int = 5) -> dict:
    hashes = sorted(hv.verdict)
    js = stored_judgements(db, spec_hash, hashes)
    scored = [h for h in hashes if js.get(h, {}).get("status") == "scored"]
    unscored = [h for h in hashes if h in js and js[h]["status"] != "scored"]
    missing = [h for h in hashes if h not in js]
    pred = [js[h]["verdict"] for h in scored]
    truth = [hv.verdict[h] for h in scored]
    rep = {"judge": name, "spec_hash": spec_hash, "n_items": len(hashes), "n_scored": len(scored),
           "n_unscored": len(unscored), "n_not_judged": len(missing),
           **M.binary_metrics(pred, truth)}
    rep["ci95"] = {
        "accuracy": _rounded_ci(pred, truth, M.accuracy, seed),
        "precision": _rounded_ci(pred, truth, M.precision, seed),
        "recall": _rounded_ci(pred, truth, M.recall, seed),
        "f1": _rounded_ci(pred, truth, M.f1, seed),
    }
    reasons: dict[str, int] = defaultdict(int)
    for h in unscored:
        reasons[(js[h]["reason"] or "unknown").split(":")[0]] += 1
    rep["unscored_reasons"] = dict(reasons)
    cats = item_categories(db, scored)
    per_cat: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for h, p, t in zip(scored, pred, truth):
        per_cat[cats.get(h, "(unknown)")][0].append(p)
        per_cat[cats.get(h, "(unknown)")][1].append(t)
    rep["per_category"] = {c: M.binary_metrics(p, t) for c, (p, t) in sorted(per_cat.items())}
    costs = [js[h]["cost_usd"] for h in hashes if h in js and js[h]["cost_usd"] is not None]
    lats = [js[h]["latency_s"] for h in hashes if h in js and js[h]["latency_s"] is not None]
    rep["usd_per_1000"] = 1000 * sum(costs) / len(costs) if costs else 0.0
    rep["seconds_per_1000"] = 1000 * sum(lats) / len(lats) if lats else None
    rep["per_score_band"] = score_bands([(js[h]["rubric_score"], js[h]["verdict"], hv.verdict[h]) for h in scored])
    scores = [(js[h]["p_yes"], hv.verdict[h]) for h in hashes
              if h in js and js[h]["p_yes"] is not None]
    if scores:
        rep["auc_p_yes"] = M.roc_auc([s for s, _ in scores], [t for _, t in scores])
        rep["threshold"] = threshold_cv([s for s, _ in scores], [t for _, t in scores], folds=folds, seed=seed)
    return rep


SCORE_BANDS = ((1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 5.0), (5.0, 5.0))


def score_bands(rows: list[tuple[float | None, str, str]]) -> list[dict]:
    """Human agreement within each band of the rubric score (mean of MS, MD, H): the paper finds it
    roughly proportional to the score. ``rows``: (score, judge verdict, human verdict) of scored items;
    [] when the judge gave no rubric scores."""
    out = []
    for lo, hi in SCORE_BANDS:
        inb = [(v, t) for sc, v, t in rows if sc is not None and (lo <= sc < hi or lo == hi == sc)]
        if inb:
            agree = sum(v == t for v, t in inb) / len(inb)
            out.append({"band": f"{lo:g}" if lo == hi else f"[{lo:g}, {hi:g})", "n": len(inb), "agreement": agree,
                        "share_yes": sum(v == "yes" for v, _ in inb) / len(inb)})
    return out


def save_report(db: Database, rep: dict, agreement: float) -> None:
    """Keep one judge's report (``judge_report``) in calibration_results, in its own transaction."""
    with immediate(db):
        db.conn.execute(
            "INSERT INTO calibration_results(spec_hash, judge_name, agreement_threshold, n_items,"
            " metrics_json, created_at) VALUES (?,?,?,?,?,?)",
            (rep["spec_hash"], rep["judge"], agreement, rep["n_items"], json.dumps(rep, default=str), now()))


def _best_threshold(scores: list[float], truth: list[str], objective: str) -> float:
    cands = sorted(set(scores)) + [1.01]
    best, best_t = -1.0, 0.5
    for t in cands:
        c = M.confusion(["yes" if s >= t else "no" for s in scores], truth)
        v = (M.f1(c) or 0.0) if objective == "f1" else (M.accuracy(c) or 0.0)
        if v > best + 1e-12:
            best, best_t = v, t
    return best_t


def threshold_sweep(scores: list[float], truth: list[str], steps: int = 21) -> list[dict]:
    """Accuracy and F1 of "p_yes >= t" over a grid of t (in-sample: for the curve only)."""
    out = []
    for i in range(steps):
        t = i / (steps - 1)
        c = M.confusion(["yes" if s >= t else "no" for s in scores], truth)
        out.append({"threshold": t, "accuracy": M.accuracy(c), "f1": M.f1(c)})
    return out


def threshold_cv(scores: list[float], truth: list[str], folds: int = 5, seed: int = 0,
                 objective: str = "accuracy") -> dict:
    """Pick the p_yes threshold on k-1 folds, score it on the held-out fold.

    Reports held-out (pooled over folds) metrics only; the threshold fitted on
    all items is what a user should deploy.
    """
    n = len(scores)
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    k = max(2, min(folds, n))
    held_pred = [""] * n
    for f in range(k):
        test = set(idx[f::k])
        tr = [i for i in idx if i not in test]
        if not tr:
            continue
        t = _best_threshold([scores[i] for i in tr], [truth[i] for i in tr], objective)
        for i in test:
            held_pred[i] = "yes" if scores[i] >= t else "no"
    return {"folds": k, "objective": objective,
            "chosen": _best_threshold(scores, truth, objective),
            "held_out": M.binary_metrics(held_pred, truth),
            "curve": threshold_sweep(scores, truth)}


def rubric_comparison(reports: list[dict]) -> list[dict] | None:
    """The paper's with/without-rubric table, when both gpt-4o-mini specs were run."""
    by = {r["judge"]: r for r in reports}
    if "gpt-4o-mini" not in by or "gpt-4o-mini-norubric" not in by:
        return None
    rows = []
    for label, r in (("with rubric (ours)", by["gpt-4o-mini"]),
                     ("without rubric (ours)", by["gpt-4o-mini-norubric"])):
        rows.append({"judge": label, **{k: r.get(k) for k in ("accuracy", "precision", "recall", "f1")}})
    for label, r in PAPER_TABLE.items():
        rows.append({"judge": label, **r})
    return rows
