"""What each figure shows: plain data (JSON-able dicts) built from ``aggregate``.

Every builder returns a *figure spec*::

    {"figure", "title", "judge", "dataset", "runs", "n_seeds", "caption", "notes",
     "panels": [{"title", "xlabel", "ylabel", "percent", "xticks",
                 "series": [{"label", "color", "linestyle", "marker", "dashed_before",
                             "marker_at", "band", "emphasis", "points": [Point.as_dict(), ...]}]}]}

``render.py`` draws it with matplotlib, ``terminal.py`` with plotext, ``--json``
prints it: the same numbers in all three. Accuracies are fractions (0-1);
renderers show percent.
"""

from __future__ import annotations

from vlmdyn_cli.data.categories import CATEGORIES, SUBCATEGORIES
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.plots import aggregate as A

#: Okabe-Ito colours, one per skill category, the same in every figure.
CATEGORY_COLORS = {"Bounding": "#E69F00", "Complex": "#CC79A7", "Object": "#0072B2", "OCR": "#D55E00",
                   "Spatial": "#009E73", None: "#999999"}
SKY, BLACK, GREY = "#56B4E9", "#000000", "#999999"
FIGURES = ("frontiers", "categories", "seen-sets", "subcategories", "dedup", "loss")
ACC_Y = "accuracy (% of scored items)"
STEP_X = "training step (optimizer steps)"


def seen_colors(n: int) -> list[str]:
    """Colour-blind-safe sequential colours (viridis) for Seen@k sets, earliest darkest."""
    # matplotlib's viridis sampled from 0 to 0.9 (precomputed: this module imports no matplotlib;
    # the lightest yellow is left out so every line stays visible on white)
    ramp = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b"]
    if n <= 1:
        return ramp[:1]
    return [ramp[round(i * (len(ramp) - 1) / (n - 1))] for i in range(n)]


def _series(points: list[A.Point], **style) -> dict:
    return {"label": style.pop("label"), "color": style.pop("color", BLACK), "linestyle": style.pop("linestyle", "-"),
            "marker": style.pop("marker", "o"), "dashed_before": style.pop("dashed_before", None),
            "marker_at": style.pop("marker_at", None), "band": style.pop("band", True),
            "emphasis": style.pop("emphasis", False), "points": [p.as_dict() for p in points], **style}


def _by_key(points: list[A.Point]) -> dict[tuple, list[A.Point]]:
    out: dict[tuple, list[A.Point]] = {}
    for p in points:
        out.setdefault(p.key, []).append(p)
    return out


def _has_scores(points: list[A.Point]) -> bool:
    return any(p.scored for p in points)


# The finding of METHOD.md section 5 each figure shows (its caption says so; `vlmdyn findings` checks them).
SHOWS = {
    "frontiers": "findings 1 (two frontiers) and 2 (each Seen@k jumps at k)",
    "dedup": "finding 3 (image re-use inflates unseen accuracy)",
    "categories": "findings 4 (when each category is learned) and 5 (seen-vs-unseen gap per category)",
    "seen-sets": "finding 6 (across seen sets: OCR by recency, Complex worse on later sets)",
    "subcategories": "findings 7 (describe vs bbox) and 8 (OCR semantic before recognition)",
}


def _base(db, sel: A.Selection, name: str, title: str) -> dict:
    tot = A.totals(db, sel)
    if tot["scored"] == 0 and name != "loss":
        raise BadInput(f"no scored judgements by judge {sel.judge.label} for runs "
                       f"{', '.join(r.name for r in sel.runs)}: nothing to plot")
    judged = tot["scored"] + tot["unscored"]
    excl = (f"{tot['unscored']:,} unscored items excluded ({100 * tot['unscored'] / judged:.1f}% of "
            f"{judged:,} judged items)" if judged else "no judgements")
    if tot["unjudged"]:
        excl += f"; {tot['unjudged']:,} generations not judged by this judge yet"
    steps = sorted({s for (s,) in A._q(db, f"SELECT DISTINCT step FROM plot_cells WHERE spec_hash = ? AND "
                                           f"run_id IN ({A._ph(len(sel.runs))})", [sel.judge.hash, *sel.run_ids])})
    return {"figure": name, "title": title, "judge": sel.judge.label, "judge_hash": sel.judge.hash,
            "dataset": sel.dataset, "runs": [r.name for r in sel.runs], "n_seeds": len(sel.runs),
            "caption": (f"Shows {SHOWS[name]} (checked by `vlmdyn findings`). " if name in SHOWS else "")
            + f"Judge: {sel.judge.label}. Mean \u00b1 1\u03c3 over {len(sel.runs)} seed(s). {excl}.",
            "totals": tot, "notes": list(sel.notes), "panels": [], "checkpoints": steps}


def _panel(title: str, series: list[dict], spec: dict, ylabel: str = ACC_Y, xlabel: str = STEP_X,
           percent: bool = True, **extra) -> dict:
    return {"title": title, "xlabel": xlabel, "ylabel": ylabel, "percent": percent,
            "xticks": spec.get("checkpoints", []), "series": series, **extra}


