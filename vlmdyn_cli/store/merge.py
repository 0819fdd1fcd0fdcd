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

Measured inference speeds come along (for `infer --dry-run` on the target), and so do the
records of judged input files (`judge --input`): a file by (path, sha256), its lines by
(file, line), the triples whose file was never recorded by hash.
Not merged (reported when the source has any): human labels and calibration
samples, Batch API jobs (collect them where they were submitted), sharding
records (they guard the database they were made in), the plots cache.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.store import identity
from vlmdyn_cli.store.db import Busy, immediate, open_db, stored_columns, triple_hash

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
        if n:
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
    """A read-only connection to a node database of this version's schema (BadInput otherwise: not
    ours, newer, or older and needing `vlmdyn db migrate`, as ``open_db(readonly=True)`` says)."""
    conn = open_db(path, readonly=True).conn
    try:
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
    """Stage the source's rows in temp tables (mapped to the target's ids, checked), then write each
    table with INSERT ... SELECT in chunks: one statement per chunk, not per row, keeps the
    full-text index and the plots' change counter from flushing on every row."""
    rep = MergeReport(str(src.path))
    s = src.conn
    for table in ("gen_configs", "judge_specs"):
        cols = stored_columns(conn, table)
        cur = conn.executemany(f"INSERT OR IGNORE INTO {table} ({cols}) VALUES ({_marks(cols)})",
                               s.execute(f"SELECT {cols} FROM {table}").fetchall())
        rep.count("added", table, cur.rowcount)
    n = sum(s.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("triples", "generations", "judgements"))
    with reporter.task(f"check {src.path.name}", total=n, unit="rows") as task:
        _stage_triples(conn, s, task)
        _stage_generations(conn, s, src, task)
        _stage_judgements(conn, s, task)
    with reporter.task(f"merge {src.path.name}", total=n, unit="rows") as task:
        _write_triples(conn, rep, task)
        _write_generations(conn, rep, task)
        _write_judgements(conn, rep, task)
    _merge_timings(conn, s, src.runs, rep)
    _merge_input_files(conn, s, rep)
    rep.notes += _not_merged(s)
    return rep


# ---- staging: temp tables in the target's connection, nothing written to the target yet

_GEN_COLS = "run_id, step, qa_id, prediction, triple_hash, gen_config_hash, backend, created_at"


def _stage_triples(conn, s, task) -> None:
    conn.execute("DROP TABLE IF EXISTS temp.m_triples")
    conn.execute("CREATE TEMP TABLE m_triples (hash TEXT PRIMARY KEY, question, answer, prediction)")
    cur = s.execute("SELECT hash, question, answer, prediction FROM triples ORDER BY id")
    while rows := cur.fetchmany(CHUNK):
        for h, q, a, p in rows:
            if triple_hash(q, a, p) != h:
                raise BadInput(f"triple {h[:12]} of the source does not hash to its texts (a damaged or edited "
                               f"file?); nothing merged")
        conn.executemany("INSERT INTO temp.m_triples VALUES (?,?,?,?)", rows)
        task.advance(len(rows))


def _stage_generations(conn, s, src: Source, task) -> None:
    """Generations with the target's run and QA pair ids; each must agree with its triple (or, when the
    source has no triple for it, hash to its own texts: that triple is staged too)."""
    conn.execute("DROP TABLE IF EXISTS temp.m_generations")
    conn.execute(f"CREATE TEMP TABLE m_generations ({_GEN_COLS})")
    for name, src_run in src.runs.items():
        tgt_run = conn.execute("SELECT id FROM runs WHERE name = ?", [name]).fetchone()[0]
        qa = src.qa[name]
        cur = s.execute("SELECT g.step, g.qa_id, g.prediction, g.triple_hash, g.gen_config_hash, g.backend, "
                        "g.created_at, q.question, q.answer, t.question, t.answer, t.prediction FROM generations g "
                        "JOIN qa_pairs q ON q.id = g.qa_id LEFT JOIN triples t ON t.hash = g.triple_hash "
                        "WHERE g.run_id = ? ORDER BY g.id", [src_run])
        while rows := cur.fetchmany(CHUNK):
            staged, extra = [], []
            for step, q, pred, th, cfg, backend, created, question, answer, *triple in rows:
                if triple[0] is None and triple_hash(question, answer, pred) == th:
                    extra.append((th, question, answer, pred))
                elif triple != [question, answer, pred]:
                    raise BadInput(f"run {name} step {step}: a generation's triple hash does not match its question, "
                                   f"answer and prediction (a damaged or edited file?); nothing merged")
                staged.append((tgt_run, step, qa[q], pred, th, cfg, backend, created))
            conn.executemany(f"INSERT INTO temp.m_generations VALUES ({_marks(_GEN_COLS)})", staged)
            conn.executemany("INSERT OR IGNORE INTO temp.m_triples VALUES (?,?,?,?)", extra)
            task.advance(len(rows))
    missing = conn.execute("SELECT count(*) FROM temp.m_generations g WHERE NOT EXISTS (SELECT 1 FROM "
                           "main.gen_configs c WHERE c.hash = g.gen_config_hash)").fetchone()[0]
    if missing:
        raise BadInput(f"{missing} generations of the source name a generation config it does not have (a damaged "
                       f"file?); nothing merged")


