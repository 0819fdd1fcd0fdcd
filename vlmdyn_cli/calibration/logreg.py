"""Fitting a small L2-regularised logistic regression (Newton steps) for fitted judges.

The fitted model itself (``LogReg``: weights, standardisation, ``prob``) is what the
fitted judge backend runs, so it lives with it (judging/backends/fitted_backend.py).
"""

from __future__ import annotations

import random

import numpy as np

from vlmdyn_cli.judging.backends.fitted_backend import LogReg


def fit_logreg(X: list[list[float]], y: list[int], l2: float = 1.0, iters: int = 50) -> LogReg:
    A = np.asarray(X, dtype=float)
    t = np.asarray(y, dtype=float)
    mean = A.mean(axis=0) if len(A) else np.zeros(A.shape[1])
    scale = A.std(axis=0) if len(A) else np.ones(A.shape[1])
    scale[scale < 1e-9] = 1.0
    Z = np.hstack([np.ones((len(A), 1)), (A - mean) / scale])
    w = np.zeros(Z.shape[1])
    reg = np.eye(Z.shape[1]) * l2
    reg[0, 0] = 0.0  # no penalty on the bias
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(Z @ w, -40, 40)))
        g = Z.T @ (p - t) + reg @ w
        H = (Z.T * (p * (1 - p))) @ Z + reg + np.eye(Z.shape[1]) * 1e-9
        step = np.linalg.solve(H, g)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return LogReg([float(v) for v in w[1:]], float(w[0]), [float(v) for v in mean], [float(v) for v in scale])


def fold_of(n: int, folds: int, seed: int = 0, groups: list | None = None) -> list[int]:
    """The fold of each of ``n`` items. With ``groups`` (e.g. the question of each item) every
    group falls in one fold, so no question is on both sides; folds are balanced by size."""
    k = max(2, min(folds, n))
    if groups is None:
        idx = list(range(n))
        random.Random(seed).shuffle(idx)
        out = [0] * n
        for pos, i in enumerate(idx):
            out[i] = pos % k
        return out
    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    order = list(members)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -len(members[g]))        # largest groups first (stable: ties stay shuffled)
    size = [0] * k
    out = [0] * n
    for g in order:
        f = min(range(k), key=lambda j: (size[j], j))
        size[f] += len(members[g])
        for i in members[g]:
            out[i] = f
    return out


def cross_val_predict(X: list[list[float]], y: list[int], folds: int = 5, seed: int = 0,
                      l2: float = 1.0, groups: list | None = None) -> list[float]:
    """Held-out probability for every item (each item predicted by a model not trained on it;
    with ``groups``, not trained on any item of its group either)."""
    n = len(y)
    fold = fold_of(n, folds, seed, groups)
    out = [0.5] * n
    for f in sorted(set(fold)):
        test = [i for i in range(n) if fold[i] == f]
        tr = [i for i in range(n) if fold[i] != f]
        if len({y[i] for i in tr}) < 2:  # one class only: predict its rate
            rate = sum(y[i] for i in tr) / len(tr) if tr else 0.5
            for i in test:
                out[i] = rate
            continue
        m = fit_logreg([X[i] for i in tr], [y[i] for i in tr], l2=l2)
        for i in test:
            out[i] = m.prob(X[i])
    return out


# the L2 penalties ``choose_l2`` tries: from light to heavy shrinkage of the standardised weights
L2_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)


def choose_l2(X: list[list[float]], y: list[float], folds: int = 10, seed: int = 0, groups: list | None = None,
              grid: tuple[float, ...] = L2_GRID, labels: list[int] | None = None) -> float:
    """The L2 penalty of ``grid`` whose cross-validated P(yes) has the lowest log-loss (folds grouped
    as ``cross_val_predict``'s). Log-loss rather than accuracy: it sees every item's probability, so
    the choice is steadier on a few hundred items. Ties go to the heavier penalty. The models are
    fitted to ``y``; the loss is taken against ``labels`` when given (fitted to blended targets,
    still judged by the labels), else against ``y``."""
    t = np.asarray(y if labels is None else labels, dtype=float)
    best, best_loss = grid[-1], float("inf")
    for l2 in sorted(grid, reverse=True):
        p = np.clip(np.asarray(cross_val_predict(X, y, folds=folds, seed=seed, l2=l2, groups=groups)), 1e-9, 1 - 1e-9)
        loss = float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))
        if loss < best_loss - 1e-12:
            best, best_loss = l2, loss
    return best
