"""Cheap signals a fitted judge combines (``vlmdyn calibrate fit --features ...``).

Each feature maps a (question, reference, prediction) item to one float.
Text features are pure functions; ``local-p_yes`` asks a local GGUF judge in
score mode (one forward pass per item) through the normal judge backend.
The fitted backend computes them when judging; calibration/fit.py when fitting.
"""

from __future__ import annotations

import math
from typing import Callable

from vlmdyn_cli.errors import BadInput, did_you_mean
from vlmdyn_cli.judging.backends.base import Item
from vlmdyn_cli.judging.normalize import normalize, numbers_in, one_contains_other, tokens
from vlmdyn_cli.judging.rules import decide


def f_exact(it: Item) -> float:
    return float(normalize(it.answer) == normalize(it.prediction))


def f_contains(it: Item) -> float:
    return float(one_contains_other(it.answer, it.prediction))


def f_token_f1(it: Item) -> float:
    a, p = tokens(it.answer), tokens(it.prediction)
    if not a or not p:
        return 0.0
    common = 0
    rest = list(p)
    for w in a:
        if w in rest:
            rest.remove(w)
            common += 1
    if common == 0:
        return 0.0
    prec, rec = common / len(p), common / len(a)
    return 2 * prec * rec / (prec + rec)


def f_len_ratio(it: Item) -> float:
    return math.log((len(tokens(it.prediction)) + 1) / (len(tokens(it.answer)) + 1))


def f_ref_len(it: Item) -> float:
    return math.log(len(tokens(it.answer)) + 1)


def f_numbers(it: Item) -> float:
    """+1 all reference numbers appear in the prediction, -1 some missing, 0 no numbers."""
    ref = numbers_in(it.answer)
    if not ref:
        return 0.0
    pred = numbers_in(it.prediction)
    return 1.0 if all(any(abs(r - q) < 1e-6 for q in pred) for r in ref) else -1.0


def f_rules(it: Item) -> float:
    """The rules judge: +confidence for yes, -confidence for no, 0 when it cannot decide."""
    d = decide(it.question, it.answer, it.prediction)
    return {"yes": 1.0, "no": -1.0}.get(d.verdict or "", 0.0) * d.confidence


TEXT_FEATURES: dict[str, Callable[[Item], float]] = {
    "rules": f_rules,
    "exact": f_exact,
    "contains": f_contains,
    "token-f1": f_token_f1,
    "len-ratio": f_len_ratio,
    "ref-len": f_ref_len,
    "numbers": f_numbers,
}
MODEL_FEATURES = {"local-p_yes": "local"}  # feature -> judge spec run in score mode
ALL_FEATURES = list(TEXT_FEATURES) + list(MODEL_FEATURES)


def check_features(names: list[str]) -> list[str]:
    if not names:
        raise BadInput("--features needs at least one feature; valid: " + ", ".join(ALL_FEATURES))
    for n in names:
        if n not in TEXT_FEATURES and n not in MODEL_FEATURES:
            raise BadInput(f"unknown feature {n!r}{did_you_mean(n, ALL_FEATURES)}; valid: "
                           + ", ".join(ALL_FEATURES))
    return names