def _stage_judgements(conn, s, task) -> None:
    cols = _judgement_columns(conn)
    conn.execute("DROP TABLE IF EXISTS temp.m_judgements")
    conn.execute(f"CREATE TEMP TABLE m_judgements ({cols})")
    cur = s.execute(f"SELECT {cols} FROM judgements ORDER BY id")
    while rows := cur.fetchmany(CHUNK):
        conn.executemany(f"INSERT INTO temp.m_judgements VALUES ({_marks(cols)})", rows)
        task.advance(len(rows))
    orphans = conn.execute(
        "SELECT count(*) FROM temp.m_judgements j WHERE NOT EXISTS (SELECT 1 FROM main.judge_specs p WHERE "
        "p.hash = j.spec_hash) OR (NOT EXISTS (SELECT 1 FROM temp.m_triples t WHERE t.hash = j.triple_hash) AND "
        "NOT EXISTS (SELECT 1 FROM main.triples t WHERE t.hash = j.triple_hash))").fetchone()[0]
    if orphans:
        raise BadInput(f"{orphans} judgements of the source judge a triple, or name a judge spec, that neither it "
                       f"nor the target has (a damaged file?); nothing merged")


# ---- writing: INSERT ... SELECT from the staged rows, WRITE_CHUNK rows per statement

WRITE_CHUNK = 20_000


def _chunks(conn, table: str):
    lo, hi = conn.execute(f"SELECT min(rowid), max(rowid) FROM temp.{table}").fetchone()
    for start in range(lo or 1, (hi or 0) + 1, WRITE_CHUNK):
        yield start, start + WRITE_CHUNK - 1


def _write_triples(conn, rep: MergeReport, task) -> None:
    staged = conn.execute("SELECT count(*) FROM temp.m_triples").fetchone()[0]
    added = 0
    for lo, hi in _chunks(conn, "m_triples"):
        added += conn.execute("INSERT OR IGNORE INTO main.triples(hash, question, answer, prediction) SELECT hash, "
                              "question, answer, prediction FROM temp.m_triples WHERE rowid BETWEEN ? AND ?",
                              [lo, hi]).rowcount
        task.advance(min(hi, staged) - lo + 1)
    rep.count("added", "triples", added)
    rep.count("unchanged", "triples", staged - added)


def _write_generations(conn, rep: MergeReport, task) -> None:
    staged = conn.execute("SELECT count(*) FROM temp.m_generations").fetchone()[0]
    same = ("g.run_id = t.run_id AND g.step = t.step AND g.qa_id = t.qa_id")
    differ = conn.execute(f"SELECT r.name, t.step, t.qa_id FROM temp.m_generations t JOIN main.generations g ON {same} "
                          "JOIN main.runs r ON r.id = t.run_id WHERE g.triple_hash != t.triple_hash OR "
                          "g.gen_config_hash != t.gen_config_hash").fetchall()
    added = 0
    for lo, hi in _chunks(conn, "m_generations"):
        added += conn.execute(f"INSERT OR IGNORE INTO main.generations({_GEN_COLS}) SELECT {_GEN_COLS} FROM "
                              "temp.m_generations WHERE rowid BETWEEN ? AND ?", [lo, hi]).rowcount
        task.advance(max(0, min(hi, staged) - lo + 1))
    rep.count("added", "generations", added)
    rep.count("conflicts", "generations", len(differ))
    rep.count("unchanged", "generations", staged - added - len(differ))
    for run, step, qa in differ[:5 - min(5, len(rep.examples))]:
        rep.examples.append(f"generation run {run} step {step} qa {qa}: the target has another answer or generation "
                            f"config; kept the target's")