def _seen_sets(db, sel) -> list[dict]:
    seen = [s for s in A.set_info(db, sel) if s["kind"] == "seen" and s["k_step"] is not None]
    return sorted(seen, key=lambda s: s["k_step"])


def frontiers(db, sel: A.Selection) -> dict:
    spec = _base(db, sel, "frontiers", "Seen@k sets vs the unseen set: training and validation frontiers")
    seen = _seen_sets(db, sel)
    per_set = _by_key(A.seed_stats(db, sel, ["s.name"], "s.kind = 'seen'", cells_ready=True))
    val = A.seed_stats(db, sel, ["'validation'"], A.VALIDATION, cells_ready=True)
    train = A.seed_stats(db, sel, ["'training'"], A.SEEN_AT_STEP, best_of="s.name", cells_ready=True)
    if not _has_scores(val):
        raise BadInput("the selected runs have no scored items in an unseen (image de-dup) set: build one with "
                       "`vlmdyn sets build` and generate/judge it")
    series = [
        _series(train, label="training frontier (best seen set)", color=CATEGORY_COLORS["Bounding"],
                marker="", band=True, emphasis=True, linewidth=6, alpha_line=0.35),
        _series(val, label="validation frontier (unseen)", color=BLACK, marker="", band=True, emphasis=True,
                linewidth=6, alpha_line=0.25),
    ]
    for s, c in zip(seen, seen_colors(len(seen))):
        pts = per_set.get((s["name"],), [])
        if _has_scores(pts):
            series.append(_series(pts, label=s["name"], color=c, dashed_before=s["k_step"], marker_at=s["k_step"],
                                  band=False))
        else:
            spec["notes"].append(f"{s['name']}: no scored items")
    series.append(_series(val, label="unseen", color=BLACK, band=False, marker="s"))
    spec["panels"].append(_panel("", series, spec, legend_note="dashed: before step k (not yet trained); "
                                 "solid from k; \u2605 = the step the set becomes seen"))
    return spec


def _category_series(db, sel, where_extra: str = "1", key: str = "c.category"):
    seen = _by_key(A.seed_stats(db, sel, [key], f"{A.SEEN_AT_STEP} AND ({where_extra})", cells_ready=True))
    unseen = _by_key(A.seed_stats(db, sel, [key], f"{A.VALIDATION} AND ({where_extra})", cells_ready=True))
    return seen, unseen


def categories(db, sel: A.Selection) -> dict:
    spec = _base(db, sel, "categories", "Accuracy per skill category: sets already trained on vs unseen")
    seen, unseen = _category_series(db, sel)
    series, missing = [], []
    for cat in [*CATEGORIES, None]:
        s_pts, u_pts = seen.get((cat,), []), unseen.get((cat,), [])
        if not _has_scores(s_pts) and not _has_scores(u_pts):
            if cat is not None:
                missing.append(cat)
            continue
        label = cat or "(uncategorised)"
        if cat is None:
            spec["notes"].append("some items have no category: run `vlmdyn data categorize`")
        series.append(_series(s_pts, label=f"{label} seen", color=CATEGORY_COLORS[cat], category=label))
        series.append(_series(u_pts, label=f"{label} unseen", color=CATEGORY_COLORS[cat], linestyle="--",
                              marker="^", category=label))
    if not series:
        raise BadInput("no categorised, scored items in the selected runs' sets: run `vlmdyn data categorize`")
    if missing:
        spec["notes"].append(f"no items in categories: {', '.join(missing)} (left out)")
    spec["panels"].append(_panel("", series, spec, legend_note="solid: seen sets trained by that step (pooled); "
                                 "dashed: unseen set"))
    return spec


def seen_sets(db, sel: A.Selection) -> dict:
    spec = _base(db, sel, "seen-sets", "Per category: every Seen@k set across checkpoints")
    seen = _seen_sets(db, sel)
    pts = _by_key(A.seed_stats(db, sel, ["c.category", "s.name"], "s.kind = 'seen'", cells_ready=True))
    unseen = _by_key(A.seed_stats(db, sel, ["c.category"], A.VALIDATION, cells_ready=True))
    colors = seen_colors(len(seen))
    for cat in CATEGORIES:
        series = []
        for s, c in zip(seen, colors):
            p = pts.get((cat, s["name"]), [])
            if _has_scores(p):
                series.append(_series(p, label=s["name"], color=c, dashed_before=s["k_step"], marker_at=s["k_step"],
                                      band=True))
        if not series:
            spec["notes"].append(f"{cat}: no items in the seen sets (panel left out)")
            continue
        u = unseen.get((cat,), [])
        if _has_scores(u):
            series.append(_series(u, label="unseen", color=GREY, linestyle=":", marker="s", band=False))
        spec["panels"].append(_panel(cat, series, spec, title_color=CATEGORY_COLORS[cat],
                                     legend_note="dashed: before step k (not yet trained); solid from k; "
                                                 "\u2605 = the step the set becomes seen; dotted grey: unseen set"))
    if not spec["panels"]:
        raise BadInput("no categorised items in the seen sets of the selected runs")
    return spec


