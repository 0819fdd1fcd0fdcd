"""Agreement metrics between a judge and human verdicts, and between raters.

Everything here is plain Python over lists of "yes"/"no" labels, so each
number can be checked by hand. Edge cases have defined values instead of a
division by zero:

- precision with no predicted "yes" is ``None`` (undefined), recall with no
  true "yes" is ``None``, F1 is ``None`` when either is undefined or both are 0
  (then 0.0);
- Cohen's kappa is ``None`` when the chance agreement is 1 (both sides use a
  single class: kappa is undefined, not 0 or 1), and callers say so;
- Fleiss' kappa likewise returns ``None`` when the expected agreement is 1.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Callable, Sequence

YES, NO = "yes", "no"


@dataclass
class Confusion:
    tp: int = 0  # judge yes, human yes
    fp: int = 0  # judge yes, human no
    fn: int = 0  # judge no, human yes
    tn: int = 0  # judge no, human no

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


def confusion(pred: Sequence[str], truth: Sequence[str]) -> Confusion:
    if len(pred) != len(truth):
        raise ValueError("pred and truth differ in length")
    c = Confusion()
    for p, t in zip(pred, truth):
        if p == YES and t == YES:
            c.tp += 1
        elif p == YES:
            c.fp += 1
        elif t == YES:
            c.fn += 1
        else:
            c.tn += 1
    return c


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


def accuracy(c: Confusion) -> float | None:
    return _div(c.tp + c.tn, c.n)


def precision(c: Confusion) -> float | None:
    return _div(c.tp, c.tp + c.fp)


def recall(c: Confusion) -> float | None:
    return _div(c.tp, c.tp + c.fn)


def f1(c: Confusion) -> float | None:
    p, r = precision(c), recall(c)
    if p is None or r is None:
        return None
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def cohen_kappa(c: Confusion) -> float | None:
    n = c.n
    if n == 0:
        return None
    po = (c.tp + c.tn) / n
    p_yes = ((c.tp + c.fp) / n) * ((c.tp + c.fn) / n)
    p_no = ((c.fn + c.tn) / n) * ((c.fp + c.tn) / n)
    pe = p_yes + p_no
    if pe >= 1.0:
        return None
    return (po - pe) / (1 - pe)


def binary_metrics(pred: Sequence[str], truth: Sequence[str]) -> dict:
    c = confusion(pred, truth)
    return {
        "n": c.n,
        "accuracy": accuracy(c),
        "precision": precision(c),
        "recall": recall(c),
        "f1": f1(c),
        "kappa": cohen_kappa(c),
        "confusion": asdict(c),
    }


def fleiss_kappa(items: Sequence[Sequence[str]]) -> float | None:
    """Fleiss' kappa for items rated by (possibly different numbers of) raters.

    Uses the standard per-item agreement P_i = (sum n_ij^2 - n_i) / (n_i (n_i - 1))
    averaged over items with at least two ratings; category proportions are
    pooled over all ratings of those items.
    """
    rated = [list(r) for r in items if len(r) >= 2]
    if not rated:
        return None
    cats = sorted({x for r in rated for x in r})
    total = sum(len(r) for r in rated)
    p_j = {c: sum(r.count(c) for r in rated) / total for c in cats}
    p_bar = sum(
        (sum(r.count(c) ** 2 for c in cats) - len(r)) / (len(r) * (len(r) - 1)) for r in rated
    ) / len(rated)
    pe = sum(v * v for v in p_j.values())
    if pe >= 1.0:
        return None
    return (p_bar - pe) / (1 - pe)


def pairwise_agreement(by_rater: dict[str, dict[str, str]]) -> dict:
    """Share of commonly rated items on which two raters agree, per pair and overall."""
    pairs = {}
    agree_all = total_all = 0
    for a, b in combinations(sorted(by_rater), 2):
        common = set(by_rater[a]) & set(by_rater[b])
        if not common:
            continue
        agree = sum(by_rater[a][i] == by_rater[b][i] for i in common)
        pairs[f"{a}~{b}"] = {"n": len(common), "agreement": agree / len(common)}
        agree_all += agree
        total_all += len(common)
    return {"pairs": pairs, "overall": _div(agree_all, total_all)}


def bootstrap_ci(
    pred: Sequence[str],
    truth: Sequence[str],
    metric: Callable[[Confusion], float | None],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``metric`` over resampled items."""
    n = len(pred)
    if n == 0:
        return None
    rng = random.Random(seed)
    vals = []
    for _ in range(n_boot):
        idx = [rng.randrange(n) for _ in range(n)]
        v = metric(confusion([pred[i] for i in idx], [truth[i] for i in idx]))
        if v is not None:
            vals.append(v)
    if len(vals) < n_boot // 2:  # undefined in most resamples: no honest interval
        return None
    vals.sort()
    lo = vals[int((alpha / 2) * (len(vals) - 1))]
    hi = vals[int((1 - alpha / 2) * (len(vals) - 1))]
    return (lo, hi)


def roc_auc(scores: Sequence[float], truth: Sequence[str]) -> float | None:
    """Probability that a random "yes" item scores above a random "no" item (ties count half)."""
    pos = [s for s, t in zip(scores, truth) if t == YES]
    neg = [s for s, t in zip(scores, truth) if t != YES]
    if not pos or not neg:
        return None
    wins = 0.0
    for p in pos:
        for q in neg:
            wins += 1.0 if p > q else 0.5 if p == q else 0.0
    return wins / (len(pos) * len(neg))
