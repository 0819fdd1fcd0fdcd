"""The judgements browser's SQL: filters, keyset pages and row counts over ``browse_rows``.

One browser row is one judgement of one generation. ``browse_rows`` (migration
m200) holds every such row in page order, ``(run_id, step, qa_id,
judgement_id)``, with ``bucket`` standing for its (judge, status, verdict,
category, subcategory); ``browse_counts`` holds the exact number of rows per
(bucket, run, checkpoint) cell. A page is planned from those counts before any
row is read (``plan``):

* the filters on judge / verdict / status / category / sub-category become a list
  of bucket ids, run / seed / set / checkpoint a list of runs and of checkpoints;
  cells without a matching row are left out, and a combination nothing matches
  costs no query at all;
* pages are keyset pages after the last row shown, in at most three segments
  (the rest of that row's cell, the rest of its run, the later runs), each one
  statement: when a segment holds at most ``COLLECT_MAX`` matching rows they are
  read from the bucket index and sorted ("collect"); otherwise the segment is
  walked in page order with the bucket tested in the row, which then finds a page
  within ``PAGE_SIZE x cells / COLLECT_MAX`` rows ("walk");
* set membership, "judges disagree" and text search are tested per row on the
  rows those steps produce (after the sort, so a collect stops at a page too);
  a rare text instead drives the page from the full-text index ("text").

So no page reads more than a few tens of thousands of narrow index entries,
whatever the combination; ``tests/test_tui_queries.py`` checks every combination's
query plans, ``benchmarks/bench_tui_filter.py`` times them at paper scale.
The row count is exact from ``browse_counts`` unless a per-row filter is on
(then it is counted up to ``COUNT_CAP`` within ``COUNT_BUDGET_S``).
Connections must use ``row_factory = sqlite3.Row`` (``tui.store.Store`` does).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field, fields

from vlmdyn_cli.store.search import fts_query

PAGE_SIZE = 100
COLLECT_MAX = 20_000         # matching rows a segment collects and sorts instead of walking
COUNT_CAP = 10_000           # rows counted when a per-row filter is on
COUNT_BUDGET_S = 3.0
COUNT_CHECK_EVERY = 10_000   # SQLite VM steps between two looks at the clock
TEXT_DRIVE_MAX = 5_000       # matching generations up to which text search drives the page
TEXT_FILTER_MAX = 200_000    # matching triples up to which they are collected once per query (else probed per row)

Key = tuple[int, int, int, int]  # (run_id, step, qa_id, judgement id)
KEY = ("run_id", "step", "qa_id", "judgement_id")


@dataclass(frozen=True)
class Filters:
    """What the browser shows; None means "any"."""

    run: str | None = None
    seed: int | None = None
    step: int | None = None
    set_name: str | None = None
    category: str | None = None
    subcategory: str | None = None
    judge: str | None = None
    verdict: str | None = None          # yes / no
    status: str | None = None           # scored / unscored
    disagree: tuple[str, str] | None = None  # two judge names whose verdicts differ
    text: str | None = None             # free text, searched with FTS5 in question/answer/prediction

    def active(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) not in (None, "")}


BUCKET_FILTERS = {"judge": "judge_name", "status": "status", "verdict": "verdict",
                  "category": "category", "subcategory": "subcategory"}


@dataclass
class Plan:
    """Where the rows of a filter combination are, from the small tables only."""

    cells: dict[tuple[int, int], int]    # (run_id, step) -> rows matching the bucket filters
    buckets: list[int] | None            # None: any bucket
    per_row_sql: str = "1"               # per-row filters (set, disagree, text) over the alias "{b}"
    params: list = field(default_factory=list)
    text_drive: str | None = None        # FTS query that drives the page (rare text)

    @property
    def total(self) -> int:
        """Rows matching every filter but the per-row ones (the exact count when there are none)."""
        return sum(self.cells.values())

    @property
    def per_row(self) -> bool:
        return self.per_row_sql != "1" or self.text_drive is not None

    def residual(self, alias: str = "b") -> str:
        return self.per_row_sql.format(b=alias)


def _ids(values) -> str:
    return ", ".join(str(int(v)) for v in values)


def plan(conn: sqlite3.Connection, f: Filters) -> Plan:
    runs = [r[0] for r in conn.execute(
        "SELECT id FROM runs WHERE (? IS NULL OR name = ?) AND (? IS NULL OR seed = ?) AND (? IS NULL OR id IN "
        "(SELECT run_id FROM eval_sets WHERE name = ?)) ORDER BY id",
        (f.run, f.run, f.seed, f.seed, f.set_name, f.set_name)).fetchall()]
    wanted = {col: getattr(f, name) for name, col in BUCKET_FILTERS.items() if getattr(f, name) is not None}
    buckets = None
    if wanted:
        buckets = [r[0] for r in conn.execute(
            "SELECT id FROM browse_buckets WHERE " + " AND ".join(f"{c} = ?" for c in wanted),
            list(wanted.values())).fetchall()]
    if not runs or buckets == []:
        return Plan({}, buckets)
    sql = f"SELECT run_id, step, sum(n) FROM browse_counts WHERE n > 0 AND run_id IN ({_ids(runs)})"
    if buckets is not None:
        sql += f" AND bucket IN ({_ids(buckets)})"
    if f.step is not None:
        sql += f" AND step = {int(f.step)}"
    cells = {(r, s): n for r, s, n in conn.execute(sql + " GROUP BY run_id, step").fetchall() if n}
    p = Plan(cells, buckets)
    conds: list[str] = []
    if f.set_name is not None:
        conds.append("EXISTS (SELECT 1 FROM eval_sets s JOIN eval_set_members m ON m.set_id = s.id "
                     "WHERE s.run_id = {b}.run_id AND s.name = ? AND m.qa_id = {b}.qa_id)")
        p.params.append(f.set_name)
    if f.disagree is not None:
        conds.append(_disagree(conn, *f.disagree))
    q = fts_query(f.text or "")
    if q is not None:
        mode = text_mode(conn, q)
        if mode == "drive":
            p.text_drive = q
        elif mode == "filter":  # the matches collected once per statement, looked up per row
            conds.append("{b}.triple_id IN (SELECT rowid FROM triples_fts WHERE triples_fts MATCH ?)")
            p.params.append(q)
        else:  # so many matches that a page finds its rows after a few probes of the index
            conds.append("EXISTS (SELECT 1 FROM triples_fts WHERE triples_fts MATCH ? AND rowid = {b}.triple_id)")
            p.params.append(q)
    if "0" in conds:  # judges that never both scored an item cannot disagree
        p.cells = {}
    elif conds:
        p.per_row_sql = " AND ".join(conds)
    return p


def _disagree(conn: sqlite3.Connection, a: str, b: str) -> str:
    """Rows whose generation judges ``a`` and ``b`` both scored, with different verdicts."""
    def ids(judge, verdict):
        return _ids(r[0] for r in conn.execute(
            "SELECT id FROM browse_buckets WHERE judge_name = ? AND status = 'scored' AND verdict = ?",
            (judge, verdict)).fetchall())

    def has(bucket_ids):
        return ("EXISTS (SELECT 1 FROM browse_rows x WHERE x.run_id = {b}.run_id AND x.step = {b}.step "
                f"AND x.qa_id = {{b}}.qa_id AND x.bucket IN ({bucket_ids}))")

    pairs = [(ids(a, "yes"), ids(b, "no")), (ids(a, "no"), ids(b, "yes"))]
    either = [f"({has(x)} AND {has(y)})" for x, y in pairs if x and y]
    return f"({' OR '.join(either)})" if either else "0"


def text_mode(conn: sqlite3.Connection, q: str) -> str:
    """How to apply a text search, from capped counts of what matches.

    drive  (at most TEXT_DRIVE_MAX matching generations): start from the matches and sort them;
    filter (at most TEXT_FILTER_MAX matching triples): collect the matches once per statement;
    probe  (more): ask the full-text index per row, which finds a page after a few rows
           exactly because so much matches (each probe costs ~40 us, too much for rare words).
    Generations are counted, not just triples: one triple ("Is this a children's book?" /
    "No" / "No") can stand for thousands of generations.
    """
    n_triples = conn.execute(
        "SELECT count(*) FROM (SELECT rowid FROM triples_fts WHERE triples_fts MATCH ? LIMIT ?)",
        (q, TEXT_FILTER_MAX + 1)).fetchone()[0]
    if n_triples > TEXT_FILTER_MAX:
        return "probe"
    if n_triples > 20 * TEXT_DRIVE_MAX:
        return "filter"
    n_gens = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM generations WHERE triple_hash IN (SELECT t.hash FROM triples t "
        "WHERE t.id IN (SELECT rowid FROM triples_fts WHERE triples_fts MATCH ?)) LIMIT ?)",
        (q, TEXT_DRIVE_MAX + 1)).fetchone()[0]
    return "drive" if n_gens <= TEXT_DRIVE_MAX else "filter"


# ---------------------------------------------------------------- pages

@dataclass
class Segment:
    """Cells of consecutive pages: one run and step, or one run, or several runs (a grid)."""

    runs: list[int]
    steps: list[int]
    after: tuple[int, int] | None = None   # (qa_id, judgement_id) within the single cell

    def where(self) -> str:
        sql = f"b.run_id IN ({_ids(self.runs)}) AND b.step IN ({_ids(self.steps)})"
        if self.after is not None:
            sql += f" AND (b.qa_id, b.judgement_id) > ({_ids(self.after)})"
        return sql


def segments(p: Plan, after: Key | None) -> list[Segment]:
    """The cells holding rows after ``after``, as at most three grids in page order."""
    runs = sorted({r for r, _ in p.cells})
    steps = sorted({s for _, s in p.cells})
    if after is None:
        return [Segment(runs, steps)] if runs else []
    r0, s0, q0, j0 = after
    out = []
    if (r0, s0) in p.cells:
        out.append(Segment([r0], [s0], (q0, j0)))
    later_steps = [s for s in steps if s > s0 and (r0, s) in p.cells]
    if later_steps:
        out.append(Segment([r0], later_steps))
    later_runs = [r for r in runs if r > r0]
    if later_runs:
        out.append(Segment(later_runs, steps))
    return out


def statement(p: Plan, seg: Segment, collect: bool) -> str:
    """One segment's keys in page order (parameters: ``p.params`` and the limit).

    walk     the primary key in page order, the bucket tested in the row;
    collect  the bucket index, sorted; per-row filters are applied after the sort, to the
             sorted rows in order (a materialized CTE is read in the order it was written;
             tests/test_tui_queries.py checks the order), so they stop when the page is full.
    """
    cols = ", ".join(f"b.{c}" for c in KEY)
    if not collect:
        bucket = "" if p.buckets is None else f" AND +b.bucket IN ({_ids(p.buckets)})"
        return (f"SELECT {cols} FROM browse_rows b WHERE {seg.where()}{bucket} AND {p.residual()} "
                f"ORDER BY {cols} LIMIT ?")
    inner = (f"FROM browse_rows b INDEXED BY idx_browse_rows_bucket "
             f"WHERE b.bucket IN ({_ids(p.buckets)}) AND {seg.where()} ORDER BY {cols}")
    if p.per_row_sql == "1":
        return f"SELECT {cols} {inner} LIMIT ?"
    inner = f"SELECT {cols}, b.triple_id {inner}"
    return (f"WITH collected AS MATERIALIZED ({inner}) SELECT {', '.join(KEY)} FROM collected "
            f"WHERE {p.residual('collected')} LIMIT ?")


def segment_total(p: Plan, seg: Segment) -> int:
    return sum(p.cells.get((r, s), 0) for r in seg.runs for s in seg.steps)


def text_statement(p: Plan, after: Key | None) -> tuple[str, list]:
    """Keys of a rare text's rows: matching triples -> their generations -> their browse rows."""
    cols = ", ".join(f"b.{c}" for c in KEY)
    cells = " OR ".join(f"(b.run_id = {int(r)} AND b.step = {int(s)})" for r, s in sorted(p.cells))
    where = [f"({cells})", p.residual()]
    if p.buckets is not None:
        where.append(f"+b.bucket IN ({_ids(p.buckets)})")  # b is reached by its key from g, never by bucket
    params = [p.text_drive, *p.params]
    if after is not None:
        where.append(f"({cols}) > (?, ?, ?, ?)")
        params += list(after)
    sql = (f"SELECT {cols} FROM triples_fts CROSS JOIN triples t ON t.id = triples_fts.rowid "
           "CROSS JOIN generations g INDEXED BY idx_generations_triple ON g.triple_hash = t.hash "
           "CROSS JOIN browse_rows b ON b.run_id = g.run_id AND b.step = g.step AND b.qa_id = g.qa_id "
           f"WHERE triples_fts MATCH ? AND {' AND '.join(where)} ORDER BY {cols} LIMIT ?")
    return sql, params


