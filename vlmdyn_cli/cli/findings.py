"""CLI: `vlmdyn findings` — the paper's findings checked on an experiment database
(thin over vlmdyn_cli.findings)."""

from __future__ import annotations

from typing import Annotated

import typer

from vlmdyn_cli.cli.common import DbOpt, JsonOpt, QuietOpt, emit_json
from vlmdyn_cli.cli.plot import JudgeOpt, LikeOpt, RunsOpt


def findings_cmd(
    run: RunsOpt = None,
    runs_like: LikeOpt = None,
    judge: JudgeOpt = None,
    rules: Annotated[bool, typer.Option("--rules/--no-rules", help="Print each finding's rule under the "
                                                                  "table.")] = True,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Check the 8 findings of the paper (METHOD.md section 5) on runs of one dataset, one run per seed.

    Each finding gets its rule, one number per seed, the mean +- sd over seeds and a verdict:
    observed, not observed, or cannot be shown (with what is missing). Exit 2 when nothing can be
    computed (no runs, no judgements by this judge, no evaluation sets).

    Example: vlmdyn findings --runs-like 'tiny-s*' --judge rules
    """
    from vlmdyn_cli.errors import BadInput
    from vlmdyn_cli.findings import check_findings
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store import open_db

    if run and runs_like:
        raise BadInput("use either --run or --runs-like, not both")
    d = open_db(db, must_exist=True)
    report = check_findings(d, runs=run, like=runs_like, judge=judge, reporter=cli_reporter(quiet or json_out))
    if json_out:
        emit_json(report.to_dict())
        return
    print_findings(report, rules=rules)


def print_findings(report, rules: bool = True) -> None:
    """The findings table on stdout (the demo prints it too): verdict, per-seed numbers and mean +- sd
    per finding, then the numbers behind each verdict, the rules, unscored counts and notes."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text as RichText

    from vlmdyn_cli.safetext import clean

    def Text(value) -> RichText:   # run, set and judge names come from the database: controls made visible
        return RichText(clean(value))

    con = Console()
    t = Table(title=clean(f"Findings of the paper (METHOD.md section 5), judge {report.judge}"))
    t.add_column("#")
    t.add_column("finding", overflow="fold", ratio=3)
    t.add_column("verdict")
    t.add_column(clean("per seed (" + ", ".join(report.runs) + ")"), overflow="fold", ratio=1)
    t.add_column("mean ± sd")
    for f in report.findings:
        seeds = " ".join("n/a" if v is None else f"{v:g}" for v in f.per_seed.values())
        spread = "" if f.mean is None else f"{f.mean:g}" + ("" if f.sd is None else f" ± {f.sd:g}")
        t.add_row(f.id, Text(f.title), f.verdict, seeds, spread)
    con.print(t)
    con.print(Text("Numbers behind each verdict:"))
    for f in report.findings:
        con.print(Text(f"  {f.id}. {f.why}"))
    if rules:
        con.print(Text("Rules (and what the per-seed number is):"))
        for f in report.findings:
            con.print(Text(f"  {f.id}. {f.rule} [per seed: {f.measure}]"))
    excluded = [u for u in report.unscored if u["unscored"]]
    if excluded:
        con.print(Text("Unscored items (excluded from every accuracy): " + ", ".join(
            f"{u['set']} {u['unscored']}/{u['generated']}" for u in excluded)))
    for note in report.notes:
        con.print(Text(f"Note: {note}"))


def register(app: typer.Typer) -> None:
    app.command("findings")(findings_cmd)
