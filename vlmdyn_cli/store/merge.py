"""`vlmdyn db merge`: bring the generations and judgements of node databases back into the experiment.

Rows are matched by content, never by row id: a run by its name, a QA pair by
(dataset file hash, conversation index, turn), a triple by its hash, a
generation by (run, step, QA pair), a judgement by (judge spec hash, triple
hash). Before anything is written every source is checked (identity.py):

- it is a vlmdyn database of this version's schema (a newer one is refused:
  upgrade vlmdyn; an older one: ``vlmdyn db migrate --db FILE`` first);
- each of its runs is in the target with the same definition (dataset, seed,
  model, training config, steps, batch, checkpoint schedule, order manifest);
- each of its evaluation sets is in the target with the same definition and
  members; every QA pair it answered is in the target with the same texts.

Everything is then written in one transaction taken with ``BEGIN IMMEDIATE``:
a kill leaves the target as it was or fully merged. The lock is waited for
only ``LOCK_WAIT_S``; a target that another merge (or an import) is writing is
refused, unchanged. Merging is idempotent: what the target has is left as it
is (a generation with another answer, or a judgement with another verdict, is
a conflict: counted, reported, the target's row kept), except that a scored
judgement replaces the target's unscored one. Merging a file twice adds nothing.

Measured inference speeds come along (for `infer --dry-run` on the target).
Not merged (reported when the source has any): human labels and calibration
samples, Batch API jobs (collect them where they were submitted), sharding
records (they guard the database they were made in), the plots cache.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from sqlite_utils import Database

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.store import identity
from vlmdyn_cli.store.db import Busy, connect, immediate, open_db, triple_hash

LOCK_WAIT_S = 10.0     # how long a merge waits for another writer before it refuses
CHUNK = 2000


@dataclass
class Source:
    path: Path
    conn: sqlite3.Connection
    runs: dict[str, int]                       # name -> id in the source
    qa: dict[str, dict[int, int]] = field(default_factory=dict)   # run -> source qa id -> target qa id


@dataclass
class MergeReport:
    source: str
    added: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    replaced: dict[str, int] = field(default_factory=dict)     # judgements: target's unscored -> scored
    conflicts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)           # a few conflicts, in words
    notes: list[str] = field(default_factory=list)

    def count(self, kind: str, table: str, n: int) -> None:
        d = getattr(self, kind)
        d[table] = d.get(table, 0) + n

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def merge(target: str | os.PathLike, sources: list[str | os.PathLike], *, reporter: Reporter | None = None,
          lock_wait: float = LOCK_WAIT_S) -> list[MergeReport]:
    """Merge ``sources`` into ``target`` (one transaction); one report per source."""
    reporter = reporter or NullReporter()
    target = Path(target)
    if not target.is_file():
        raise BadInput(f"--into {target} does not exist: merge into the experiment database the node "
                       f"databases were exported from")
    paths = _distinct(sources, target)
    opened: list[Source] = []
    db = None
    try:
        for p in paths:
            opened.append(open_source(p))
        db = open_db(target)
        try:
            with immediate(db, wait_s=lock_wait) as conn:
                _check_all(conn, opened, target)
                return [_merge_one(conn, s, reporter) for s in opened]
        except Busy as exc:
            raise BadInput(f"{target} is being written by another process (another `vlmdyn db merge`, an "
                           f"import?) and stayed locked for {lock_wait:g} s; nothing merged, the target is "
                           f"unchanged: try again when it is done ({exc})") from None
    finally:
        for s in opened:
            s.conn.close()
        if db is not None:
            db.close()


def _distinct(sources, target: Path) -> list[Path]:
    if not sources:
        raise BadInput("give at least one node database to merge")
    out: dict[Path, Path] = {}
    for s in sources:
        p = Path(s)
        if not p.is_file():
            raise BadInput(f"{p} does not exist")
        if p.resolve() == target.resolve():
            raise BadInput(f"{p} is the target database itself")
        out.setdefault(p.resolve(), p)
    return list(out.values())


def open_source(path: Path) -> Source:
    """A read-only connection to a node database of this version's schema (BadInput otherwise)."""
    from vlmdyn_cli.store.migrations import migrations

    conn = connect(path, readonly=True)
    try:
        has = conn.execute("SELECT 1 FROM sqlite_master WHERE name = '_sqlite_migrations'").fetchone()
        applied = [r[0] for r in conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", [migrations.name])] if has else []
        if not applied:
            raise BadInput(f"{path} is not a vlmdyn experiment database (no vlmdyn schema migrations recorded)")
        known = [m.name for m in migrations.pending(Database(memory=True))]
        newer = [n for n in applied if n not in known]
        if newer:
            raise BadInput(f"{path} has a newer schema than this vlmdyn knows (migrations {', '.join(newer)}): "
                           f"it was written by a newer vlmdyn; upgrade vlmdyn here before merging it")
        older = [n for n in known if n not in applied]
        if older:
            raise BadInput(f"{path} has an older schema (missing migrations {', '.join(older)}); upgrade it "
                           f"with `vlmdyn db migrate --db {path}` and merge again")
        runs = dict(conn.execute("SELECT name, id FROM runs ORDER BY id").fetchall())
        if not runs:
            raise BadInput(f"{path} has no runs: `db merge` brings back the generations and judgements of "
                           f"runs exported with `vlmdyn db export`")
    except BaseException:
        conn.close()
        raise
    return Source(path, conn, runs)


def _check_all(conn: sqlite3.Connection, sources: list[Source], target: Path) -> None:
    """Every run and set of every source is the target's (by content); BadInput listing what differs."""
    problems: list[str] = []
    cache: dict[tuple, dict] = {}
    for s in sources:
        problems += identity.compare(s.conn, conn, s.runs, s.path.name, target.name, cache)
    if problems:
        shown = problems[:12] + ([f"... and {len(problems) - 12} more"] if len(problems) > 12 else [])
        raise BadInput("nothing merged, the target is unchanged: the node databases must come from "
                       f"`vlmdyn db export` of {target.name}:\n  " + "\n  ".join(shown))
    for s in sources:
        s.qa = {name: identity.map_qa_pairs(s.conn, conn, run_id, s.path.name) for name, run_id in s.runs.items()}


# ------------------------------------------------------------------------------------------- writing


def _merge_one(conn: sqlite3.Connection, src: Source, reporter: Reporter) -> MergeReport:
    rep = MergeReport(str(src.path))
    s = src.conn
    total = sum(s.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("triples", "generations", "judgements"))
    with reporter.task(f"merge {src.path.name}", total=total, unit="rows") as task:
        for table, key in (("gen_configs", "hash"), ("judge_specs", "hash")):
            cols = _columns(conn, table)
            rows = s.execute(f"SELECT {cols} FROM {table}").fetchall()
            cur = conn.executemany(f"INSERT OR IGNORE INTO {table} ({cols}) VALUES ({_marks(cols)})", rows)
            rep.count("added", table, cur.rowcount)
        _merge_triples(conn, s, rep, task)
        for name, src_run in src.runs.items():
            _merge_generations(conn, s, name, src_run, src.qa[name], rep, task)
        _merge_judgements(conn, s, rep, task)
        _merge_timings(conn, s, src.runs, rep)
    rep.notes += _not_merged(s)
    return rep


def _merge_triples(conn, s, rep: MergeReport, task) -> None:
    cur = s.execute("SELECT hash, question, answer, prediction FROM triples ORDER BY id")
    while rows := cur.fetchmany(CHUNK):
        for h, q, a, p in rows:
            if triple_hash(q, a, p) != h:
                raise BadInput(f"triple {h[:12]} of the source does not hash to its texts (a damaged or edited "
                               f"file?); nothing merged")
        c = conn.executemany("INSERT OR IGNORE INTO triples(hash, question, answer, prediction) VALUES (?,?,?,?)",
                             rows)
        rep.count("added", "triples", c.rowcount)
        rep.count("unchanged", "triples", len(rows) - c.rowcount)
        task.advance(len(rows))


def _merge_generations(conn, s, run_name: str, src_run: int, qa: dict[int, int], rep: MergeReport, task) -> None:
    tgt_run = conn.execute("SELECT id FROM runs WHERE name = ?", [run_name]).fetchone()[0]
    cur = s.execute("SELECT g.step, g.qa_id, g.prediction, g.triple_hash, g.gen_config_hash, g.backend, "
                    "g.created_at, q.question, q.answer FROM generations g JOIN qa_pairs q ON q.id = g.qa_id "
                    "WHERE g.run_id = ? ORDER BY g.id", [src_run])
    while rows := cur.fetchmany(CHUNK):
        keys = [(step, qa[q]) for step, q, *_ in rows]
        have = _existing(conn, "SELECT w.a, w.b, g.triple_hash, g.gen_config_hash FROM temp._want w JOIN generations g "
                               f"ON g.run_id = {tgt_run} AND g.step = w.a AND g.qa_id = w.b", keys)
        new = []
        for (step, tq), (_, _, pred, th, cfg, backend, created, question, answer) in zip(keys, rows):
            if triple_hash(question, answer, pred) != th:
                raise BadInput(f"run {run_name} step {step}: a generation's triple hash does not match its "
                               f"question, answer and prediction (a damaged or edited file?); nothing merged")
            old = have.get((step, tq))
            if old is None:
                new.append((tgt_run, step, tq, pred, th, cfg, backend, created))
            elif old == (th, cfg):
                rep.count("unchanged", "generations", 1)
            else:
                rep.count("conflicts", "generations", 1)
                if len(rep.examples) < 5:
                    rep.examples.append(f"generation run {run_name} step {step} qa {tq}: the target has another "
                                        f"answer or generation config; kept the target's")
        conn.executemany("INSERT INTO generations(run_id, step, qa_id, prediction, triple_hash, gen_config_hash, "
                         "backend, created_at) VALUES (?,?,?,?,?,?,?,?)", new)
        rep.count("added", "generations", len(new))
        task.advance(len(rows))


def _merge_judgements(conn, s, rep: MergeReport, task) -> None:
    cols = [c for c in _columns(conn, "judgements").split(", ") if c != "id"]
    i_spec, i_triple, i_status, i_verdict = (cols.index(c) for c in ("spec_hash", "triple_hash", "status", "verdict"))
    upsert = (f"INSERT INTO judgements ({', '.join(cols)}) VALUES ({_marks(', '.join(cols))}) "
              "ON CONFLICT(spec_hash, triple_hash) DO UPDATE SET "
              + ", ".join(f"{c} = excluded.{c}" for c in cols if c not in ("spec_hash", "triple_hash")))
    cur = s.execute(f"SELECT {', '.join(cols)} FROM judgements ORDER BY id")
    while rows := cur.fetchmany(CHUNK):
        have = _existing(conn, "SELECT w.a, w.b, j.status, j.verdict FROM temp._want w JOIN judgements j "
                               "ON j.spec_hash = w.a AND j.triple_hash = w.b",
                         [(r[i_spec], r[i_triple]) for r in rows])
        write = []
        for r in rows:
            old = have.get((r[i_spec], r[i_triple]))
            if old is None:
                write.append(r)
                rep.count("added", "judgements", 1)
            elif old[0] == "unscored" and r[i_status] == "scored":
                write.append(r)
                rep.count("replaced", "judgements", 1)
            elif old[0] == "scored" and r[i_status] == "scored" and old[1] != r[i_verdict]:
                rep.count("conflicts", "judgements", 1)
                if len(rep.examples) < 5:
                    rep.examples.append(f"judgement of triple {r[i_triple][:12]} by spec {r[i_spec][:12]}: target "
                                        f"says {old[1]}, source {r[i_verdict]}; kept the target's")
            else:
                rep.count("unchanged", "judgements", 1)
        conn.executemany(upsert, write)
        task.advance(len(rows))


def _merge_timings(conn, s, runs: dict[str, int], rep: MergeReport) -> None:
    """Measured inference speeds (for `infer --dry-run` on the target); a row equal in every column
    to one the target has is the same measurement merged before."""
    cols = [c for c in _columns(conn, "infer_timings").split(", ") if c not in ("id", "run_id")]
    for name, src_run in runs.items():
        tgt_run = conn.execute("SELECT id FROM runs WHERE name = ?", [name]).fetchone()[0]
        have = set(conn.execute(f"SELECT {', '.join(cols)} FROM infer_timings WHERE run_id = ?", [tgt_run]))
        new = [r for r in s.execute(f"SELECT {', '.join(cols)} FROM infer_timings WHERE run_id = ? ORDER BY id",
                                    [src_run]) if r not in have]
        conn.executemany(f"INSERT INTO infer_timings (run_id, {', '.join(cols)}) VALUES (?, {_marks(', '.join(cols))})",
                         [(tgt_run, *r) for r in new])
        rep.count("added", "infer_timings", len(new))


def _existing(conn, sql: str, keys: list[tuple]) -> dict[tuple, tuple]:
    """{(a, b): rest} of the target rows matching ``keys`` (a temp table joined on an index)."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _want (a, b)")
    conn.execute("DELETE FROM temp._want")
    conn.executemany("INSERT INTO temp._want VALUES (?, ?)", keys)
    return {(r[0], r[1]): tuple(r[2:]) for r in conn.execute(sql)}


def _not_merged(s) -> list[str]:
    notes = []
    for table, what in (("human_labels", "human labels"), ("calibration_items", "calibration sample items")):
        n = s.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if n:
            notes.append(f"{n} {what} not merged (db merge brings generations and judgements only)")
    n = s.execute("SELECT count(*) FROM openai_batches WHERE status NOT IN "
                  "('completed', 'failed', 'expired', 'cancelled', 'retired')").fetchone()[0]
    if n:
        notes.append(f"{n} Batch API jobs still open in this file: collect them there (vlmdyn judge ... --batch) "
                     f"and merge again")
    return notes


def _columns(conn, table: str) -> str:
    return ", ".join(r[1] for r in conn.execute(f"PRAGMA main.table_info({table})"))


def _marks(cols: str) -> str:
    return ",".join("?" * len(cols.split(", ")))
