"""The `vlmdyn` Typer app: command groups registered from one module each.

Each ``vlmdyn_cli.cli.<group>`` module exposes ``register(app)`` and imports
its heavy dependencies inside the command bodies, so ``vlmdyn --help`` stays
fast and imports none of torch, transformers, llama_cpp, textual, matplotlib.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from vlmdyn_cli import __version__

app = typer.Typer(
    name="vlmdyn",
    help="Learning dynamics of multitask VLM training data: import, train, evaluate, judge, plot.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool):
    if value:
        typer.echo(f"vlmdyn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Show the version and exit.")] = None,
):
    """vlmdyn: when does a VLM learn each skill? Start with `vlmdyn demo`."""


GROUPS = ("data", "train", "sets", "infer", "judge", "calibrate", "plot", "findings", "select", "tui", "demo",
          "dbcmd")


def _register_all() -> None:
    import importlib

    for name in GROUPS:
        mod = importlib.import_module(f"vlmdyn_cli.cli.{name}")
        mod.register(app)


_register_all()


def main(argv: list[str] | None = None) -> int:
    """Console entry point: maps errors to exit codes (0 ok, 1 failure, 2 bad input, 130 interrupted)."""
    import click
    import sqlite3

    from vlmdyn_cli.errors import VlmdynError
    from vlmdyn_cli.safetext import clean

    debug = os.environ.get("VLMDYN_DEBUG") == "1"
    interrupted = "interrupted: rerun the same command to continue where it stopped\n"
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="vlmdyn")
        if rv == 130:          # typer turns a KeyboardInterrupt (Ctrl-C) into Exit(130), silently
            sys.stderr.write(interrupted)
        return rv if isinstance(rv, int) else 0
    except typer.Abort:
        sys.stderr.write("interrupted\n")
        return 130
    except KeyboardInterrupt:
        sys.stderr.write(interrupted)
        return 130
    except VlmdynError as exc:
        if debug:
            raise
        sys.stderr.write(f"error: {clean(exc)}\n")
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place that turns crashes into exit 1
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            import io

            shown = io.StringIO()
            exc.show(file=shown)  # a click/typer usage error: exit 2 (it may quote the bad value)
            sys.stderr.write(clean(shown.getvalue()))
            return exc.exit_code
        if debug:
            raise
        if isinstance(exc, sqlite3.DatabaseError) and (msg := _database_message(str(exc))):
            sys.stderr.write(f"error: {msg}\n")
            return 1
        sys.stderr.write(f"error: {type(exc).__name__}: {clean(exc)}\n(set VLMDYN_DEBUG=1 for the traceback)\n")
        return 1


def _database_message(error: str) -> str | None:
    """A plain message for the SQLite errors a user can act on."""
    if "locked" in error:
        return ("the database stayed locked by another writer for longer than the 30 s busy timeout "
                "(a long import?); rerun when it has finished: the work already stored is kept")
    if any(w in error for w in ("malformed", "not a database", "corrupt")):
        return f"the database is damaged ({error}); `vlmdyn db check` lists the problems"
    return None


def run() -> None:
    sys.exit(main())
