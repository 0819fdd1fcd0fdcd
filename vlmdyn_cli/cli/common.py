"""Options and output helpers shared by every command (thin CLI, DESIGN.md 5).

Machine output goes to stdout (``emit_json``); progress, hints and errors go
to stderr. Nothing here imports torch, transformers, llama_cpp, textual or
matplotlib: command modules import the library inside the command body.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from vlmdyn_cli.safetext import clean

DbOpt = Annotated[
    Optional[Path],
    typer.Option("--db", envvar="VLMDYN_DB", help="Experiment database (default ./vlmdyn.db).",
                 show_default=False),
]
# seeds are stored as SQLite integers and fed to numpy's generators: 0 .. 2^63 - 1
SEED_MAX = 2**63 - 1


def seed_option(flag: str, help: str):
    """A seed flag: an integer from 0 to 2^63 - 1 (a bad one is a usage error naming the flag, exit 2)."""

    def check(value):
        if value is not None and value > SEED_MAX:
            raise typer.BadParameter(f"{value} is larger than {SEED_MAX} (2^63 - 1)")
        return value

    return typer.Option(flag, min=0, callback=check, help=help)


JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
RunOpt = Annotated[str, typer.Option("--run", help="Run name (see `vlmdyn runs list`).")]
ShardOpt = Annotated[Optional[str], typer.Option(
    "--shard", help="i/N: do only shard i (0..N-1) of an N-way split of the work, e.g. 3/8; the same N "
                    "for every process of one plan.")]
ReshardOpt = Annotated[bool, typer.Option(
    "--reshard", help="Split a plan N ways although it was started with another N (only once no shard of "
                      "the old split is running).")]


def emit_json(obj) -> None:
    """Write one JSON document to stdout."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def emit_jsonl(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def hint(message: str) -> None:
    """A human hint on stderr (control characters made visible)."""
    sys.stderr.write(clean(message) + "\n")


def say(message: str = "", nl: bool = True) -> None:
    """A line of human output on stdout, control characters made visible (model or user text
    cannot retitle, clear or colour the terminal; ``--json`` output is exact instead)."""
    typer.echo(clean(message), nl=nl)


def print_table(rows: list[dict], columns: list[str] | None = None, title: str | None = None) -> None:
    """A Rich table on stdout for humans (model text shown literally)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=200)     # piped or captured: as wide as the table needs (not 80, folded)
    if not rows:
        console.print("(no rows)", markup=False)
        return
    columns = columns or list(rows[0].keys())
    table = Table(title=title)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*[_cell(r.get(c)) for c in columns])
    console.print(table)


def _cell(v) -> "object":
    from rich.text import Text

    if v is None:
        return Text("")
    if isinstance(v, float):
        return Text(f"{v:.4g}")
    return Text(clean(v))  # Text: never interpreted as markup; controls made visible
