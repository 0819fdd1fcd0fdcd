"""CLI: `vlmdyn db schema|migrate|export|merge`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlmdyn_cli.cli.common import DbOpt, JsonOpt, QuietOpt, emit_json, hint

db_app = typer.Typer(help="The experiment database: schema, migrations, export to a node and merge back.",
                     no_args_is_help=True)


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
    from vlmdyn_cli.store.db import open_db
    from vlmdyn_cli.store.migrations import migrations

    d = open_db(db)
    applied = [m.name for m in migrations.applied(d)]
    if json_out:
        emit_json({"applied": applied})
    else:
        typer.echo("\n".join(applied))


@db_app.command("export")
def export_cmd(
    runs: Annotated[list[str], typer.Option("--run", help="Run to export (repeat for several).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The node database to write.")],
    generations: Annotated[bool, typer.Option(
        "--generations", help="Also copy the runs' stored generations (a node then skips them).")] = False,
    judgements: Annotated[bool, typer.Option(
        "--judgements", help="Also copy the judgements of those generations (implies --generations).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Write a node's own database: what inference and judging of the runs need.

    Runs with their manifests, checkpoints and metrics, their evaluation sets, the sets' QA
    pairs with their conversations, images (metadata) and datasets, every generation config
    and judge spec, and the measured inference speed; generations and judgements only when
    asked. A complete database of the same schema; bring its results back with `vlmdyn db
    merge`. Checkpoint folders and images are not copied: the node must see them at the same
    paths (a shared filesystem).

    Example: vlmdyn db export --run llava7b-s0 --out node3.db --db exp.db
    """
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store.db import resolve_db_path
    from vlmdyn_cli.store.export import export

    res = export(resolve_db_path(db), out, runs, generations=generations, judgements=judgements, force=force,
                 reporter=cli_reporter(quiet))
    if json_out:
        emit_json(res)
    else:
        typer.echo(f"wrote {out}: " + ", ".join(f"{n} {t}" for t, n in res["rows"].items()))


@db_app.command("merge")
def merge_cmd(
    files: Annotated[list[Path], typer.Argument(help="Node databases (from `vlmdyn db export`).",
                                                show_default=False)],
    into: Annotated[Path, typer.Option("--into", help="The experiment database to merge into.")],
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Bring node databases' generations and judgements back into the experiment database.

    Rows are matched by content (run name, QA pair, triple hash, judge spec hash), so merging
    the same file twice adds nothing. Every run and set of each file must be the target's
    (same manifest and set definitions, by hash); anything else is refused, naming what
    differs. One transaction for all files: a kill leaves the target as before or fully
    merged. Rows the target already has are kept (a different answer or verdict is counted
    as a conflict); a scored judgement replaces an unscored one.

    Example: vlmdyn db merge node*.db --into exp.db
    """
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store.merge import merge

    reports = merge(into, files, reporter=cli_reporter(quiet))
    if json_out:
        emit_json([r.as_dict() for r in reports])
        return
    for r in reports:
        typer.echo(f"{r.source}:")
        for kind in ("added", "replaced", "unchanged", "conflicts"):
            counts = getattr(r, kind)
            if any(counts.values()):
                typer.echo(f"  {kind}: " + ", ".join(f"{n} {t}" for t, n in counts.items() if n))
        for line in r.examples + r.notes:
            hint(f"  {line}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