def page_keys(conn: sqlite3.Connection, f: Filters, after: Key | None = None,
              limit: int | None = None) -> list[Key]:
    """The keys of one page after the keyset cursor ``after`` (None: the first page)."""
    limit = PAGE_SIZE if limit is None else int(limit)
    p = plan(conn, f)
    if not p.cells:
        return []
    if p.text_drive is not None:
        sql, params = text_statement(p, after)
        return [tuple(r) for r in conn.execute(sql, params + [limit]).fetchall()]
    keys: list[Key] = []
    for seg in segments(p, after):
        collect = p.buckets is not None and segment_total(p, seg) <= COLLECT_MAX
        rows = conn.execute(statement(p, seg, collect), p.params + [limit - len(keys)]).fetchall()
        keys += [tuple(r) for r in rows]
        if len(keys) >= limit:
            break
    return keys


def page(conn: sqlite3.Connection, f: Filters, after: Key | None = None, limit: int | None = None) -> list[dict]:
    """One page of browser rows (display columns) after the keyset cursor ``after``."""
    return rows_for(conn, page_keys(conn, f, after, limit))


def rows_for(conn: sqlite3.Connection, keys: list[Key]) -> list[dict]:
    """Display columns for browser keys, in the given order."""
    out = []
    for key in keys:
        r = conn.execute(
            "SELECT g.id AS gid, j.id AS jid, g.run_id, g.qa_id, r.name AS run, r.seed, g.step, "
            "q.category, q.subcategory, j.judge_name AS judge, j.status, j.verdict, "
            "q.question, q.answer, g.prediction, "
            "(SELECT group_concat(s.name, ' ') FROM eval_set_members m JOIN eval_sets s ON s.id = m.set_id "
            " WHERE m.qa_id = g.qa_id AND s.run_id = g.run_id) AS sets "
            "FROM generations g JOIN judgements j ON j.id = ? JOIN runs r ON r.id = g.run_id "
            "JOIN qa_pairs q ON q.id = g.qa_id WHERE g.run_id = ? AND g.step = ? AND g.qa_id = ?",
            (key[3], key[0], key[1], key[2])).fetchone()
        if r is not None:
            d = dict(r)
            d["key"] = tuple(key)
            out.append(d)
    return out


