"""CLI: part of `vlmdyn data` (placeholder)."""

from __future__ import annotations

import typer


def add_commands(data_app: typer.Typer) -> None:
    pass
