"""Fitting a cheap judge on labels (human, or a teacher judge's): logistic regression over cheap
signals, and optionally the calibrated cascade that escalates its unsure items to an LLM.

The fitted judge is saved as an ordinary judge spec (backend ``fitted``) that
``vlmdyn judge --judge PATH`` runs like any other; a calibrated cascade as a ``cascade`` spec
over it and the LLM (its defer band from calibration/band.py). Quality is reported from
k-fold cross-validation only, the folds grouped by question: every item is scored by a model
that saw neither its label nor any item of its question, and each fold's band is chosen
without that fold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sqlite_utils import Database

from vlmdyn_cli.atomic import write_text
from vlmdyn_cli.calibration import metrics as M
from vlmdyn_cli.calibration.band import Band, choose_band, escalated as within_budget
from vlmdyn_cli.calibration.logreg import choose_l2, cross_val_predict, fit_logreg, fold_of
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.judging.backends.base import Item
from vlmdyn_cli.judging.spec import JudgeSpec
from vlmdyn_cli.judging.features import MODEL_FEATURES, TEXT_FEATURES, check_features, model_feature_values
from vlmdyn_cli.names import check_file_name
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.store import judgements as store


def labelled_items(db: Database, labels: dict[str, str]) -> list[Item]:
    """The labelled triples (hash -> yes/no), in hash order."""
    triples = store.fetch_triples(db, sorted(labels))
    return [Item(h, *triples[h]) for h in sorted(triples)]


def _cached_judge_scores(db: Database, reporter: Reporter):
    """P(yes) of a judge in score mode over items, judging (cached) whatever is missing first."""
    def scores(judge: str, items: list[Item]) -> dict[str, float]:
        from vlmdyn_cli.judging.run import judge_triples
        from vlmdyn_cli.judging.spec import load_spec

        spec = load_spec(judge)
        hashes = [it.key for it in items]
        judge_triples(db, spec, hashes, reporter=reporter)
        return {h: float(r.p_yes) for h, r in store.rows_of(db, spec.hash, hashes).items() if r.p_yes is not None}
    return scores


def feature_matrix(db: Database, items: list[Item], features: list[str],
                   reporter: Reporter = NullReporter()) -> list[list[float]]:
    """One row of feature values per item (a model feature that could not be computed: 0.5)."""
    model_vals: dict[str, dict[str, float]] = {f: {} for f in features if f in MODEL_FEATURES}
    if model_vals:
        with reporter.task(f"features {', '.join(model_vals)}", total=len(items), unit="items") as task:
            for i in range(0, len(items), 256):
                chunk = items[i:i + 256]
                for f, vals in model_feature_values(features, chunk, _cached_judge_scores(db, reporter)).items():
                    model_vals[f] |= vals
                task.advance(len(chunk))
    rows = []
    with reporter.task("text features", total=len(items), unit="items") as task:
        for it in items:
            rows.append([TEXT_FEATURES[f](it) if f in TEXT_FEATURES else model_vals[f].get(it.key, 0.5)
                         for f in features])
            task.advance(1)
    return rows


@dataclass
class Escalation:
    """The LLM a calibrated cascade sends its unsure items to, and how much of them."""

    spec: JudgeSpec                 # (with --model / --base-url applied)
    ref: str                        # how the cascade file names it: a built-in name or an absolute path
    model: str | None = None        # the overrides, written into the cascade file
    base_url: str | None = None
    max_escalation: float | None = None
    target_agreement: float | None = None


def check_fit_input(n_items: int, ys: list[int], folds: int, what: str) -> None:
    if folds < 2:
        raise BadInput(f"--folds must be at least 2 (got {folds})")
    if n_items < max(10, folds):
        raise BadInput(f"only {n_items} items have {what}; a judge needs at least {max(10, folds)} "
                       f"(and at least one per fold, --folds {folds}); 100 or more is typical")
    if len(set(ys)) < 2:
        raise BadInput(f"the {what} are all '{'yes' if ys[0] else 'no'}'; a judge cannot be fitted on one class")


def fit_judge(db: Database, name: str, features: list[str], labels: dict[str, str], out_dir: Path,
              folds: int = 5, seed: int = 0, l2: float | None = None, escalation: Escalation | None = None,
              label_source: str = "human-labelled", humans: dict[str, str] | None = None,
              fit_to: str = "labels", reporter: Reporter = NullReporter()) -> dict:
    """Fit the cheap judge on ``labels`` (triple hash -> yes/no) and save it as a spec; with
    ``escalation``, also choose its defer band and save the calibrated cascade.

    Every figure returned is held out: folds group the items by question (no question on both
    sides), and the band of each fold is chosen without that fold's items. ``l2`` None: the penalty
    is chosen by grouped CV (``choose_l2``), inside each fold from that fold's training items only
    (nested), and on all items for the saved judge. ``humans``: human verdicts to report the agreement
    with as well, where the labels are a teacher's.
    """
    check_features(features)
    check_file_name(name, "--name")
    items = [it for it in labelled_items(db, labels)]
    truth = [labels[it.key] for it in items]
    ys = [1 if t == "yes" else 0 for t in truth]
    check_fit_input(len(items), ys, folds, f"{label_source} verdicts")
    groups = [it.question for it in items]
    llm = _llm_verdicts(db, escalation.spec, items, reporter) if escalation else None
    if llm is not None:
        llm["ok"] = np.array([v is not None and v == t for v, t in zip(llm["verdict"], truth)])
    X = np.asarray(feature_matrix(db, items, features, reporter), dtype=float)
    y = np.asarray(ys)
    fold = np.asarray(fold_of(len(items), folds, seed, groups))
    held = np.zeros(len(items))
    escalated = np.zeros(len(items), dtype=bool)

    t = fit_targets(y, llm, fit_to)
    # with a budget, the items it sends are ranked by defer priority, which also weighs a second model's
    # estimate of whether the LLM agrees with the label (fitted_backend.defer_priority)
    ranks_llm = escalation is not None and escalation.max_escalation is not None

    def penalty(idx) -> float:
        return l2 if l2 is not None else choose_l2(X[idx].tolist(), t[idx].tolist(), folds=folds, seed=seed,
                                                   groups=[groups[i] for i in idx], labels=y[idx].tolist())
    with reporter.task("cross-validation", total=len(set(fold)) + 1, unit="folds") as task:
        for f in sorted(set(fold)):
            tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            fold_l2 = penalty(tr)
            model = fit_logreg(X[tr].tolist(), t[tr].tolist(), l2=fold_l2)
            held[te] = [model.prob(x) for x in X[te].tolist()]
            if llm is not None:
                band = held_out_band(X[tr], y[tr], llm["ok"][tr], [groups[i] for i in tr], escalation,
                                     folds=folds, seed=seed, l2=fold_l2, targets=t[tr])
                q = None
                if ranks_llm:
                    ok_model = fit_logreg(X[tr].tolist(), llm["ok"][tr].astype(float).tolist(), l2=fold_l2)
                    q = [ok_model.prob(x) for x in X[te].tolist()]
                escalated[te] = within_budget(held[te], band, escalation.max_escalation, q)  # a fold: a run
            task.advance(1)
        final_l2 = penalty(np.arange(len(items)))
        task.advance(1)
    model = fit_logreg(X.tolist(), t.tolist(), l2=final_l2)
    llm_ok = {}
    if ranks_llm:
        ok_model = fit_logreg(X.tolist(), llm["ok"].astype(float).tolist(), l2=final_l2)
        llm_ok = {"llm_ok_weights": ok_model.weights, "llm_ok_bias": ok_model.bias}
    cheap_pred = ["yes" if p >= 0.5 else "no" for p in held]
    cheap_name = f"{name}-cheap" if escalation else name
    cheap_path = out_dir / f"{cheap_name}.toml"
    fitted_to = (f"the mean of each item's label and {escalation.spec.name}'s verdict" if fit_to == "blend"
                 else "the labels")
    res = {"name": name, "n_items": len(items), "labels": label_source, "features": features, "folds": folds,
           "fit_to": fit_to, "fitted_to": fitted_to,
           "l2": final_l2, "l2_chosen_by_cv": l2 is None,
           "held_out": M.binary_metrics(cheap_pred, truth), "auc_held_out": M.roc_auc(list(held), truth),
           "weights": dict(zip(features, model.weights)), "bias": model.bias, "spec_path": str(cheap_path)}
    if llm_ok:
        res |= {"llm_ok_weights": dict(zip(features, llm_ok["llm_ok_weights"])), "llm_ok_bias": llm_ok["llm_ok_bias"]}
    if humans:
        hh = [i for i, it in enumerate(items) if it.key in humans]
        res["held_out_vs_humans"] = M.binary_metrics([cheap_pred[i] for i in hh], [humans[items[i].key] for i in hh])
    cheap_spec = {
        "name": cheap_name, "backend": "fitted", "model": f"logreg({','.join(features)})", "output": "verdict-dict",
        "description": f"Logistic regression over {', '.join(features)}, fitted on {len(items)} {label_source} "
                       f"items{' (targets: ' + fitted_to + ')' if fit_to == 'blend' else ''} (l2 {final_l2:g}{' chosen by CV' if l2 is None else ''}; {folds}-fold CV grouped by question: held-out accuracy "
                       f"{100 * (res['held_out']['accuracy'] or 0):.1f}%)"
                       + (f"; it ranks the items of an escalation budget with a second fit: whether "
                          f"{escalation.spec.name}'s verdict agrees with the label." if llm_ok else "."),
        "options": {"features": features, "threshold": 0.5, **model.to_dict(), **llm_ok},
    }
    files = {cheap_path: _to_toml(cheap_spec)}
    if escalation:
        band = choose_band(held, llm["ok"], y, max_escalation=escalation.max_escalation,
                           target_agreement=escalation.target_agreement)
        res["cascade"] = _cascade_report(held, escalated, llm, truth, band) | {
            "max_escalation": escalation.max_escalation}
        path = out_dir / f"{name}.toml"
        res["spec_path"], res["cheap_spec_path"] = str(path), str(cheap_path)
        files[path] = _to_toml(_cascade_spec(name, cheap_path.name, escalation, band, res["cascade"]))
    for path, text in files.items():     # written last: a failure above leaves no file behind
        write_text(path, text, "--out-dir")
    return res


FIT_TO = ("labels", "blend")


def check_fit_to(fit_to: str, escalating: bool) -> None:
    """``--fit-to``: a known value, and ``blend`` only with an escalation judge (checked before any work)."""
    if fit_to not in FIT_TO:
        raise BadInput(f"--fit-to must be one of {', '.join(FIT_TO)}, got {fit_to!r}")
    if fit_to == "blend" and not escalating:
        raise BadInput("--fit-to blend mixes in the --escalate-to judge's verdicts: give --escalate-to SPEC "
                       "(or --fit-to labels)")


def fit_targets(y, llm: dict | None, fit_to: str) -> np.ndarray:
    """What the cheap judge is fitted to: the labels (1 yes, 0 no), or with ``blend`` the mean of the
    label and the escalation judge's verdict on the same item (the label alone where that judge gave
    none). It is only ever scored against the labels. The LLM's verdicts are a second, less noisy
    reading of the same items (two or three people vote on each), so the cheap judge ranks its
    items better for the escalation budget (examples/calibration/nq/README.md, half-splits)."""
    y = np.asarray(y, dtype=float)
    check_fit_to(fit_to, llm is not None)
    if fit_to == "labels":
        return y
    v = [None if x is None else float(x == "yes") for x in llm["verdict"]]
    return np.array([yi if vi is None else (yi + vi) / 2 for yi, vi in zip(y, v)])


def held_out_band(X, y, llm_ok, groups: list, escalation: Escalation, *, folds: int, seed: int,
                  l2: float, targets=None) -> Band:
    """The defer band for a cheap judge fitted on (X, ``targets``, default ``y``), chosen on
    out-of-fold P(yes) (folds grouped by question) against the labels ``y``."""
    t = np.asarray(y if targets is None else targets, dtype=float)
    p = cross_val_predict(np.asarray(X).tolist(), t.tolist(), folds=folds, seed=seed, l2=l2,
                          groups=groups)
    return choose_band(p, llm_ok, y, max_escalation=escalation.max_escalation,
                       target_agreement=escalation.target_agreement)


def _llm_verdicts(db: Database, spec: JudgeSpec, items: list[Item], reporter: Reporter) -> dict:
    """The escalation judge's verdicts of the labelled items (judged first, cached as always)."""
    from vlmdyn_cli.judging.run import judge_triples

    hashes = [it.key for it in items]
    judge_triples(db, spec, hashes, reporter=reporter)
    rows = store.rows_of(db, spec.hash, hashes)
    verdict = [rows[h].verdict if h in rows and rows[h].status == "scored" else None for h in hashes]
    costs = [rows[h].cost_usd for h in hashes if h in rows and rows[h].cost_usd is not None]
    return {"verdict": verdict, "ok": None, "usd_per_item": (sum(costs) / len(costs)) if costs else None,
            "priced": bool(costs)}


