"""The budget's two rankings over many 10-fold partitions of dev.jsonl (grouped by question).

One partition into folds is one draw: the cascade's held-out agreement moves by a few tenths of
a point from one fold seed to the next. For each of --partitions fold seeds, every fold's cheap
judge is fitted on the other nine (to the mean of label and GPT-4's verdict, a fixed --l2), the
fold is judged as one run with a budget of --cap, and the cascade's agreement minus GPT-4's alone
is taken twice: the budget ranked by P(yes) nearest 0.5, and by defer priority (with the second
fit of whether GPT-4 agrees with the label, as `calibrate fit` does). Printed: the mean of each
and their paired difference.

    .venv/bin/python examples/calibration/nq/kfold.py [--minilm] [--partitions 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from halfsplit import REPO, feature_matrix, load  # noqa: E402

from vlmdyn_cli.calibration.band import Band, escalated  # noqa: E402
from vlmdyn_cli.calibration.logreg import fit_logreg, fold_of  # noqa: E402
from vlmdyn_cli.judging import features as F  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO / "judges/data/nq-dev.jsonl")
    ap.add_argument("--minilm", action="store_true", help="add the minilm group to the lexical features")
    ap.add_argument("--partitions", type=int, default=20)
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--cap", type=float, default=0.25)
    ap.add_argument("--l2", type=float, default=30.0, help="the L2 penalty (30: what grouped CV chooses here)")
    a = ap.parse_args()
    names = F.expand(["lexical"]) + (F.expand(["minilm"]) if a.minilm else [])
    items, y, llm = load(a.data)
    X = feature_matrix(names, items)
    groups = [it.question for it in items]
    target = (y + llm) / 2
    whole = Band(0.0, 1.0, 0.0, 0.0)
    diffs = {"P(yes) nearest 0.5": [], "defer priority": []}
    for seed in range(a.partitions):
        fold = np.array(fold_of(len(items), a.folds, seed, groups))
        verdicts = {k: np.zeros(len(items), dtype=int) for k in diffs}
        for f in sorted(set(fold)):
            tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            cheap = fit_logreg(X[tr].tolist(), target[tr].tolist(), l2=a.l2)
            agrees = fit_logreg(X[tr].tolist(), (llm[tr] == y[tr]).astype(float).tolist(), l2=a.l2)
            p = np.array([cheap.prob(x) for x in X[te].tolist()])
            q = [agrees.prob(x) for x in X[te].tolist()]
            for k, qq in (("P(yes) nearest 0.5", None), ("defer priority", q)):
                esc = escalated(p, whole, a.cap, qq)
                verdicts[k][te] = np.where(esc, llm[te], (p >= 0.5).astype(int))
        for k in diffs:
            diffs[k].append(100 * ((verdicts[k] == y).mean() - (llm == y).mean()))
    old, new = np.array(diffs["P(yes) nearest 0.5"]), np.array(diffs["defer priority"])
    print(f"{len(items)} items; {a.partitions} partitions into {a.folds} folds grouped by question; features "
          f"{'lexical + minilm' if a.minilm else 'lexical'}; l2 {a.l2:g}; budget {100 * a.cap:g}% per fold")
    for k, v in ((k, np.array(v)) for k, v in diffs.items()):
        print(f"  cascade - GPT-4 alone, budget by {k:18s} mean {v.mean():+.2f} pts (sd {v.std():.2f})")
    print(f"  paired difference (defer priority - nearest 0.5): {np.mean(new - old):+.2f} pts; better on "
          f"{100 * np.mean(new > old):.0f}% of partitions, worse on {100 * np.mean(new < old):.0f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
