"""Fitting a cheap judge on human labels: logistic regression over cheap signals.

The fitted judge is saved as an ordinary judge spec (backend ``fitted``) that
``vlmdyn judge --judge PATH`` runs like any other. Its quality is reported
from k-fold cross-validation only: every item is scored by a model that did
not see its label.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlite_utils import Database

from vlmdyn_cli.calibration import metrics as M
from vlmdyn_cli.calibration.labels import HumanVerdicts
from vlmdyn_cli.calibration.logreg import cross_val_predict, fit_logreg
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.judging.backends.base import Item
from vlmdyn_cli.judging.features import MODEL_FEATURES, TEXT_FEATURES, check_features
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.store import judgements as store


def labelled_items(db: Database, hv: HumanVerdicts) -> list[Item]:
    """The triples with a human verdict, in hash order."""
    triples = store.fetch_triples(db, sorted(hv.verdict))
    return [Item(h, *triples[h]) for h in sorted(triples)]


def model_feature_values(db: Database, feature: str, hashes: list[str], reporter: Reporter) -> dict[str, float]:
    """p_yes from a judge in score mode, judging (cached) whatever is missing first."""
    from vlmdyn_cli.judging.run import judge_triples
    from vlmdyn_cli.judging.spec import load_spec

    spec = load_spec(MODEL_FEATURES[feature])
    judge_triples(db, spec, hashes, reporter=reporter)
    return {h: float(r.p_yes) for h, r in store.rows_of(db, spec.hash, hashes).items() if r.p_yes is not None}


def feature_matrix(db: Database, items: list[Item], features: list[str],
                   reporter: Reporter = NullReporter()) -> list[list[float]]:
    model_vals = {f: model_feature_values(db, f, [it.key for it in items], reporter)
                  for f in features if f in MODEL_FEATURES}
    return [[TEXT_FEATURES[f](it) if f in TEXT_FEATURES else model_vals[f].get(it.key, 0.5) for f in features]
            for it in items]


def fit_judge(db: Database, name: str, features: list[str], hv: HumanVerdicts, out_dir: Path,
              folds: int = 5, seed: int = 0, l2: float = 1.0,
              reporter: Reporter = NullReporter()) -> dict:
    check_features(features)
    items = labelled_items(db, hv)
    truth = [hv.verdict[it.key] for it in items]
    ys = [1 if t == "yes" else 0 for t in truth]
    if len(items) < 10:
        raise BadInput(f"only {len(items)} items have a human verdict; label at least 10 (100 is typical)")
    if len(set(ys)) < 2:
        raise BadInput("the human verdicts contain a single class; a judge cannot be fitted on that")
    X = feature_matrix(db, items, features, reporter)
    held = cross_val_predict(X, ys, folds=folds, seed=seed, l2=l2)
    pred = ["yes" if p >= 0.5 else "no" for p in held]
    model = fit_logreg(X, ys, l2=l2)
    spec = {
        "name": name,
        "backend": "fitted",
        "model": f"logreg({','.join(features)})",
        "output": "verdict-dict",
        "description": f"Logistic regression over {', '.join(features)}, fitted on {len(items)} "
                       f"human-labelled items ({folds}-fold CV).",
        "options": {"features": features, "threshold": 0.5, **model.to_dict()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.toml"
    path.write_text(_to_toml(spec), encoding="utf-8")
    return {"spec_path": str(path), "n_items": len(items), "features": features,
            "held_out": M.binary_metrics(pred, truth), "auc_held_out": M.roc_auc(held, truth),
            "weights": dict(zip(features, model.weights)), "bias": model.bias}


def _to_toml(spec: dict) -> str:
    """Minimal TOML writer for the flat spec layout (strings, numbers, lists, one [options] table)."""
    def val(v):
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(float(v)) if isinstance(v, float) else str(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        raise TypeError(type(v))

    lines = [f"{k} = {val(v)}" for k, v in spec.items() if not isinstance(v, dict)]
    for k, v in spec.items():
        if isinstance(v, dict):
            lines.append(f"\n[{k}]")
            lines += [f"{kk} = {val(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"
