"""Each metric against values computed by hand on small fixed cases."""

import math

import pytest

from vlmdyn_cli.calibration import metrics as M
from vlmdyn_cli.calibration.logreg import L2_GRID, choose_l2, cross_val_predict, fit_logreg
from vlmdyn_cli.calibration.report import threshold_cv

Y, N = "yes", "no"


def test_confusion_and_binary_metrics_by_hand():
    pred = [Y, Y, Y, N, N, N, Y, N]
    true = [Y, Y, N, Y, N, N, Y, N]
    m = M.binary_metrics(pred, true)
    assert m["confusion"] == {"tp": 3, "fp": 1, "fn": 1, "tn": 3}
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(0.75)
    # kappa: po = .75, pe = .5*.5 + .5*.5 = .5 -> .5
    assert m["kappa"] == pytest.approx(0.5)


def test_kappa_unbalanced_by_hand():
    # tp=4 fp=2 fn=1 tn=3, n=10: po=.7; p_yes = .6*.5=.30; p_no = .4*.5=.20; pe=.5 -> .4
    c = M.Confusion(tp=4, fp=2, fn=1, tn=3)
    assert M.cohen_kappa(c) == pytest.approx(0.4)
    assert M.f1(c) == pytest.approx(2 * (4 / 6) * (4 / 5) / (4 / 6 + 4 / 5))


def test_all_yes_and_all_no_are_defined():
    all_yes = M.binary_metrics([Y, Y, Y], [Y, Y, Y])
    assert all_yes["accuracy"] == 1.0 and all_yes["precision"] == 1.0 and all_yes["recall"] == 1.0
    assert all_yes["kappa"] is None  # one class on both sides: undefined, not 0 or 1
    all_no = M.binary_metrics([N, N], [N, N])
    assert all_no["accuracy"] == 1.0
    assert all_no["precision"] is None and all_no["recall"] is None and all_no["f1"] is None
    judge_no_humans_yes = M.binary_metrics([N, N], [Y, Y])
    assert judge_no_humans_yes["recall"] == 0.0 and judge_no_humans_yes["precision"] is None
    zero = M.binary_metrics([Y, N], [N, Y])
    assert zero["f1"] == 0.0 and zero["accuracy"] == 0.0  # p = r = 0: F1 is 0, defined
    empty = M.binary_metrics([], [])
    assert empty["accuracy"] is None and empty["kappa"] is None


def test_fleiss_kappa_by_hand():
    # 3 items x 3 raters: [y,y,y], [y,y,n], [n,n,n]
    items = [[Y, Y, Y], [Y, Y, N], [N, N, N]]
    # P_i: 1, (4+1-3)/6=1/3, 1 -> mean 7/9; p_yes = 5/9, p_no = 4/9 -> pe = 41/81
    expected = (7 / 9 - 41 / 81) / (1 - 41 / 81)
    assert M.fleiss_kappa(items) == pytest.approx(expected)
    assert M.fleiss_kappa([[Y, Y], [Y, Y]]) is None  # everyone says yes: undefined
    assert M.fleiss_kappa([[Y]]) is None  # nobody rated twice


def test_pairwise_agreement_by_hand():
    by = {"a": {"1": Y, "2": N, "3": Y}, "b": {"1": Y, "2": Y}, "c": {"9": Y}}
    pa = M.pairwise_agreement(by)
    assert pa["pairs"] == {"a~b": {"n": 2, "agreement": 0.5}}
    assert pa["overall"] == 0.5


def test_roc_auc_ties_count_half():
    assert M.roc_auc([0.9, 0.5, 0.5, 0.1], [Y, Y, N, N]) == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    assert M.roc_auc([0.3, 0.2], [Y, Y]) is None


def test_bootstrap_interval_contains_point_estimate():
    pred = [Y, N] * 20 + [Y] * 10
    true = [Y, N] * 20 + [N] * 10
    lo, hi = M.bootstrap_ci(pred, true, M.accuracy, n_boot=300, seed=1)
    assert lo <= 40 / 50 <= hi and hi - lo > 0.05
    assert M.bootstrap_ci([Y] * 5, [Y] * 5, M.cohen_kappa) is None


def test_threshold_cv_reports_held_out_not_train():
    scores = [i / 20 for i in range(20)]
    truth = [Y if s >= 0.5 else N for s in scores]
    r = threshold_cv(scores, truth, folds=5)
    assert 0.45 <= r["chosen"] <= 0.5
    assert r["held_out"]["n"] == 20 and r["held_out"]["accuracy"] >= 0.85
    noisy = threshold_cv([0.5] * 10, [Y, N] * 5, folds=5)
    assert noisy["held_out"]["accuracy"] <= 0.6


def test_logistic_regression_learns_a_separable_signal():
    X = [[float(i % 2), 0.1 * (i % 3)] for i in range(40)]
    y = [i % 2 for i in range(40)]
    m = fit_logreg(X, y)
    assert m.prob([1.0, 0.0]) > 0.9 and m.prob([0.0, 0.0]) < 0.1
    held = cross_val_predict(X, y, folds=4)
    assert all((p > 0.5) == bool(t) for p, t in zip(held, y))
    assert not any(math.isnan(p) for p in held)


def test_choose_l2_is_light_for_a_clean_signal_and_heavy_for_noise():
    import random

    rng = random.Random(0)
    X = [[rng.gauss(0, 1) for _ in range(8)] for _ in range(200)]
    groups = [i // 4 for i in range(200)]                        # items of one group stay in one fold
    clean = [int(x[0] + 0.5 * x[1] > 0) for x in X]               # a signal the model can fit exactly
    noise = [rng.random() < 0.5 for _ in X]                       # labels that nothing predicts
    assert choose_l2(X, clean, folds=5, groups=groups) == min(L2_GRID)
    assert choose_l2(X, [int(v) for v in noise], folds=5, groups=groups) == max(L2_GRID)
