"""CLI: `vlmdyn demo` — the whole experiment on the embedded defaults, no network, no GPU."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlmdyn_cli.cli.common import JsonOpt, QuietOpt, emit_json
from vlmdyn_cli.demo.pipeline import DemoConfig

_D = DemoConfig()  # the embedded defaults (light: no torch import)


def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the data, database, runs, figures, report.")]
    = _D.out,
    seeds: Annotated[int, typer.Option("--seeds", help="Training seeds (runs).")] = _D.seeds,
    images: Annotated[int, typer.Option("--images", help="Images in the synthetic benchmark.")] = _D.images,
    judge: Annotated[str, typer.Option("--judge", help="Judge spec (name or path).")] = _D.judge,
    seen_size: Annotated[int, typer.Option("--seen-size", help="QA pairs per Seen@k set.")] = _D.seen_size,
    unseen_size: Annotated[int, typer.Option("--unseen-size", help="QA pairs per unseen set.")]
    = _D.unseen_size,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Generate the synthetic benchmark, train the tiny VLM per seed, evaluate every
    checkpoint on Seen@k and unseen sets, judge, plot, and check the paper's findings
    (the checks of `vlmdyn findings`).

    Rerunning continues where it stopped (every stage skips finished work).

    Example: vlmdyn demo --out vlmdyn-demo --seeds 3
    """
    from vlmdyn_cli.demo.pipeline import run_demo
    from vlmdyn_cli.progress import cli_reporter

    cfg = DemoConfig(out=out, seeds=seeds, images=images, judge=judge, seen_size=seen_size,
                     unseen_size=unseen_size)
    res = run_demo(cfg, cli_reporter(quiet))
    if json_out:
        emit_json(res.to_dict())
        return
    _print_summary(res)


def _print_summary(res) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    con = Console()
    con.print(Text(f"\nDatabase: {res.db_path}\nReport:   {res.report}\nFigures:  "
                   + ", ".join(res.figures.values())))
    steps = sorted({k for r in res.accuracy for k in r if k != "set"}, key=int)
    t = Table(title=f"Accuracy by evaluation set and checkpoint (judge: {res.judge}, mean over seeds)")
    t.add_column("set")
    for s in steps:
        t.add_column(f"step {s}", justify="right")
    for r in res.accuracy:
        t.add_row(r["set"], *["" if r.get(s) is None else f"{100 * r[s]:.1f}%" for s in steps])
    con.print(t)
    from vlmdyn_cli.cli.findings import print_findings

    print_findings(res.findings, rules=False)
    con.print(Text("The rule of every finding: README 'What the demo shows', or "
                   f"vlmdyn findings --db {res.db_path} --runs-like 'demo-s*' --judge {res.judge}"))
    con.print(Text("Stage times (s): " + ", ".join(f"{k} {v}" for k, v in res.timings.items())))
    con.print(Text(f"Browse the judgements: vlmdyn tui --db {res.db_path}"))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