def subcategories(db, sel: A.Selection) -> dict:
    spec = _base(db, sel, "subcategories", "Sub-skills: Bounding bbox vs describe, OCR recognition vs semantic")
    seen, unseen = _category_series(db, sel, key="c.subcategory",
                                    where_extra="c.category IN ('Bounding', 'OCR')")
    for cat, subs in SUBCATEGORIES.items():
        if not subs:
            continue
        series = []
        for sub, color, marker in zip(subs, (CATEGORY_COLORS[cat], SKY), ("o", "s")):
            s_pts, u_pts = seen.get((sub,), []), unseen.get((sub,), [])
            if not _has_scores(s_pts) and not _has_scores(u_pts):
                spec["notes"].append(f"{cat}/{sub}: no items")
                continue
            series.append(_series(s_pts, label=f"{sub} seen", color=color, marker=marker))
            series.append(_series(u_pts, label=f"{sub} unseen", color=color, linestyle="--", marker=marker))
        if series:
            spec["panels"].append(_panel(cat, series, spec, title_color=CATEGORY_COLORS[cat],
                                         legend_note="solid: seen sets trained by that step; dashed: unseen"))
        else:
            spec["notes"].append(f"{cat}: no items with a subcategory (panel left out)")
    if not spec["panels"]:
        raise BadInput("no Bounding or OCR items with a subcategory in the selected runs' sets "
                       "(run `vlmdyn data categorize`)")
    return spec


DEDUP_STYLE = {"image": ("unseen, image de-dup", BLACK, "-", "o"),
               "pair": ("unseen, pair de-dup only", SKY, "--", "s"),
               "none": ("unseen, no de-dup", GREY, ":", "^")}


def dedup(db, sel: A.Selection) -> dict:
    spec = _base(db, sel, "dedup", "Unseen accuracy by de-duplication: shared images inflate it")
    pts = _by_key(A.seed_stats(db, sel, ["COALESCE(s.dedup, 'image')"], "s.kind = 'unseen'", cells_ready=True))
    series = []
    for d, (label, color, ls, marker) in DEDUP_STYLE.items():
        if _has_scores(pts.get((d,), [])):
            series.append(_series(pts[(d,)], label=label, color=color, linestyle=ls, marker=marker))
    if len(series) < 2:
        have = ", ".join(k[0] for k in pts) or "none"
        raise BadInput(f"the dedup figure needs unseen sets with at least two de-dup modes (image, pair, none); "
                       f"the selected runs have: {have} (build them with `vlmdyn sets build`)")
    spec["panels"].append(_panel("", series, spec))
    return spec


def loss(db, sel: A.Selection) -> dict:
    spec = {"figure": "loss", "title": "Training loss and learning rate", "judge": None,
            "dataset": sel.dataset, "runs": [r.name for r in sel.runs], "n_seeds": len(sel.runs),
            "notes": list(sel.notes), "panels": [], "totals": None,
            "checkpoints": sorted({s for (s,) in A._q(db, f"SELECT DISTINCT step FROM checkpoints WHERE run_id IN "
                                                        f"({A._ph(len(sel.runs))})", sel.run_ids)})}
    lo, lr = A.loss_stats(db, sel, "loss"), A.loss_stats(db, sel, "lr")
    if not lo and not lr:
        raise BadInput(f"no training metrics for runs {', '.join(spec['runs'])} (they are written by `vlmdyn train`)")
    spec["caption"] = (f"Mean \u00b1 1\u03c3 over {len(sel.runs)} seed(s) at every optimizer step; "
                       "vertical lines: evaluated checkpoints.")
    spec["panels"].append(_panel("training loss", [_series(lo, label="loss", color=CATEGORY_COLORS["Object"],
                                                           marker="")], spec,
                                 ylabel="loss (cross-entropy, nats/token)", percent=False, vlines=True))
    spec["panels"].append(_panel("learning rate", [_series(lr, label="learning rate", color=BLACK, marker="")], spec,
                                 ylabel="learning rate", percent=False, vlines=True, sci=True))
    return spec


BUILDERS = {"frontiers": frontiers, "categories": categories, "seen-sets": seen_sets,
            "subcategories": subcategories, "dedup": dedup, "loss": loss}


def build(db, name: str, sel: A.Selection) -> dict:
    if name not in BUILDERS:
        from vlmdyn_cli.errors import did_you_mean

        raise BadInput(f"unknown figure '{name}'{did_you_mean(name, BUILDERS)}; valid: {', '.join(FIGURES)}, all")
    if name != "loss":
        A.ensure_cells(db, sel)
    return BUILDERS[name](db, sel)