# ---------------------------------------------------------------- counts

@dataclass(frozen=True)
class Count:
    """How many rows match: ``n`` exact, or at least ``n`` (capped), or unknown up to ``at_most``."""

    n: int | None
    capped: bool = False
    at_most: int | None = None

    def text(self) -> str:
        if self.n is None:
            return f"of ? (at most {self.at_most:,})" if self.at_most is not None else "of ?"
        return f"of {self.n:,}{'+' if self.capped else ''}"


def count(conn: sqlite3.Connection, f: Filters, cap: int = COUNT_CAP, budget_s: float = COUNT_BUDGET_S) -> Count:
    """The number of rows: exact from ``browse_counts`` unless a per-row filter (set, disagree,
    text) is on; then counted up to ``cap`` rows within ``budget_s`` seconds (else unknown, with
    the bucket count as an upper bound)."""
    p = plan(conn, f)
    if not p.per_row or not p.cells:
        return Count(p.total)
    if p.text_drive is not None:
        sql, params = text_statement(p, None)
    else:
        seg = segments(p, None)[0]
        sql, params = statement(p, seg, p.buckets is not None and p.total <= COLLECT_MAX), list(p.params)
    n = _timed_scalar(conn, f"SELECT count(*) FROM ({sql})", params + [cap + 1], budget_s)
    if n is None:
        return Count(None, at_most=p.total)
    return Count(min(n, cap), capped=n > cap)


def _timed_scalar(conn: sqlite3.Connection, sql: str, params: list, budget_s: float):
    """The first column of the first row, or None when SQLite took longer than budget_s."""
    deadline = time.monotonic() + budget_s
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), COUNT_CHECK_EVERY)
    try:
        return conn.execute(sql, params).fetchone()[0]
    except sqlite3.OperationalError as exc:
        if "interrupt" not in str(exc):
            raise
        return None
    finally:
        conn.set_progress_handler(None, 0)
