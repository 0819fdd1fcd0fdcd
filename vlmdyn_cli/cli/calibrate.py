"""CLI: `vlmdyn calibrate sample|sheet|import|labels|report|fit` — judges vs human labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vlmdyn_cli.cli.common import DbOpt, JsonOpt, QuietOpt, emit_json, hint, print_table

cal_app = typer.Typer(help="Calibrate judges against human labels (the paper's human study).",
                      no_args_is_help=True)

AgreementOpt = Annotated[float, typer.Option("--agreement", help="Share of raters saying yes that makes "
                                             "the human verdict yes (paper: 0.75).")]
MinRatersOpt = Annotated[int, typer.Option("--min-raters", help="Items with fewer raters are excluded "
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
    from vlmdyn_cli.calibration.sample import sample_items, write_sheet
    from vlmdyn_cli.store import open_db

    d = open_db(db)
    items = sample_items(d, n, run=run, input_path=input_path, name=name, seed=seed, stratify=stratify)
    sheet = out or Path(f"{name}.csv")
    write_sheet(d, name, sheet)
    cats: dict[str, int] = {}
    for it in items:
        cats[it.get("category") or "(none)"] = cats.get(it.get("category") or "(none)", 0) + 1
    if json_out:
        emit_json({"sample": name, "n": len(items), "sheet": str(sheet), "categories": cats})
    else:
        typer.echo(f"sample {name!r}: {len(items)} items -> {sheet}  categories: {cats}")
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
    from vlmdyn_cli.calibration.sample import write_sheet
    from vlmdyn_cli.store import open_db

    n = write_sheet(open_db(db, must_exist=True), sample, out)
    typer.echo(f"{n} items -> {out}")


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
            typer.echo(f"{r['file']}: {r['imported']} labels imported, {r['unchanged']} already stored, "
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
    typer.echo(f"{s['items']} items with a human verdict ({100 * s['share_yes']:.0f}% yes), "
               f"raters: {', '.join(s['raters'])}")
    typer.echo(f"items by number of raters: {s['items_by_rater_count']}; excluded (too few raters): "
               f"{s['excluded_too_few_raters']}")
    fk = s["fleiss_kappa"]
    typer.echo(f"Fleiss' kappa: {'undefined (one class only)' if fk is None else f'{fk:.3f}'}; "
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
    folds: Annotated[int, typer.Option("--folds", help="Folds for the threshold cross-validation.")] = 5,
    no_run: Annotated[bool, typer.Option("--no-run", help="Do not judge missing items first.")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Each judge against the human verdicts: accuracy, precision, recall, F1, kappa, CIs.

    Judges that have not judged the labelled items yet are run first (cached
    as usual). Unscored items are excluded and counted, never taken as "no".

    Example: vlmdyn calibrate report --judge rules --judge cascade --judge gpt-4o-mini
    """
    from vlmdyn_cli.calibration.report import human_summary, judge_report, rubric_comparison, save_report
    from vlmdyn_cli.judging.spec import load_spec
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store import open_db

    d = open_db(db, must_exist=True)
    hv = _verdicts(d, agreement, min_raters, sample)
    specs = [load_spec(j) for j in judge]  # all specs valid before any work
    reporter = cli_reporter(quiet or json_out)
    reports = []
    for spec in specs:
        if not no_run:
            from vlmdyn_cli.judging.run import judge_triples

            judge_triples(d, spec, sorted(hv.verdict), reporter=reporter)
        rep = judge_report(d, spec.name, spec.hash, hv, folds=folds)
        reports.append(rep)
        save_report(d, rep, agreement)
    out = {"humans": human_summary(hv), "judges": reports, "rubric_comparison": rubric_comparison(reports)}
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
        typer.echo(f"{r['judge']}: confusion tp={c['tp']} fp={c['fp']} fn={c['fn']} tn={c['tn']}"
                   + (f"; unscored {r['unscored_reasons']}" if r["n_unscored"] else ""))
        cats = ", ".join(f"{k} {_fmt(v['accuracy'])} (n={v['n']})" for k, v in r["per_category"].items())
        typer.echo(f"  per category: {cats}")
        if "threshold" in r:
            th = r["threshold"]
            # the sweep covers only the items that carry a p_yes (for a cascade: those its LLM stage
            # decided), so say how many, and when their human verdicts are all one class
            ho = th["held_out"]
            c = ho["confusion"]
            one = (" (one human class only)" if c["tp"] + c["fn"] in (0, ho["n"]) else "")
            typer.echo(f"  p_yes threshold {th['chosen']:.3f}; held-out ({th['folds']}-fold) accuracy "
                       f"{_fmt(ho['accuracy'])}, F1 {_fmt(ho['f1'], pct=False)} on the {ho['n']} items "
                       f"with a p_yes{one}")
    if out["rubric_comparison"]:
        print_table(out["rubric_comparison"], title="With vs without rubric (ours and the paper's)")


@cal_app.command("fit")
def fit_cmd(
    name: Annotated[str, typer.Option("--name", help="Name of the new judge spec.")],
    features: Annotated[str, typer.Option("--features", help="Comma-separated: rules, exact, contains, "
                                          "token-f1, len-ratio, ref-len, numbers, local-p_yes.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where the spec file is written.")] = Path("judges-local"),
    agreement: AgreementOpt = 0.75,
    min_raters: MinRatersOpt = 1,
    sample: SampleOpt = None,
    folds: Annotated[int, typer.Option("--folds")] = 5,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Fit a logistic-regression judge over cheap signals; save it as a judge spec.

    Quality is reported from k-fold cross-validation (held-out items only).
    Use it afterwards like any judge: vlmdyn judge --run RUN --judge judges-local/NAME.toml

    Example: vlmdyn calibrate fit --name cheap --features rules,token-f1,local-p_yes
    """
    from vlmdyn_cli.calibration.fit import fit_judge
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store import open_db

    d = open_db(db, must_exist=True)
    hv = _verdicts(d, agreement, min_raters, sample)
    feats = [f.strip() for f in features.split(",") if f.strip()]
    res = fit_judge(d, name, feats, hv, out_dir, folds=folds, seed=seed,
                    reporter=cli_reporter(quiet or json_out))
    if json_out:
        emit_json(res)
        return
    h = res["held_out"]
    typer.echo(f"fitted {name} on {res['n_items']} items -> {res['spec_path']}")
    typer.echo(f"held-out ({folds}-fold): accuracy {_fmt(h['accuracy'])}, precision {_fmt(h['precision'])}, "
               f"recall {_fmt(h['recall'])}, F1 {_fmt(h['f1'], pct=False)}, kappa {_fmt(h['kappa'], pct=False)}, "
               f"AUC {_fmt(res['auc_held_out'], pct=False)}")
    typer.echo("weights (standardised features): " + ", ".join(f"{k} {v:+.2f}" for k, v in res["weights"].items()))


def register(app: typer.Typer) -> None:
    app.add_typer(cal_app, name="calibrate")
