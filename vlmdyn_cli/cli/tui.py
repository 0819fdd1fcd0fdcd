"""CLI: `vlmdyn tui` opens the terminal UI over an experiment database."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from vlmdyn_cli.cli.common import DbOpt


def register(app: typer.Typer) -> None:
    @app.command("tui")
    def tui(
        db: DbOpt = None,
        rater: Annotated[Optional[str], typer.Option(
            "--rater", help="Start in rater mode as this rater (labels go to human_labels, source 'tui').")] = None,
        sample: Annotated[Optional[str], typer.Option(
            "--sample", help="Calibration sample to rate (see `vlmdyn calibrate sample`); implies rater mode.")] = None,
    ):
        """Browse runs, accuracy, judgements and plots; rate calibration items.

        Keys: ? help, q quit, r refresh, 1/2/3 tabs, / search, enter details,
        R rater mode.

        \b
        Examples:
          vlmdyn tui --db exp.db
          vlmdyn tui --db exp.db --rater alice --sample pilot100
        """
        from vlmdyn_cli.errors import BadInput, did_you_mean
        from vlmdyn_cli.store import open_db, resolve_db_path
        from vlmdyn_cli.store.labels import samples

        path = resolve_db_path(db)
        if not path.exists():
            raise BadInput(f"database {path} does not exist (pass --db, or create one with `vlmdyn data import`)")
        if rater is not None and not rater.strip():
            raise BadInput("--rater must not be empty")
        database = open_db(path, must_exist=True)  # migrate once (adds the TUI indexes) before any reader starts
        try:
            names = [s["sample"] for s in samples(database)]
        finally:
            database.close()
        if sample is not None and sample not in names:
            known = ", ".join(names) or "none yet: draw one with `vlmdyn calibrate sample`"
            raise BadInput(f"--sample {sample!r} is not in {path}{did_you_mean(sample, names)} (samples: {known})")

        from vlmdyn_cli.tui.app import create_app

        create_app(path, rater=rater.strip() if rater else None, sample=sample).run()
