"""CLI: `vlmdyn calibrate sample|sheet|import|labels|report|fit` — judges vs human labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vlmdyn_cli.cli.common import DbOpt, JsonOpt, QuietOpt, emit_json, hint, print_table, say

cal_app = typer.Typer(help="Calibrate judges against human labels (the paper's human study).",
                      no_args_is_help=True)

AgreementOpt = Annotated[float, typer.Option("--agreement", help="Share of raters saying yes that makes "
                                             "the human verdict yes (paper: 0.75).")]
MinRatersOpt = Annotated[int, typer.Option("--min-raters", min=1, help="Items with fewer raters are excluded "
                                           "(and listed).")]
SampleOpt = Annotated[Optional[str], typer.Option("--sample", help="Restrict to one sample's items.")]


@cal_app.command("sample")
def sample_cmd(
    n: Annotated[int, typer.Option("--n", help="Number of items.")] = 100,
    run: Annotated[Optional[str], typer.Option("--run", help="Draw from this run's generations.")] = None,
    input_path: Annotated[Optional[Path], typer.Option("--input", help="Or from a triples JSONL file.")] = None,
    name: Annotated[str, typer.Option("--name", help="Sample name (item ids are NAME-0001...).")] = "study",
    stratify: Annotated[Optional[str], typer.Option("--stratify", help="'category': equal share per category.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Rater sheet CSV (default NAME.csv).")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    db: DbOpt = None,
    json_out: JsonOpt = False,
):
    """Draw items for a human study and write a rater sheet (CSV with an empty label column).

    Example: vlmdyn calibrate sample --n 100 --stratify category --run seed0 --out study.csv
    """
    from vlmdyn_cli.atomic import check_output
    from vlmdyn_cli.calibration.sample import sample_items, write_sheet
    from vlmdyn_cli.names import check_file_name
    from vlmdyn_cli.store import open_db

    sheet = check_output(out or Path(f"{check_file_name(name, '--name')}.csv"), "--out")  # before anything is stored
    d = open_db(db)
    try:
        items = sample_items(d, n, run=run, input_path=input_path, name=name, seed=seed, stratify=stratify)
        write_sheet(d, name, sheet)
    finally:
        d.close()
    cats: dict[str, int] = {}
    for it in items:
        cats[it.get("category") or "(none)"] = cats.get(it.get("category") or "(none)", 0) + 1
    if json_out:
        emit_json({"sample": name, "n": len(items), "sheet": str(sheet), "categories": cats})
    else:
        say(f"sample {name!r}: {len(items)} items -> {sheet}  categories: {cats}")
        hint("Give each rater a copy; they fill the label column with yes/no, then: "
             f"vlmdyn calibrate import {sheet} --rater NAME")


@cal_app.command("sheet")
def sheet_cmd(
    sample: Annotated[str, typer.Argument(help="Sample name.")],
    out: Annotated[Path, typer.Option("--out", help="CSV path.")],
    db: DbOpt = None,
):
    """Write a sample's rater sheet again.

    Example: vlmdyn calibrate sheet study --out study-rater2.csv
    """
    from vlmdyn_cli.atomic import check_output
    from vlmdyn_cli.calibration.sample import write_sheet
    from vlmdyn_cli.store import open_db

    check_output(out, "--out")
    d = open_db(db, readonly=True)
    try:
        n = write_sheet(d, sample, out)
    finally:
        d.close()
    say(f"{n} items -> {out}")


@cal_app.command("import")
def import_cmd(
    files: Annotated[list[Path], typer.Argument(help="Filled sheets (.csv/.tsv) or label files (.jsonl).")],
    rater: Annotated[Optional[str], typer.Option("--rater", help="Rater name when the file has no rater column.")] = None,
    sample: SampleOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
):
    """Load human labels: one row per (item, rater, yes/no); any number of raters.

    Items are matched by item id, or by (question, reference, prediction).
    Labels accept y/n/yes/no/1/0/true/false in any case; an empty label cell
    means "not rated". Each file is validated whole and imported in one
    transaction: a bad line changes nothing.

    Example: vlmdyn calibrate import study-alice.csv --rater alice
    """
    from vlmdyn_cli.calibration.labels import import_labels
    from vlmdyn_cli.store import open_db

    d = open_db(db)
    results = []
    for f in files:
        r = import_labels(d, f, rater=rater, sample=sample)
        results.append({"file": str(f), "imported": r.imported, "unchanged": r.unchanged,
                        "empty": r.empty, "raters": sorted(r.raters), "new_items": r.new_items})
    if json_out:
        emit_json(results)
    else:
        for r in results:
            say(f"{r['file']}: {r['imported']} labels imported, {r['unchanged']} already stored, "
                       f"{r['empty']} rows without a label")


def _verdicts(d, agreement, min_raters, sample):
    from vlmdyn_cli.calibration.labels import human_verdicts
    from vlmdyn_cli.errors import BadInput

    hv = human_verdicts(d, agreement=agreement, min_raters=min_raters, sample=sample)
    if not hv.verdict:
        raise BadInput("no human labels yet (or none with enough raters): draw a sample with "
                       "`vlmdyn calibrate sample`, have it rated, then `vlmdyn calibrate import`")
    return hv


@cal_app.command("labels")
def labels_cmd(
    agreement: AgreementOpt = 0.75,
    min_raters: MinRatersOpt = 1,
    sample: SampleOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
):
    """Human verdicts and inter-rater agreement (Fleiss' kappa, pairwise agreement).

    Example: vlmdyn calibrate labels --agreement 0.75 --min-raters 2
    """
    from vlmdyn_cli.calibration.report import human_summary
    from vlmdyn_cli.store import open_db

    hv = _verdicts(open_db(db, must_exist=True), agreement, min_raters, sample)
    s = human_summary(hv)
    if json_out:
        emit_json(s)
        return
    say(f"{s['items']} items with a human verdict ({100 * s['share_yes']:.0f}% yes), "
               f"raters: {', '.join(s['raters'])}")
    say(f"items by number of raters: {s['items_by_rater_count']}; excluded (too few raters): "
               f"{s['excluded_too_few_raters']}")
    fk = s["fleiss_kappa"]
    say(f"Fleiss' kappa: {'undefined (one class only)' if fk is None else f'{fk:.3f}'}; "
               f"pairwise agreement: {s['pairwise']['overall']}")


def _fmt(v, pct=True):
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


@cal_app.command("report")
def report_cmd(
    judge: Annotated[list[str], typer.Option("--judge", help="Judge spec (name or path); repeatable.")],
    agreement: AgreementOpt = 0.75,
    min_raters: MinRatersOpt = 1,
    sample: SampleOpt = None,
    folds: Annotated[int, typer.Option("--folds", min=2, help="Folds for the threshold cross-validation.")] = 5,
    no_run: Annotated[bool, typer.Option("--no-run", help="Do not judge missing items first.")] = False,
    model: Annotated[Optional[str], typer.Option("--model", help="Override the model of the model judges "
                     "(as on `vlmdyn judge`).")] = None,
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="OpenAI-compatible server for the "
                        "model judges (as on `vlmdyn judge`).")] = None,
    png: Annotated[Optional[Path], typer.Option("--png", help="Also draw the cost/agreement view to this PNG.")] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Each judge against the human verdicts: accuracy, precision, recall, F1, kappa, CIs,
    agreement per rubric-score band, and agreement vs $ per 1,000 judgements.

    Judges that have not judged the labelled items yet are run first (cached
    as usual). Unscored items are excluded and counted, never taken as "no".

    Example: vlmdyn calibrate report --judge rules --judge cascade --judge gpt-4o-mini --png cost.png
    """
    from vlmdyn_cli.atomic import check_output
    from vlmdyn_cli.calibration.report import human_summary, judge_report, rubric_comparison, save_report
    from vlmdyn_cli.judging.spec import load_spec
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store import open_db

    if png is not None:
        check_output(png, "--png")
    overrides = dict(model=model, options={"base_url": base_url} if base_url else None)
    specs = [_overridden(load_spec(j), overrides) for j in judge]  # all specs valid before any work
    if not no_run:                    # ... and every judge able to run (installed, its key set): none
        from vlmdyn_cli.judging.backends import check_installed   # judges before another is refused
        from vlmdyn_cli.judging.run import checked_options

        for spec in specs:
            check_installed(spec)
            checked_options(spec, ready=True)
    d = open_db(db, must_exist=True)
    hv = _verdicts(d, agreement, min_raters, sample)
    reporter = cli_reporter(quiet or json_out)
    reports = []
    for spec in specs:
        if not no_run:
            from vlmdyn_cli.judging.run import judge_triples

            judge_triples(d, spec, sorted(hv.verdict), reporter=reporter)
        rep = judge_report(d, spec.name, spec.hash, hv, folds=folds)
        reports.append(rep)
        save_report(d, rep, agreement)
    from vlmdyn_cli.calibration import cost_view

    curves = {} if no_run else cost_view.cascade_curves(d, specs, hv, reporter)
    out = {"humans": human_summary(hv), "judges": reports, "rubric_comparison": rubric_comparison(reports),
           "cost_view": {"points": cost_view.points(reports), "cascade_curves": curves,
                         "paper": cost_view.PAPER_LINES}}
    if png is not None:
        cost_view.render_png(out["cost_view"]["points"], curves, png)
        hint(f"cost/agreement view -> {png}")
    fitted = [s.name for s in specs if s.backend == "fitted"]
    if fitted and not json_out:
        hint(f"{', '.join(fitted)}: a fitted judge scored on the labels it was fitted on is optimistic; "
             "quote the held-out numbers that `vlmdyn calibrate fit` printed")
    if json_out:
        emit_json(out)
        return
    rows = []
    for r in reports:
        ci = r["ci95"]["accuracy"]
        rows.append({
            "judge": r["judge"], "n": r["n_scored"], "unscored": r["n_unscored"],
            "accuracy": _fmt(r["accuracy"]) + (f" [{100 * ci[0]:.0f}-{100 * ci[1]:.0f}]" if ci else ""),
            "precision": _fmt(r["precision"]), "recall": _fmt(r["recall"]),
            "F1": _fmt(r["f1"], pct=False), "kappa": _fmt(r["kappa"], pct=False),
            "AUC p_yes": _fmt(r.get("auc_p_yes"), pct=False),
            "$/1k": f"{r['usd_per_1000']:.4f}",
            "s/1k": "n/a" if r["seconds_per_1000"] is None else f"{r['seconds_per_1000']:.1f}",
        })
    print_table(rows, title=f"Judges vs human verdicts ({len(hv.verdict)} items, agreement >= {agreement})")
    for r in reports:
        c = r["confusion"]
        say(f"{r['judge']}: confusion tp={c['tp']} fp={c['fp']} fn={c['fn']} tn={c['tn']}"
                   + (f"; unscored {r['unscored_reasons']}" if r["n_unscored"] else ""))
        cats = ", ".join(f"{k} {_fmt(v['accuracy'])} (n={v['n']})" for k, v in r["per_category"].items())
        say(f"  per category: {cats}")
        if "threshold" in r:
            th = r["threshold"]
            # the sweep covers only the items that carry a p_yes (for a cascade: those its LLM stage
            # decided), so say how many, and when their human verdicts are all one class
            ho = th["held_out"]
            c = ho["confusion"]
            one = (" (one human class only)" if c["tp"] + c["fn"] in (0, ho["n"]) else "")
            say(f"  p_yes threshold {th['chosen']:.3f}; held-out ({th['folds']}-fold) accuracy "
                       f"{_fmt(ho['accuracy'])}, F1 {_fmt(ho['f1'], pct=False)} on the {ho['n']} items "
                       f"with a p_yes{one}")
        if r["per_score_band"]:
            say("  human agreement per rubric score (mean of MS, MD, H): " + ", ".join(
                f"{b['band']} {_fmt(b['agreement'])} (n={b['n']})" for b in r["per_score_band"]))
    if out["rubric_comparison"]:
        print_table(out["rubric_comparison"], title="With vs without rubric (ours and the paper's)")
    say(cost_view.render_text(out["cost_view"]["points"], curves))


def _overridden(spec, overrides: dict):
    """--model / --base-url go to the model judges (a cascade's last stage); the others are kept as they are."""
    last = spec.stages[-1] if spec.stages else spec
    if last.backend in ("rules", "fitted") or not (overrides["model"] or overrides["options"]):
        return spec
    return spec.with_overrides(**overrides)


@cal_app.command("fit")
def fit_cmd(
    name: Annotated[str, typer.Option("--name", help="Name of the new judge spec.")],
    features: Annotated[str, typer.Option("--features", help="Comma-separated features or groups: lexical (every "
                                          "text feature), minilm (sentence-embedding similarity, the embed extra), "
                                          "rules, exact, contains, ref-in-pred, pred-in-ref, token-f1, "
                                          "token-precision, token-recall, key-recall, fuzzy-recall, char-ratio, "
                                          "len-ratio, pred-len, ref-len, hedge, numbers, novel-words, "
                                          "question-overlap, novel-precision, local-p_yes, minilm-cos, minilm-qcos.")],
    escalate_to: Annotated[Optional[str], typer.Option("--escalate-to", help="Also build a calibrated cascade: "
                           "this judge (e.g. gpt-4o-mini) decides the items the fitted judge is least sure of (with a budget: "
                           "where it is likeliest wrong and this judge likeliest right).")] = None,
    max_escalation: Annotated[Optional[float], typer.Option("--max-escalation", help="Cascade: the largest share "
                              "of items sent to the --escalate-to judge (0-1; default 0.25).")] = None,
    target_agreement: Annotated[Optional[float], typer.Option("--target-agreement", help="Cascade: instead, the "
                                "agreement to reach with the fewest escalations (0-1).")] = None,
    fit_to: Annotated[Optional[str], typer.Option("--fit-to", help="What the cheap judge is fitted to: labels, "
                      "or blend (the mean of each item's label and the --escalate-to judge's verdict, a less "
                      "noisy target; scored against the labels). Default: blend with --escalate-to, else labels.")] = None,
    teacher: Annotated[Optional[str], typer.Option("--teacher", help="Fit on this judge's verdicts instead of "
                       "human labels: --n items drawn from the database are judged by it first.")] = None,
    n: Annotated[int, typer.Option("--n", help="--teacher: items to draw.", min=1)] = 2000,
    run: Annotated[Optional[str], typer.Option("--run", help="--teacher: draw from this run's generations "
                   "(default: every stored triple).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Override the model of the --escalate-to / "
                     "--teacher judge (as on `vlmdyn judge`).")] = None,
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="OpenAI-compatible server for the "
                        "--escalate-to / --teacher judge (as on `vlmdyn judge`).")] = None,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where the spec file is written.")] = Path("judges-local"),
    agreement: AgreementOpt = 0.75,
    min_raters: MinRatersOpt = 1,
    sample: SampleOpt = None,
    folds: Annotated[int, typer.Option("--folds", min=2, help="Cross-validation folds (grouped by question).")] = 5,
    l2: Annotated[Optional[float], typer.Option("--l2", help="L2 penalty of the logistic regression (default: "
                  "chosen by cross-validation grouped by question among 1, 3, 10, 30, 100).", min=0.0)] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Fit a logistic-regression judge over cheap signals; save it as a judge spec.

    Labels are the human verdicts (or, with --teacher, a judge's verdicts on drawn items).
    Quality is reported from k-fold cross-validation grouped by question (held-out items
    only). With --escalate-to, the items the fitted judge is least sure of go to that
    judge: the band is chosen by cross-validation and the cascade is saved as NAME.toml;
    the cheap judge is then fitted to the mean of each label and that judge's verdict
    (--fit-to blend; --fit-to labels fits to the labels alone).

    Examples:

      vlmdyn calibrate fit --name cheap --features lexical --agreement 0.5

      vlmdyn calibrate fit --name nq --features lexical,minilm --escalate-to gpt-4o-mini --max-escalation 0.25

      vlmdyn calibrate fit --name taught --features lexical --teacher gpt-4o-mini --n 2000 --run seed0
    """
    from vlmdyn_cli.atomic import check_folder, check_output
    from vlmdyn_cli.names import check_file_name
    from vlmdyn_cli.calibration.fit import Escalation, check_fit_to, fit_judge
    from vlmdyn_cli.errors import BadInput
    from vlmdyn_cli.judging.features import check_features, expand
    from vlmdyn_cli.judging.run import preflight
    from vlmdyn_cli.judging.spec import load_spec
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store import open_db

    check_file_name(name, "--name")
    check_folder(out_dir, "--out-dir")
    for spec_file in {f"{name}.toml", f"{name}-cheap.toml"}:   # checked before any work
        check_output(out_dir / spec_file, "--out-dir")
    feats = check_features(expand([f.strip() for f in features.split(",") if f.strip()]))
    if max_escalation is not None and not 0 <= max_escalation <= 1:
        raise BadInput(f"--max-escalation must be between 0 and 1 (a share of the items), got {max_escalation}")
    if target_agreement is not None and not 0 < target_agreement <= 1:
        raise BadInput(f"--target-agreement must be between 0 and 1, got {target_agreement}")
    if max_escalation is not None and target_agreement is not None:
        raise BadInput("give --max-escalation or --target-agreement, not both")
    if escalate_to is None and (max_escalation is not None or target_agreement is not None):
        raise BadInput("--max-escalation / --target-agreement need --escalate-to SPEC")
    fit_to = fit_to or ("blend" if escalate_to is not None else "labels")
    check_fit_to(fit_to, escalate_to is not None)
    if escalate_to is None and teacher is None and (model or base_url):
        raise BadInput("--model / --base-url apply to the --escalate-to or --teacher judge: give one of them")
    overrides = dict(model=model, options={"base_url": base_url} if base_url else None)
    reporter = cli_reporter(quiet or json_out)
    escalation = None
    if escalate_to is not None:
        spec = load_spec(escalate_to).with_overrides(**overrides)
        preflight(spec)                   # no key, unreachable server: stop before any work
        ref = str(Path(escalate_to).expanduser().resolve()) if spec.source != f"builtin:{escalate_to}" else escalate_to
        escalation = Escalation(spec, ref, model, base_url,
                                max_escalation if max_escalation is not None
                                else (None if target_agreement is not None else 0.25), target_agreement)
    teacher_spec = None
    if teacher is not None:
        teacher_spec = load_spec(teacher).with_overrides(**overrides)
        if escalation is None or teacher_spec.hash != escalation.spec.hash:
            preflight(teacher_spec)
    d = open_db(db, must_exist=True)
    try:
        humans = None
        if teacher_spec is not None:
            from vlmdyn_cli.calibration.labels import human_verdicts
            from vlmdyn_cli.calibration.teacher import teacher_labels

            labels = teacher_labels(d, teacher_spec, n, run=run, seed=seed, reporter=reporter)
            humans = human_verdicts(d, agreement=agreement, min_raters=min_raters, sample=sample).verdict or None
            source = f"{teacher_spec.name}-labelled"
        else:
            labels = _verdicts(d, agreement, min_raters, sample).verdict
            source = "human-labelled"
        res = fit_judge(d, name, feats, labels, out_dir, folds=folds, seed=seed, l2=l2, escalation=escalation,
                        label_source=source, humans=humans, fit_to=fit_to, reporter=reporter)
    finally:
        d.close()
    if json_out:
        emit_json(res)
        return
    _print_fit(res)


def _print_fit(res: dict) -> None:
    h = res["held_out"]
    say(f"fitted {res['name']} on {res['n_items']} {res['labels']} items (to {res['fitted_to']}) -> {res['spec_path']}")
    say(f"held-out ({res['folds']}-fold, grouped by question): accuracy {_fmt(h['accuracy'])}, precision "
               f"{_fmt(h['precision'])}, recall {_fmt(h['recall'])}, F1 {_fmt(h['f1'], pct=False)}, kappa "
               f"{_fmt(h['kappa'], pct=False)}, AUC {_fmt(res['auc_held_out'], pct=False)}")
    if "held_out_vs_humans" in res:
        hh = res["held_out_vs_humans"]
        say(f"held-out agreement with the human verdicts: {_fmt(hh['accuracy'])} on {hh['n']} items")
    say(f"L2 penalty {res['l2']:g}" + (" (chosen by grouped cross-validation)" if res["l2_chosen_by_cv"] else ""))
    say("weights (standardised features): " + ", ".join(f"{k} {v:+.2f}" for k, v in res["weights"].items()))
    c = res.get("cascade")
    if not c:
        return

    def usd(v):
        return "unknown (no price)" if v is None else f"${v:.4f}"

    rows = [
        {"judge": "cascade", "agreement": _fmt(c["cascade"]["accuracy"]), "kappa": _fmt(c["cascade"]["kappa"], False),
         "escalated": _fmt(c["escalated_share"]), "unscored": c["cascade"]["n_unscored"],
         "$/1k items": usd(c["usd_per_1000"]["cascade"])},
        {"judge": "cheap alone", "agreement": _fmt(h["accuracy"]), "kappa": _fmt(h["kappa"], False),
         "escalated": "0.0%", "unscored": 0, "$/1k items": usd(0.0)},
        {"judge": "LLM alone", "agreement": _fmt(c["llm"]["accuracy"]), "kappa": _fmt(c["llm"]["kappa"], False),
         "escalated": "100.0%", "unscored": c["llm"]["n_unscored"], "$/1k items": usd(c["usd_per_1000"]["llm"])},
    ]
    print_table(rows, title=f"Held out ({res['folds']}-fold, grouped by question), vs {res['labels']} verdicts")
    if c.get("max_escalation") is not None:
        say(f"escalation: every run sends the LLM the {_fmt(c['max_escalation'])} of its items where the cheap "
            "judge is likeliest wrong and the LLM likeliest right (the cheap judge's min(P(yes), P(no)) less half "
            f"its estimate that the LLM disagrees with the label) -> {res['spec_path']}")
    else:
        say(f"band: the cheap judge decides where P(yes) <= {c['band'][0]:.3f} or >= {c['band'][1]:.3f} "
            f"({_fmt(c['band_escalated_in_sample'])} of these items escalated) -> {res['spec_path']}")
    if not c["target_reached"]:
        hint("no band reached --target-agreement on these items: the cascade uses the band that agrees most")
    say(f"run it: vlmdyn judge --run RUN --judge {res['spec_path']}")


def register(app: typer.Typer) -> None:
    app.add_typer(cal_app, name="calibrate")
