"""`vlmdyn db export`: a node's own database with what it needs to run inference and judging for some runs.

The copy is a complete experiment database of the same schema (made by the
same migrations) holding the runs with their manifests, checkpoints and
metrics, their evaluation sets, the QA pairs of those sets, the conversations
the manifests and the pairs belong to, the images these point at, their
datasets, every generation config and judge spec, and the measured inference
speed; the runs' generations (with their triples) and the judgements of those
triples only when asked. Row ids are kept, so a node's rows read like the
original's; `vlmdyn db merge` matches them by content anyway.

Not copied: QA pairs outside the sets (a node never needs the other 3M of
LLaVA), sharding records and Batch API jobs (both belong to the database they
were made in), calibration tables, the plots cache, and the records of judged
input files (`judge --input` is not part of a run: a node needs none of them;
`db merge` brings back the ones a node made).

The file is written under a temporary name next to ``out`` and renamed when
complete, so a killed export leaves no half database behind.
"""

from __future__ import annotations

import os
from pathlib import Path

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.store.db import immediate, open_db, stored_columns
from vlmdyn_cli.store.runs import get_run


def _selection(generations: bool) -> list[str]:
    """Statements filling the temp id tables x_sets, x_qa, x_conv from x_runs (the runs asked for)."""
    sql = ["INSERT INTO temp.x_sets SELECT id FROM src.eval_sets WHERE run_id IN (SELECT id FROM temp.x_runs)",
           "INSERT OR IGNORE INTO temp.x_qa SELECT qa_id FROM src.eval_set_members "
           "WHERE set_id IN (SELECT id FROM temp.x_sets)"]
    if generations:   # answers to pairs no set holds any more (a set rebuilt with --force)
        sql.append("INSERT OR IGNORE INTO temp.x_qa SELECT qa_id FROM src.generations "
                   "WHERE run_id IN (SELECT id FROM temp.x_runs)")
    return sql + ["INSERT OR IGNORE INTO temp.x_conv SELECT conversation_id FROM src.run_order "
                  "WHERE run_id IN (SELECT id FROM temp.x_runs)",
                  "INSERT OR IGNORE INTO temp.x_conv SELECT conversation_id FROM src.qa_pairs "
                  "WHERE id IN (SELECT id FROM temp.x_qa)"]


# (table, WHERE clause over the attached source database ``src``), copied in this order
_RUNS = "run_id IN (SELECT id FROM temp.x_runs)"
_TABLES = [
    ("datasets", "id IN (SELECT dataset_id FROM src.runs WHERE id IN (SELECT id FROM temp.x_runs))"),
    ("images", "id IN (SELECT image_id FROM src.conversations WHERE id IN (SELECT id FROM temp.x_conv)) "
               "OR id IN (SELECT image_id FROM src.qa_pairs WHERE id IN (SELECT id FROM temp.x_qa))"),
    ("conversations", "id IN (SELECT id FROM temp.x_conv)"),
    ("qa_pairs", "id IN (SELECT id FROM temp.x_qa)"),
    ("runs", "id IN (SELECT id FROM temp.x_runs)"),
    ("run_order", _RUNS),
    ("checkpoints", _RUNS),
    ("metrics", _RUNS),
    ("eval_sets", _RUNS),
    ("eval_set_members", "set_id IN (SELECT id FROM temp.x_sets)"),
    ("gen_configs", "1"),
    ("judge_specs", "1"),
    ("infer_timings", _RUNS),
]
_GENERATIONS = [
    ("triples", "hash IN (SELECT triple_hash FROM src.generations WHERE run_id IN (SELECT id FROM temp.x_runs))"),
    ("generations", _RUNS),
]
_JUDGEMENTS = [
    ("judgements", "triple_hash IN (SELECT hash FROM main.triples)"),
]


def export(source: str | os.PathLike, out: str | os.PathLike, run_names: list[str], *, generations: bool = False,
           judgements: bool = False, force: bool = False, reporter: Reporter | None = None) -> dict:
    """Write ``out``; returns {"out", "runs", "rows": {table: n}}. ``judgements`` implies ``generations``."""
    reporter = reporter or NullReporter()
    source, out = Path(source), Path(out)
    generations = generations or judgements
    if not run_names:
        raise BadInput("give at least one --run to export")
    if out.is_dir():
        raise BadInput(f"--out {out} is a directory; name the database file to write")
    if out.exists() and not force:
        raise BadInput(f"{out} exists; choose another --out or pass --force to replace it")
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise BadInput(f"--out {out} is the database being exported")
    src = open_db(source, must_exist=True)
    try:
        run_ids = [get_run(src, n).id for n in dict.fromkeys(run_names)]
    finally:
        src.close()
    tmp = out.with_name(out.name + ".part")
    _remove(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    tables = _TABLES + (_GENERATIONS if generations else []) + (_JUDGEMENTS if judgements else [])
    rows: dict[str, int] = {}
    conn = None
    try:
        conn = open_db(tmp).conn
        conn.execute("ATTACH DATABASE ? AS src", [str(source)])
        for name in ("x_runs", "x_sets", "x_qa", "x_conv"):
            conn.execute(f"CREATE TEMP TABLE {name} (id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO temp.x_runs VALUES (?)", [(i,) for i in run_ids])
        with reporter.task(f"export to {out.name}", total=len(tables), unit="tables") as task:
            with immediate(conn):
                for sql in _selection(generations):
                    conn.execute(sql)
                for table, where in tables:
                    cols = stored_columns(conn, table)
                    cur = conn.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM src.{table} "
                                       f"WHERE {where}")
                    rows[table] = cur.rowcount
                    task.advance(1, table=table)
        conn.execute("DETACH DATABASE src")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        conn = None
        # the replaced database's WAL, shm or rollback journal must go first: SQLite would read a
        # stale one (a node killed mid-write leaves its WAL) into the new file
        _remove(out, journals_only=True)
        os.replace(tmp, out)
    finally:
        if conn is not None:
            conn.close()
        _remove(tmp)
    return {"out": str(out), "runs": list(dict.fromkeys(run_names)), "rows": rows}


def _remove(path: Path, journals_only: bool = False) -> None:
    """Delete a database file with its WAL, shm and rollback journal (only those with ``journals_only``)."""
    for p in ([] if journals_only else [path]) + [Path(f"{path}-{s}") for s in ("wal", "shm", "journal")]:
        p.unlink(missing_ok=True)