def _cascade_report(held, escalated, llm: dict, truth: list[str], band: Band) -> dict:
    """Held-out agreement of the cascade, the cheap judge alone and the LLM alone, with the costs."""
    n = len(truth)
    casc = [llm["verdict"][i] if escalated[i] else ("yes" if held[i] >= 0.5 else "no") for i in range(n)]
    scored = [i for i in range(n) if casc[i] is not None]
    llm_scored = [i for i in range(n) if llm["verdict"][i] is not None]
    per_item = llm["usd_per_item"]
    share = float(np.mean(escalated))
    return {
        "band": [band.lo, band.hi], "band_escalated_in_sample": band.escalated,
        "escalated_share": share,
        "cascade": M.binary_metrics([casc[i] for i in scored], [truth[i] for i in scored])
        | {"n_unscored": n - len(scored)},
        "llm": M.binary_metrics([llm["verdict"][i] for i in llm_scored], [truth[i] for i in llm_scored])
        | {"n_unscored": n - len(llm_scored)},
        "usd_per_1000": {"cheap": 0.0, "llm": None if per_item is None else 1000 * per_item,
                         "cascade": None if per_item is None else 1000 * per_item * share},
        "target_reached": band.reached,
    }


def _cascade_spec(name: str, cheap_file: str, esc: Escalation, band: Band, rep: dict) -> dict:
    c, lo = rep["cascade"], rep["llm"]
    spec = {
        "name": name, "backend": "cascade",
        "description": (f"{name}-cheap decides all but the {100 * esc.max_escalation:g}% of each run's items where "
                        f"it is likeliest wrong and {esc.spec.name} likeliest right, {esc.spec.name} those" if esc.max_escalation is not None else
                        f"{name}-cheap decides where its P(yes) is outside ({band.lo:.3f}, {band.hi:.3f}), "
                        f"{esc.spec.name} the rest") + f"; held out: {100 * (c['accuracy'] or 0):.1f}% agreement "
                       f"escalating {100 * rep['escalated_share']:.1f}% ({esc.spec.name} alone "
                       f"{100 * (lo['accuracy'] or 0):.1f}%)",
        "stages": [cheap_file, esc.ref],
        "decoding": {"defer_band": [round(band.lo, 6), round(band.hi, 6)]}
        | ({"max_escalation": esc.max_escalation} if esc.max_escalation is not None else {}),
    }
    if esc.model:
        spec["model"] = esc.model
    if esc.base_url:
        spec["options"] = {"base_url": esc.base_url}
    return spec


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
