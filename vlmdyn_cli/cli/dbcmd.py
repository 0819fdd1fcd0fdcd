"""CLI: `vlmdyn db schema|migrate|check`."""

from __future__ import annotations

import typer

from vlmdyn_cli.cli.common import DbOpt, JsonOpt, QuietOpt, emit_json, say

db_app = typer.Typer(help="The experiment database: schema, migrations and integrity check.", no_args_is_help=True)


@db_app.command("schema")
def schema(db: DbOpt = None,
           markdown: bool = typer.Option(False, "--markdown",
                                         help="Markdown tables with the column comments (the README section).")):
    """Print the database schema (of --db if it exists, else the one the migrations make).

    Example: vlmdyn db schema --db exp.db
    """
    from vlmdyn_cli.store.db import open_db, schema_sql

    if markdown:
        from vlmdyn_cli.store.schema_doc import render_markdown

        say(render_markdown(_schema_db(db)), nl=False)
        return
    say(schema_sql(_schema_db(db)))


def _schema_db(db):
    """The database to describe, read only; without one, a blank in-memory database (nothing written)."""
    from sqlite_utils import Database

    from vlmdyn_cli.store.db import migrate, open_db, resolve_db_path

    if resolve_db_path(db).exists():
        return open_db(db, readonly=True)
    blank = Database(memory=True)
    migrate(blank)
    return blank


@db_app.command("migrate")
def migrate_cmd(db: DbOpt = None, json_out: JsonOpt = False,
                adopt: bool = typer.Option(False, "--adopt", help="Add the vlmdyn tables to a SQLite file that "
                                                                   "has other tables (refused without it).")):
    """Create or upgrade the database; lists the migrations applied.

    A database made by a newer vlmdyn is refused untouched, and so is a SQLite
    file with someone else's tables unless --adopt says to add ours to it.

    Example: vlmdyn db migrate --db exp.db
    """
    from vlmdyn_cli.store.db import open_db
    from vlmdyn_cli.store.migrations import migrations

    d = open_db(db, adopt=adopt)
    applied = [m.name for m in migrations.applied(d)]
    if json_out:
        emit_json({"applied": applied})
    else:
        say("\n".join(applied))


@db_app.command("check")
def check_cmd(db: DbOpt = None, json_out: JsonOpt = False, quiet: QuietOpt = False,
              full: bool = typer.Option(False, "--full", help="PRAGMA integrity_check (also compares every "
                                                              "index with its table; slower) instead of quick_check.")):
    """Check the database file for damage, table by table, without writing to it.

    Exit 0 when intact, 1 listing the problems found (at most 20). Commands that write
    check a database of up to 64 MB themselves when they open it; run this on larger ones
    (about 20 MB/s on a busy 2-core machine).

    Example: vlmdyn db check --db exp.db
    """
    from vlmdyn_cli.errors import BadInput, Failure
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store.db import resolve_db_path
    from vlmdyn_cli.store.integrity import check

    p = resolve_db_path(db)
    if not p.is_file():
        raise BadInput(f"database {p} does not exist")
    res = check(p, full=full, reporter=cli_reporter(quiet))
    if json_out:
        emit_json(res)
    elif res["ok"]:
        say(f"{p}: ok ({res['mode']} of {res['tables']} tables)")
    if not res["ok"]:
        raise Failure(f"{p} is damaged ({res['mode']}): " + "; ".join(res["problems"]))


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
