"""Does a calibrated cascade keep its promise on new questions? The half-split protocol.

Each split puts half of dev.jsonl's questions on each side (every answer to a question on
the same side). The cheap judge and its defer band are fitted on one half exactly as
`vlmdyn calibrate fit` does (calibration/fit.py: `fit_logreg`, `held_out_band`), and the
cascade is scored on the other half against the human majority, with GPT-4's stored verdicts
as the escalation stage. Both directions of each split count. Nothing is tuned on the
scored half. Printed per setting: the escalated share and the agreement minus GPT-4 alone
(mean, min / max), and the share of splits that keep both promises (<= --cap escalated and
within 0.5 points of GPT-4 alone); also the offline default's agreement (rules where
confident, else the fitted judge).

    .venv/bin/python examples/calibration/nq/halfsplit.py                  # lexical, 100 splits
    .venv/bin/python examples/calibration/nq/halfsplit.py --minilm         # + MiniLM (~1-3 min to embed)
    .venv/bin/python examples/calibration/nq/halfsplit.py --fitted-band --l2 3 --features lexical-v1  # before

The scored half is judged as one run, so the cascade's per-run budget (the --cap share of the
items of highest defer priority go to GPT-4: the cheap judge's chance of being wrong, less half
the chance, estimated by a second fit on the fitting half, that GPT-4 is wrong; --no-llm-ok:
the least sure first, as before that second fit) applies; --fitted-band is the cascade before this
budget: the band that agreed most on the fitting half under the cap, every item inside it
escalated.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from vlmdyn_cli.calibration.band import best_band, escalated  # noqa: E402
from vlmdyn_cli.calibration.fit import FIT_TO, Escalation, fit_targets, held_out_band  # noqa: E402
from vlmdyn_cli.calibration.logreg import choose_l2, cross_val_predict, fit_logreg  # noqa: E402
from vlmdyn_cli.judging import features as F  # noqa: E402
from vlmdyn_cli.judging.backends.base import Item  # noqa: E402
from vlmdyn_cli.judging.references import encode  # noqa: E402
from vlmdyn_cli.judging.rules import decide_any  # noqa: E402

# the lexical group before novel-precision (v1), and before stem-recall, stem-precision, trigram-recall, asks-where (v2)
LEXICAL_V2 = [f for f in F.expand(["lexical"])
              if f not in ("stem-recall", "stem-precision", "trigram-recall", "asks-where")]
LEXICAL_V1 = [f for f in LEXICAL_V2 if f != "novel-precision"]


def load(path: Path):
    """The distinct items of dev.jsonl, the human majority (1 yes) and GPT-4's verdict."""
    seen, rows = set(), []
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        key = (r["question"], tuple(r["references"]), r["prediction"])
        if key not in seen:
            seen.add(key)
            rows.append(r)
    items = [Item(r["id"], r["question"], encode(r["references"]), r["prediction"]) for r in rows]
    y = np.array([r["human"] == "yes" for r in rows], dtype=int)
    llm = np.array([r["gpt4"] == "yes" for r in rows], dtype=int)
    return items, y, llm


