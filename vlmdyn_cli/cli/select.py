"""CLI: `vlmdyn select PLAN.toml` (Individual Select), `vlmdyn select report PLAN.toml`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vlmdyn_cli.cli.common import DbOpt, JsonOpt, QuietOpt, emit_json, hint


def select(
    plan: Annotated[str, typer.Argument(
        help="PLAN.toml, or 'report' followed by PLAN.toml.", show_default=False, metavar="PLAN.toml")],
    plan_after_report: Annotated[Optional[Path], typer.Argument(
        help="PLAN.toml after 'report'.", show_default=False, metavar="PLAN")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Train nothing: print the `vlmdyn train` command of every run the next round still "
                          "needs (independent: run them in parallel), then rerun select to collect them.")] = False,
    out_dir: Annotated[Optional[Path], typer.Option(
        "--out-dir", help="Where the runs' checkpoints go (default: runs/ next to the database).",
        show_default=False)] = None,
    figure: Annotated[Optional[Path], typer.Option(
        "--figure", help="report: also draw the per-round bars to this PNG.", show_default=False)] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Individual Select: which candidate datasets to add to a base mix (METHOD.md section 6).

    For each round (a category of candidates) trains the base and the base plus
    each candidate alone, per seed, evaluates every run on the benchmark (infer
    + judge), keeps the candidates whose benchmark average is at least the base's
    minus the plan's tolerance, merges them into the base and goes on; then
    trains the selected mix and the mix of all candidates. Every training is an
    ordinary run; rerunning after an interruption reuses what is finished.

    \b
    Examples:
      vlmdyn select examples/select/plan.toml --db exp.db
      vlmdyn select examples/select/plan.toml --db exp.db --dry-run
      vlmdyn select report examples/select/plan.toml --db exp.db --figure select.png
    """
    from vlmdyn_cli.errors import BadInput

    if plan == "report":
        if plan_after_report is None:
            raise BadInput("select report: give the plan, e.g. `vlmdyn select report plan.toml --db exp.db`")
        _report(plan_after_report, db, out_dir, figure, json_out)
        return
    if plan_after_report is not None:
        raise BadInput(f"select: unexpected second argument '{plan_after_report}' (did you mean "
                       f"`vlmdyn select report {plan_after_report}`?)")
    if figure is not None:
        raise BadInput("--figure belongs to `vlmdyn select report`")
    if dry_run:
        _dry_run(Path(plan), db, out_dir, json_out)
        return
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.select.loop import run_select
    from vlmdyn_cli.select.plan import load_plan
    from vlmdyn_cli.select.report import build_report, render_text

    p = load_plan(plan)
    database, out = _open(db, out_dir)
    w = run_select(database, p, out, cli_reporter(quiet or json_out))
    rep = build_report(database, w)
    if json_out:
        emit_json(rep)
        return
    print(render_text(rep))


def _open(db, out_dir):
    from vlmdyn_cli.select.loop import default_out_dir
    from vlmdyn_cli.store import open_db

    database = open_db(db, must_exist=True)
    return database, str(out_dir.resolve()) if out_dir else default_out_dir(database.conn.execute(
        "PRAGMA database_list").fetchone()[2])


def _report(plan: Path, db, out_dir, figure, json_out: bool) -> None:
    from vlmdyn_cli.select.loop import read_select
    from vlmdyn_cli.select.plan import load_plan
    from vlmdyn_cli.select.report import build_report, draw_figure, render_text

    if figure is not None:
        from vlmdyn_cli.atomic import check_output

        check_output(figure, "--figure")
    p = load_plan(plan)
    database, out = _open(db, out_dir)
    rep = build_report(database, read_select(database, p, out))
    if figure is not None:
        rep["figure"] = draw_figure(rep, figure)
    if json_out:
        emit_json(rep)
        return
    print(render_text(rep))
    if figure is not None:
        hint(f"figure: {figure}")


def _dry_run(plan: Path, db, out_dir, json_out: bool) -> None:
    from vlmdyn_cli.select.loop import read_select
    from vlmdyn_cli.select.plan import load_plan
    from vlmdyn_cli.select.report import train_commands

    p = load_plan(plan)
    database, out = _open(db, out_dir)
    w = read_select(database, p, out)
    cmds = train_commands(w, str(Path(db or "vlmdyn.db").resolve()), out)
    if json_out:
        emit_json({"plan": p.name, "complete": w.complete, "commands": cmds,
                   "pending": [s.as_dict() for s in w.pending]})
        return
    if w.complete:
        hint(f"plan {p.name} is complete: nothing to train. See `vlmdyn select report {plan}`")
        return
    for c in cmds:
        print(c)
    untrained = len(cmds)
    hint(f"{untrained} run(s) to train (independent of each other); "
         f"{len(w.pending) - untrained} trained run(s) still to evaluate. Afterwards: vlmdyn select {plan}"
         + (f" --db {db}" if db else ""))


def register(app: typer.Typer) -> None:
    app.command("select")(select)
