"""CLI: `vlmdyn plot FIGURE` and `vlmdyn report` (thin over vlmdyn_cli.plots)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vlmdyn_cli.cli.common import DbOpt, JsonOpt, QuietOpt, emit_json, hint, say

FIGURE_NAMES = ("frontiers", "categories", "seen-sets", "subcategories", "dedup", "loss", "all")

RunsOpt = Annotated[Optional[list[str]], typer.Option("--run", help="Run name; repeat for several seeds.")]
LikeOpt = Annotated[Optional[str], typer.Option("--runs-like", help="Glob over run names, e.g. 'tiny-s*'.")]
JudgeOpt = Annotated[Optional[str], typer.Option("--judge", help="Judge spec name or hash prefix "
                                                                  "(default: the only judge of these runs).")]


def plot_cmd(
    figure: Annotated[str, typer.Argument(help="frontiers, categories, seen-sets, subcategories, dedup, loss or all.")],
    run: RunsOpt = None,
    runs_like: LikeOpt = None,
    judge: JudgeOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Directory for the image files.")] = Path("figures"),
    fmt: Annotated[str, typer.Option("--format", help="png, pdf or svg.")] = "png",
    terminal: Annotated[bool, typer.Option("--terminal", help="Draw in the terminal (plotext) instead.")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Draw a figure: mean over seeds with a 1-sigma band, unscored items excluded and counted.

    Example: vlmdyn plot frontiers --runs-like 'tiny-s*' --judge rules --out figures/
    """
    from vlmdyn_cli.errors import BadInput, did_you_mean
    from vlmdyn_cli.plots import aggregate as A
    from vlmdyn_cli.plots import figures as F
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store import open_db

    if figure not in FIGURE_NAMES:
        raise BadInput(f"unknown figure '{figure}'{did_you_mean(figure, FIGURE_NAMES)}; "
                       f"valid: {', '.join(FIGURE_NAMES)}")
    if fmt not in ("png", "pdf", "svg"):
        raise BadInput(f"--format {fmt}: use png, pdf or svg")
    if run and runs_like:
        raise BadInput("use either --run or --runs-like, not both")
    if not (json_out or terminal):
        from vlmdyn_cli.atomic import check_folder, check_output

        check_folder(out, "--out")
        for name in (F.FIGURES if figure == "all" else (figure,)):
            check_output(out / f"{name}.{fmt}", "--out")
    d = open_db(db, must_exist=True)
    names = F.FIGURES if figure == "all" else (figure,)
    runs = A.select_runs(d, run, runs_like)
    if names == ("loss",):
        sel = A.Selection(runs, A.JudgeRef("", "(none)"))
    else:
        sel = A.Selection(runs, A.select_judge(d, [r.id for r in runs], judge))
        A.ensure_cells(d, sel, cli_reporter(quiet or json_out))
    specs = []
    for name in names:
        try:
            specs.append(F.build(d, name, sel))
        except BadInput as exc:
            if figure != "all":
                raise
            hint(f"{name}: skipped: {exc}")
    if json_out:
        emit_json(specs[0] if figure != "all" else {"figures": specs})
        return
    if terminal:
        import shutil

        from vlmdyn_cli.plots.terminal import render_text
        from vlmdyn_cli.safetext import clean_all
        import sys

        cols = shutil.get_terminal_size((110, 30)).columns
        for spec in specs:
            typer.echo(render_text(clean_all(spec), width=max(60, cols - 2), height=22, color=sys.stdout.isatty()))
        return
    from vlmdyn_cli.plots.render import draw

    with cli_reporter(quiet).task("drawing figures", total=len(specs), unit="figures") as task:
        for spec in specs:
            path = draw(spec, out / f"{spec['figure']}.{fmt}", fmt=fmt)
            say(str(path))
            for note in spec.get("notes", []):
                hint(f"{spec['figure']}: {note}")
            task.advance(1)


def report_cmd(
    out: Annotated[Path, typer.Option("--out", help="report.html (figures embedded) or report.md "
                                                    "(figures beside it).")] = Path("report.html"),
    run: RunsOpt = None,
    runs_like: LikeOpt = None,
    judge: JudgeOpt = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Write one document: Table-1 shares, the judge and its calibration, accuracy tables, all figures, configs.

    Example: vlmdyn report --out report.html --runs-like 'tiny-s*' --judge rules
    """
    from vlmdyn_cli.errors import BadInput
    from vlmdyn_cli.plots import aggregate as A
    from vlmdyn_cli.plots.report import check_report_out, write_report
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store import open_db

    if run and runs_like:
        raise BadInput("use either --run or --runs-like, not both")
    check_report_out(out)
    d = open_db(db, must_exist=True)
    sel = A.selection(d, run, runs_like, judge)
    summary = write_report(d, sel, out, cli_reporter(quiet or json_out))
    if json_out:
        emit_json(summary)
        return
    say(summary["path"])
    for name, why in summary["missing"].items():
        hint(f"{name}: not drawn: {why}")


def register(app: typer.Typer) -> None:
    app.command("plot")(plot_cmd)
    app.command("report")(report_cmd)
