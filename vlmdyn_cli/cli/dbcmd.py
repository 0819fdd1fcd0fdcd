"""CLI: `vlmdyn db schema|migrate|check|export|merge`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlmdyn_cli.cli.common import DbOpt, JsonOpt, QuietOpt, emit_json, hint, say

db_app = typer.Typer(help="The experiment database: schema, migrations, integrity check, export to a node "
                     "and merge back.", no_args_is_help=True)


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
        say(f"wrote {out}: " + ", ".join(f"{n} {t}" for t, n in res["rows"].items()))


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
        say(f"{r.source}:")
        for kind in ("added", "replaced", "unchanged", "conflicts"):
            counts = getattr(r, kind)
            if any(counts.values()):
                say(f"  {kind}: " + ", ".join(f"{n} {t}" for t, n in counts.items() if n))
        for line in r.examples + r.notes:
            hint(f"  {line}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