def _write_judgements(conn, rep: MergeReport, task) -> None:
    cols = _judgement_columns(conn)
    staged = conn.execute("SELECT count(*) FROM temp.m_judgements").fetchone()[0]
    pairs = "FROM temp.m_judgements t JOIN main.judgements j ON j.spec_hash = t.spec_hash AND j.triple_hash = t.triple_hash"
    replaced = conn.execute(f"SELECT count(*) {pairs} WHERE j.status = 'unscored' AND t.status = 'scored'").fetchone()[0]
    differ = conn.execute(f"SELECT t.triple_hash, t.spec_hash, j.verdict, t.verdict {pairs} WHERE j.status = 'scored' "
                          "AND t.status = 'scored' AND j.verdict IS NOT t.verdict").fetchall()
    update = ", ".join(f"{c} = excluded.{c}" for c in cols.split(", ") if c not in ("spec_hash", "triple_hash"))
    written = 0
    for lo, hi in _chunks(conn, "m_judgements"):
        written += conn.execute(
            f"INSERT INTO main.judgements({cols}) SELECT {cols} FROM temp.m_judgements WHERE rowid BETWEEN ? AND ? "
            f"ON CONFLICT(spec_hash, triple_hash) DO UPDATE SET {update} "
            "WHERE judgements.status = 'unscored' AND excluded.status = 'scored'", [lo, hi]).rowcount
        task.advance(max(0, min(hi, staged) - lo + 1))
    rep.count("added", "judgements", written - replaced)
    rep.count("replaced", "judgements", replaced)
    rep.count("conflicts", "judgements", len(differ))
    rep.count("unchanged", "judgements", staged - written - len(differ))
    for th, spec, mine, theirs in differ[:5 - min(5, len(rep.examples))]:
        rep.examples.append(f"judgement of triple {th[:12]} by spec {spec[:12]}: target says {mine}, source "
                            f"{theirs}; kept the target's")


def _judgement_columns(conn) -> str:
    return ", ".join(c for c in stored_columns(conn, "judgements").split(", ") if c != "id")


def _merge_timings(conn, s, runs: dict[str, int], rep: MergeReport) -> None:
    """Measured inference speeds (for `infer --dry-run` on the target); a row equal in every column
    to one the target has is the same measurement merged before."""
    cols = [c for c in stored_columns(conn, "infer_timings").split(", ") if c not in ("id", "run_id")]
    for name, src_run in runs.items():
        tgt_run = conn.execute("SELECT id FROM runs WHERE name = ?", [name]).fetchone()[0]
        have = set(conn.execute(f"SELECT {', '.join(cols)} FROM infer_timings WHERE run_id = ?", [tgt_run]))
        new = [r for r in s.execute(f"SELECT {', '.join(cols)} FROM infer_timings WHERE run_id = ? ORDER BY id",
                                    [src_run]) if r not in have]
        conn.executemany(f"INSERT INTO infer_timings (run_id, {', '.join(cols)}) VALUES (?, {_marks(', '.join(cols))})",
                         [(tgt_run, *r) for r in new])
        rep.count("added", "infer_timings", len(new))


def _merge_input_files(conn, s, rep: MergeReport) -> None:
    """Judged input files by (path, sha256), their lines by (file, line), unrecorded triples by hash
    (all their triples came with the source's triples). A line the target has with another triple
    is a conflict: counted, the target's kept."""
    for fid, path, sha, n_rows, created in s.execute(
            "SELECT id, path, sha256, n_rows, created_at FROM input_files ORDER BY id").fetchall():
        cur = conn.execute("INSERT OR IGNORE INTO input_files(path, sha256, n_rows, created_at) VALUES (?, ?, ?, ?)",
                           (path, sha, n_rows, created))
        rep.count("added" if cur.rowcount else "unchanged", "input_files", 1)
        target_id = conn.execute("SELECT id FROM input_files WHERE path = ? AND sha256 = ?", (path, sha)).fetchone()[0]
        have = dict(conn.execute("SELECT line, triple_hash FROM input_file_rows WHERE file_id = ?", (target_id,)))
        rows = s.execute("SELECT line, item_id, triple_hash FROM input_file_rows WHERE file_id = ? ORDER BY line",
                         (fid,)).fetchall()
        new = [(target_id, line, item, h) for line, item, h in rows if line not in have]
        conn.executemany("INSERT INTO input_file_rows(file_id, line, item_id, triple_hash) VALUES (?, ?, ?, ?)", new)
        differ = sum(1 for line, _, h in rows if line in have and have[line] != h)
        rep.count("added", "input_file_rows", len(new))
        rep.count("conflicts", "input_file_rows", differ)
        rep.count("unchanged", "input_file_rows", len(rows) - len(new) - differ)
    hashes = s.execute("SELECT triple_hash FROM input_unrecorded ORDER BY id").fetchall()
    added = sum(conn.execute("INSERT OR IGNORE INTO input_unrecorded(triple_hash) VALUES (?)", h).rowcount
                for h in hashes)
    rep.count("added", "input_unrecorded", added)
    rep.count("unchanged", "input_unrecorded", len(hashes) - added)


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


def _marks(cols: str) -> str:
    return ",".join("?" * len(cols.split(", ")))
