"""CLI: `vlmdyn data ...` — import, categorize, stats, synth (one module per command)."""

from __future__ import annotations

import typer

data_app = typer.Typer(help="Import, label and summarise LLaVA-format data; make the synthetic benchmark.",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    from vlmdyn_cli.cli import data_categorize, data_import, data_synth

    for mod in (data_import, data_categorize, data_synth):
        mod.add_commands(data_app)
    app.add_typer(data_app, name="data")
