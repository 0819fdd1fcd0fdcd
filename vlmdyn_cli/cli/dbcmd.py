"""CLI: `vlmdyn db schema|migrate`."""

from __future__ import annotations

import typer

from vlmdyn_cli.cli.common import DbOpt, JsonOpt, emit_json

db_app = typer.Typer(help="The experiment database: schema and migrations.", no_args_is_help=True)


@db_app.command("schema")
def schema(db: DbOpt = None,
           markdown: bool = typer.Option(False, "--markdown",
                                         help="Markdown tables with the column comments (the README section).")):
    """Print the database schema (generated from the migrations).

    Example: vlmdyn db schema --db exp.db
    """
    from vlmdyn_cli.store.db import open_db, schema_sql

    if markdown:
        from vlmdyn_cli.store.schema_doc import render_markdown

        typer.echo(render_markdown(open_db(db)), nl=False)
        return
    typer.echo(schema_sql(open_db(db)))


@db_app.command("migrate")
def migrate_cmd(db: DbOpt = None, json_out: JsonOpt = False):
    """Create or upgrade the database; lists the migrations applied.

    Example: vlmdyn db migrate --db exp.db
    """
    from vlmdyn_cli.store.db import migrate, open_db
    from vlmdyn_cli.store.migrations import migrations

    d = open_db(db)
    applied = [m.name for m in migrations.applied(d)]
    if json_out:
        emit_json({"applied": applied})
    else:
        typer.echo("\n".join(applied))


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