def feature_matrix(names: list[str], items) -> np.ndarray:
    """One row per item, one column per feature (model features: each model once over all items)."""
    text = [f for f in names if f in F.TEXT_FEATURES]
    cols = {f: [F.TEXT_FEATURES[f](it) for it in items] for f in text}
    model_vals = F.model_feature_values(names, items)
    cols |= {f: [model_vals[f].get(it.key, 0.5) for it in items] for f in model_vals}
    return np.array([cols[f] for f in names], dtype=float).T


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO / "judges/data/nq-dev.jsonl")
    ap.add_argument("--features", default="lexical", help="comma-separated features or groups (lexical-v1: "
                    "the lexical group without novel-precision)")
    ap.add_argument("--minilm", action="store_true", help="add the minilm group")
    ap.add_argument("--splits", type=int, default=100)
    ap.add_argument("--cap", type=float, default=0.25)
    ap.add_argument("--fitted-band", action="store_true", help="as before the budget: the band that agreed "
                    "most on the fitting half's out-of-fold P(yes), every item inside it escalated")
    ap.add_argument("--l2", default="auto", help="the L2 penalty, or auto (as `calibrate fit` without --l2: "
                    "chosen by grouped CV on the fitting half)")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--no-llm-ok", action="store_true", help="rank the budget by P(yes) nearest 0.5 alone (as "
                    "before the second fit of whether GPT-4 agrees with the label)")
    ap.add_argument("--fit-to", choices=FIT_TO, default="blend", help="the cheap judge's targets, as `calibrate "
                    "fit --fit-to`: blend (default with --escalate-to: the mean of the human label and GPT-4's "
                    "verdict) or labels (the human labels alone)")
    a = ap.parse_args()
    names = []
    for n in a.features.split(","):
        names += {"lexical-v1": LEXICAL_V1, "lexical-v2": LEXICAL_V2}.get(n) or F.expand([n])
    if a.minilm:
        names += F.expand(["minilm"])
    items, y, llm = load(a.data)
    groups = np.array([it.question for it in items])
    X = feature_matrix(names, items)
    rules = [decide_any(it.question, it.answer, it.prediction) for it in items]
    ruled = np.array([d.verdict is not None and d.confidence >= 0.8 for d in rules])
    rule_yes = np.array([d.verdict == "yes" for d in rules], dtype=int)
    esc_spec = Escalation(spec=None, ref="gpt4", max_escalation=a.cap)
    t = fit_targets(y, {"verdict": ["yes" if v else "no" for v in llm]}, a.fit_to)
    qs = sorted(set(groups))
    out, chosen = [], []
    for seed in range(a.splits):
        order = list(qs)
        random.Random(seed).shuffle(order)
        half = np.isin(groups, order[:len(order) // 2])
        for fit_side in (half, ~half):
            tr, te = np.flatnonzero(fit_side), np.flatnonzero(~fit_side)
            l2 = (choose_l2(X[tr].tolist(), t[tr].tolist(), folds=a.folds, groups=groups[tr].tolist(),
                            labels=y[tr].tolist())
                  if a.l2 == "auto" else float(a.l2))
            chosen.append(l2)
            if a.fitted_band:
                oof = cross_val_predict(X[tr].tolist(), t[tr].tolist(), folds=a.folds, seed=0, l2=l2,
                                        groups=groups[tr].tolist())
                band = best_band(oof, llm[tr] == y[tr], y[tr], max_escalation=a.cap)
            else:
                band = held_out_band(X[tr], y[tr], llm[tr] == y[tr], groups[tr].tolist(), esc_spec,
                                     folds=a.folds, seed=0, l2=l2, targets=t[tr])
            model = fit_logreg(X[tr].tolist(), t[tr].tolist(), l2=l2)
            p = np.array([model.prob(x) for x in X[te].tolist()])
            q = None
            if not (a.fitted_band or a.no_llm_ok):     # as `calibrate fit` does with a budget
                ok_model = fit_logreg(X[tr].tolist(), (llm[tr] == y[tr]).astype(float).tolist(), l2=l2)
                q = [ok_model.prob(x) for x in X[te].tolist()]
            esc = escalated(p, band, None if a.fitted_band else a.cap, q)    # the scored half is one run
            cheap = (p >= 0.5).astype(int)
            casc = np.where(esc, llm[te], cheap)
            if a.fit_to != "labels":          # the offline default's judge is fitted to the human labels
                l2y = (choose_l2(X[tr].tolist(), y[tr].tolist(), folds=a.folds, groups=groups[tr].tolist())
                       if a.l2 == "auto" else float(a.l2))
                own = fit_logreg(X[tr].tolist(), y[tr].tolist(), l2=l2y)
                cheap_y = (np.array([own.prob(x) for x in X[te].tolist()]) >= 0.5).astype(int)
            else:
                cheap_y = cheap
            default = np.where(ruled[te], rule_yes[te], cheap_y)
            out.append((100 * esc.mean(), 100 * ((casc == y[te]).mean() - (llm[te] == y[te]).mean()),
                        100 * (cheap == y[te]).mean(), 100 * (default == y[te]).mean()))
    r = np.array(out)
    ok_esc, ok_agr = r[:, 0] <= 100 * a.cap + 1e-9, r[:, 1] >= -0.5
    print(f"{len(items)} items, {len(qs)} questions; {a.splits} splits x 2 directions; features "
          f"{','.join(names)}; l2 {a.l2 if a.l2 == 'auto' else float(a.l2)}; cap {100 * a.cap:g}%{'; fitted band, no budget' if a.fitted_band else '; budget per run'}; fitted to {a.fit_to}"
          f"{'' if a.fitted_band else '; budget ranked by P(yes) alone' if a.no_llm_ok else '; budget ranked by defer priority'}")
    if a.l2 == "auto":
        print("  l2 chosen: " + ", ".join(f"{v:g} x{chosen.count(v)}" for v in sorted(set(chosen))))
    print(f"  escalated share (%)           mean {r[:, 0].mean():5.1f}  min {r[:, 0].min():5.1f}  max {r[:, 0].max():5.1f}")
    print(f"  cascade - GPT-4 alone (pts)   mean {r[:, 1].mean():+5.2f}  min {r[:, 1].min():+5.2f}  max {r[:, 1].max():+5.2f}")
    print(f"  splits passing: escalated <= cap {100 * ok_esc.mean():.0f}%, within 0.5 pts {100 * ok_agr.mean():.0f}%, "
          f"both {100 * (ok_esc & ok_agr).mean():.0f}%")
    print(f"  cheap judge alone (%)         mean {r[:, 2].mean():5.1f}  min {r[:, 2].min():5.1f}  p5 {np.percentile(r[:, 2], 5):5.1f}")
    print(f"  offline default: rules, else the cheap judge fitted to the labels (%)  mean {r[:, 3].mean():5.1f}  min {r[:, 3].min():5.1f}  "
          f"p5 {np.percentile(r[:, 3], 5):5.1f}  share >= 78%: {100 * (r[:, 3] >= 78).mean():.0f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
