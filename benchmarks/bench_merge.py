"""Benchmark: `vlmdyn db merge` of one paper-scale seed against a raw copy of the same rows.

The node is a synthetic paper-scale experiment (``testing.synthdb.fill_synthetic``, one seed:
6 checkpoints x 7 sets x 5,000 = 210,000 generations, their triples and one judgement each),
built once and kept in benchmarks/out/merge/. The target is `vlmdyn db export` of its run
without generations (runs, manifest, sets, items: what a head database holds before the nodes
report back). Side by side, each on a fresh copy of that target:

  raw     ATTACH the node; INSERT ... SELECT its triples, generations and judgements as they are
          (ids kept, no check at all): the least any merge must do
  merge   vlmdyn db merge node.db --into target.db (content checks of runs and sets, QA pairs
          mapped by content, every triple and generation hash verified, conflicts looked up)
  again   the same merge a second time (adds nothing)

The merged rows must equal the node's, by content (exit 1 otherwise). Target (a ratio, exit 1
when missed): merge <= 1.5 x raw. Also reports the export. Writes benchmarks/out/bench_merge.json.

    .venv/bin/python benchmarks/bench_merge.py
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checks import Must, Ratio, finish  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
TARGET_RATIO = 1.5


def node_db(root: Path) -> Path:
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store import open_db
    from vlmdyn_cli.store.db import up_to_date

    path = root / "node.db"
    if up_to_date(path):
        return path
    from vlmdyn_cli.testing.synthdb import fill_synthetic

    root.mkdir(parents=True, exist_ok=True)
    tmp = root / "node.db.part"
    tmp.unlink(missing_ok=True)
    db = open_db(tmp)
    fill_synthetic(db, seeds=1, dedup_size=0, reporter=cli_reporter())
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    tmp.replace(path)
    return path


def rows(path: Path) -> list[tuple]:
    from vlmdyn_cli.store.identity import generations_by_content

    with closing(sqlite3.connect(path)) as con:
        return generations_by_content(con)


def raw_copy(node: Path, target: Path) -> None:
    from vlmdyn_cli.store.db import connect, immediate, stored_columns

    conn = connect(target)
    conn.execute("ATTACH DATABASE ? AS src", [str(node)])
    with immediate(conn):
        for table in ("gen_configs", "judge_specs", "triples", "generations", "judgements"):
            cols = stored_columns(conn, table)
            verb = "INSERT OR IGNORE" if table in ("gen_configs", "judge_specs") else "INSERT"
            conn.execute(f"{verb} INTO main.{table} ({cols}) SELECT {cols} FROM src.{table}")
    conn.execute("DETACH DATABASE src")
    conn.close()


def main() -> int:
    from vlmdyn_cli.store.export import export
    from vlmdyn_cli.store.merge import merge

    root = OUT / "merge"
    node = node_db(root)
    run = sqlite3.connect(node).execute("SELECT name FROM runs").fetchone()[0]
    result: dict = {}
    base = root / "target.db"
    base.unlink(missing_ok=True)
    t0 = time.monotonic()
    export(node, base, [run])
    result["export_s"] = round(time.monotonic() - t0, 2)
    copies = {m: root / f"target-{m}.db" for m in ("raw", "merge")}
    for p in copies.values():
        shutil.copy(base, p)
    t0 = time.monotonic()
    raw_copy(node, copies["raw"])
    result["raw_s"] = round(time.monotonic() - t0, 2)
    t0 = time.monotonic()
    report = merge(copies["merge"], [node])[0]
    result["merge_s"] = round(time.monotonic() - t0, 2)
    t0 = time.monotonic()
    again = merge(copies["merge"], [node])[0]
    result["again_s"] = round(time.monotonic() - t0, 2)
    result["added"] = report.added
    result["added_again"] = sum(again.added.values())
    want = rows(node)
    result["generations"] = len(want)
    result["same_rows"] = rows(copies["merge"]) == want == rows(copies["raw"])
    result["ratio"] = round(result["merge_s"] / result["raw_s"], 2)
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_merge.json").write_text(json.dumps(result, indent=2))
    print(f"{len(want)} generations; export {result['export_s']} s; raw copy {result['raw_s']} s; merge "
          f"{result['merge_s']} s ({result['ratio']}x raw, target <= {TARGET_RATIO}); merge again "
          f"{result['again_s']} s, added {result['added_again']}; added {report.added}")
    return finish("bench_merge", [
        Must("db merge: the merged rows equal the node's, and merging again adds nothing",
             result["same_rows"] and not result["added_again"],
             f"same rows {result['same_rows']}, {result['added_again']} added again", "same rows, 0 added"),
        Ratio("db merge vs a raw INSERT ... SELECT copy of the same rows", result["merge_s"], result["raw_s"], "s",
              round(1 / TARGET_RATIO, 3), note=f"merge <= {TARGET_RATIO}x the raw copy's time"),
    ], result)

if __name__ == "__main__":
    sys.exit(main())
