"""The judgements browser's SQL: filters, keyset pages and row counts over ``browse_rows``.

One browser row is one judgement of one generation. ``browse_rows`` (migration
m230) holds every such row in page order, ``(run_id, step, qa_id,
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
  statement that either reads the segment's matching rows from the bucket index
  and keeps the first page of them ("collect": cost ~ matching rows), or walks the
  segment in page order testing the bucket in the row ("walk": cost ~ a page /
  density); the cheaper by the counts, so a segment of N rows never costs much
  more than sqrt(PAGE_SIZE x N) rows (~20k at paper scale);
* set membership, "judges disagree" and text search are tested per row on the
  rows those steps produce (disagree and text from the index entry itself: both
  indexes carry ``peers``, the bucket index ``triple_id``); a page may instead
  start from one of them (set members, the rarer judge's rows, the text
  matches), costed in index lookups and entries read;
* "disagree: A vs B" drops the buckets A or B left unscored before any of that;
* a plan is reused by the next page and the count on the same connection until
  the database changes.

So no page reads more than a few tens of thousands of narrow index entries
(plus the per-row filters' lookups), whatever the combination; ``tests/test_tui_queries.py`` checks every combination's
query plans, ``benchmarks/bench_tui_filter.py`` times them at paper scale.
The row count is exact from ``browse_counts`` unless a per-row filter is on
(then it is counted up to ``COUNT_CAP`` within ``COUNT_BUDGET_S``).
Connections must use ``row_factory = sqlite3.Row`` (``tui.store.Store`` does).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field, fields

from vlmdyn_cli.store.search import fts_query

PAGE_SIZE = 100
COLLECT_COST = 2.0           # cost of a collected row (index read, top-N sort) in walked rows
RANDOM_COST = 10.0           # cost of a row reached by an index lookup, in rows read in order
WALK_SAFETY = 10.0           # estimated walks count this many times more (filters can be correlated)
TEXT_EXACT_MAX = 2_000       # matching triples up to which their rows are counted exactly
COUNT_CAP = 10_000           # rows counted when a per-row filter is on
COUNT_BUDGET_S = 3.0
COUNT_CHECK_EVERY = 10_000   # SQLite VM steps between two looks at the clock
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
    source: str | None = None           # None: the runs' generations; else input-file rows (tui/browse_inputs.py)

    def active(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) not in (None, "")}


def run_filters() -> list[str]:
    """The names of the filters of the runs' rows: every field of ``Filters`` but ``source`` (which
    switches to an input file's rows, tui/browse_inputs.py)."""
    return [f.name for f in fields(Filters) if f.name != "source"]


BUCKET_FILTERS = {"judge": "judge_name", "status": "status", "verdict": "verdict",
                  "category": "category", "subcategory": "subcategory"}


@dataclass
class PerRow:
    """A filter tested per row (set, disagree, text): SQL over the alias ``{b}``, and how many rows a
    page would read if it started from this filter instead ("driver"), None when it cannot."""

    name: str
    sql: str
    params: list
    candidates: int | None = None
    seeks: int = 0      # index lookups the test costs a row
    entries: int = 0    # index lookups a page starting from this filter makes to reach its candidates


@dataclass
class Plan:
    """Where the rows of a filter combination are, from the small tables only."""

    cells: dict[tuple[int, int], int]    # (run_id, step) -> rows matching the bucket filters
    buckets: list[int] | None            # None: any bucket
    sizes: dict[tuple[int, int], int] = field(default_factory=dict)  # (run_id, step) -> all rows
    per_row: list[PerRow] = field(default_factory=list)
    set_name: str | None = None
    rare_judge: list[int] = field(default_factory=list)  # scored buckets of the rarer disagreeing judge
    text: str | None = None              # the FTS query

    @property
    def total(self) -> int:
        """Rows matching every filter but the per-row ones (the exact count when there are none)."""
        return sum(self.cells.values())

    @property
    def size(self) -> int:
        return sum(self.sizes.get(c, 0) for c in self.grid())

    def grid(self) -> list[tuple[int, int]]:
        runs, steps = sorted({r for r, _ in self.cells}), sorted({s for _, s in self.cells})
        return [(r, s) for r in runs for s in steps]

    def residual(self, alias: str = "b", skip: str | None = None) -> tuple[str, list]:
        """The per-row filters (but ``skip``, the driver's own) as SQL over ``alias``, and their parameters."""
        used = [x for x in self.per_row if x.name != skip]
        return (" AND ".join(x.sql.format(b=alias) for x in used) or "1"), [v for x in used for v in x.params]

    def bucket_test(self, alias: str = "b") -> str:
        """The bucket filter tested in the row (never through the bucket index: ``+``)."""
        return "1" if self.buckets is None else f"+{alias}.bucket IN ({_ids(self.buckets)})"


def _ids(values) -> str:
    return ", ".join(str(int(v)) for v in values)


PLAN_CACHE_SIZE = 32
_plans: dict[tuple, tuple[sqlite3.Connection, Plan]] = {}
_plans_lock = threading.Lock()


def plan(conn: sqlite3.Connection, f: Filters) -> Plan:
    """The plan of ``f``, remembered per connection until the database changes (another connection
    commits: ``data_version``; this one writes: ``total_changes``): the next page and the count of a
    filter reuse the first page's (a text filter's plan runs the full-text query). An entry holds
    its connection, so no other connection can take its id while it is cached."""
    key = (id(conn), conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes, f)
    with _plans_lock:  # the TUI plans in worker threads (a page and its count at once)
        hit = _plans.get(key)
    if hit is not None and hit[0] is conn:
        return hit[1]
    p = _plan(conn, f)
    with _plans_lock:
        while len(_plans) >= PLAN_CACHE_SIZE:
            del _plans[next(iter(_plans))]
        _plans[key] = (conn, p)
    return p


def _plan(conn: sqlite3.Connection, f: Filters) -> Plan:
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
    if f.disagree is not None:
        buckets = _can_disagree(conn, f.disagree, buckets)
    if not runs or buckets == []:
        return Plan({}, buckets)
    sizes = _cells(conn, runs, f.step, None)
    p = Plan(sizes if buckets is None else _cells(conn, runs, f.step, buckets), buckets, sizes)
    if not p.cells:
        return p
    judges = conn.execute("SELECT count(DISTINCT judge_name) FROM browse_buckets").fetchone()[0] or 1
    steps_of = {}
    for r, s in p.cells:
        steps_of.setdefault(r, set()).add(s)
    if f.set_name is not None:
        p.set_name = f.set_name
        sets = conn.execute(f"SELECT run_id, id, size FROM eval_sets WHERE name = ? AND run_id IN ({_ids(steps_of)})",
                            (f.set_name,)).fetchall()
        members = sum(n * len(steps_of[r]) for r, _, n in sets)
        set_of = " ".join(f"WHEN {int(r)} THEN {int(i)}" for r, i, _ in sets)  # one lookup a row: (set, QA pair)
        p.per_row.append(PerRow("set", "EXISTS (SELECT 1 FROM eval_set_members m WHERE m.set_id = "
                                f"CASE {{b}}.run_id {set_of} END AND m.qa_id = {{b}}.qa_id)", [], members * judges,
                                seeks=1, entries=members))
    if f.disagree is not None:
        sql, p.rare_judge = _disagree(conn, *f.disagree)
        if sql is None:  # judges that never both scored an item cannot disagree
            p.cells = {}
            return p
        rare = sum(n for (r, s), n in _cells(conn, list(steps_of), f.step, p.rare_judge).items() if (r, s) in p.cells)
        p.per_row.append(PerRow("disagree", sql, [], rare * (1 + judges), seeks=0 if "peers" in sql else 4,
                                entries=rare))
    q = fts_query(f.text or "")
    if q is not None:
        p.text = q
        n_triples = conn.execute(
            "SELECT count(*) FROM (SELECT rowid FROM triples_fts WHERE triples_fts MATCH ? LIMIT ?)",
            (q, TEXT_FILTER_MAX + 1)).fetchone()[0]
        if n_triples <= TEXT_EXACT_MAX:  # few triples: their rows counted (one of them can have thousands)
            rows = conn.execute(
                "SELECT count(*) FROM triples_fts CROSS JOIN browse_rows b INDEXED BY idx_browse_rows_triple "
                "ON b.triple_id = triples_fts.rowid WHERE triples_fts MATCH ?", (q,)).fetchone()[0]
        else:  # estimated from the average rows per triple
            per_triple = sum(sizes.values()) / max(1, conn.execute("SELECT max(id) FROM triples").fetchone()[0] or 1)
            rows = int(n_triples * per_triple)
        if n_triples <= TEXT_FILTER_MAX:  # the matches collected once per statement, looked up per row
            p.per_row.append(PerRow("text", "+{b}.triple_id IN (SELECT rowid FROM triples_fts WHERE triples_fts "
                                    "MATCH ?)", [q], rows, entries=n_triples))
        else:  # so many match that a page finds its rows after a few probes (each ~40 us)
            p.per_row.append(PerRow("text", "EXISTS (SELECT 1 FROM triples_fts WHERE triples_fts MATCH ? AND "
                                    "rowid = {b}.triple_id)", [q], rows, seeks=20, entries=n_triples))
    return p


def _cells(conn, runs: list[int], step: int | None, buckets: list[int] | None) -> dict[tuple[int, int], int]:
    """Rows per (run, checkpoint) from browse_counts (any bucket when ``buckets`` is None)."""
    sql = f"SELECT run_id, step, sum(n) FROM browse_counts WHERE n > 0 AND run_id IN ({_ids(runs)})"
    if step is not None:
        sql += f" AND step = {int(step)}"
    if buckets is not None:
        sql += f" AND bucket IN ({_ids(buckets)})"
    return {(r, s): n for r, s, n in conn.execute(sql + " GROUP BY run_id, step").fetchall() if n}


def _can_disagree(conn: sqlite3.Connection, pair: tuple[str, str], buckets: list[int] | None) -> list[int] | None:
    """``buckets`` without those whose rows cannot be in a disagreement of ``pair``: a row of judge A
    that A did not score carries no verdict of A, unless A (the name) has judged with several
    specs, whose judgements of one triple could then differ. None stays None when nothing goes."""
    single = [j for j in set(pair) if conn.execute("SELECT count(*) FROM judge_specs WHERE name = ?", (j,))
              .fetchone()[0] <= 1]
    if not single:
        return buckets
    out = conn.execute(f"SELECT id FROM browse_buckets WHERE status <> 'scored' AND judge_name IN "
                       f"({', '.join('?' * len(single))})", single).fetchall()
    if not out:
        return buckets
    drop = {r[0] for r in out}
    if buckets is None:
        return [r[0] for r in conn.execute("SELECT id FROM browse_buckets ORDER BY id") if r[0] not in drop]
    return [b for b in buckets if b not in drop]


def _disagree(conn: sqlite3.Connection, a: str, b: str) -> tuple[str | None, list[int]]:
    """SQL for "judges ``a`` and ``b`` both scored the row's generation, with different verdicts"
    (None when they cannot), and the scored buckets of the judge with fewer of them.

    A test of the row's ``peers`` bits; judges past the 31st have none, their rows are looked up.
    """
    def ids(judge, verdict=None):
        return [r[0] for r in conn.execute(
            "SELECT id FROM browse_buckets WHERE judge_name = ? AND status = 'scored' AND (? IS NULL OR verdict = ?)",
            (judge, verdict, verdict)).fetchall()]

    if not (ids(a) and ids(b)):
        return None, []
    counts = {j: conn.execute(f"SELECT coalesce(sum(n), 0) FROM browse_counts WHERE bucket IN ({_ids(ids(j))})")
              .fetchone()[0] for j in (a, b)}
    rare = ids(min((a, b), key=lambda j: counts[j]))
    bits = dict(conn.execute("SELECT name, id FROM browse_judges WHERE name IN (?, ?) AND id <= 31", (a, b)))
    if a in bits and b in bits:
        ya, yb = 1 << 2 * (bits[a] - 1), 1 << 2 * (bits[b] - 1)   # "yes" bits; "no" is the next bit up
        return f"(({{b}}.peers & {ya | yb << 1}) = {ya | yb << 1} OR ({{b}}.peers & {ya << 1 | yb}) = {ya << 1 | yb})", rare

    def has(bucket_ids):
        return ("EXISTS (SELECT 1 FROM browse_rows x WHERE x.run_id = {b}.run_id AND x.step = {b}.step "
                f"AND x.qa_id = {{b}}.qa_id AND +x.bucket IN ({_ids(bucket_ids)}))")

    pairs = [(ids(a, "yes"), ids(b, "no")), (ids(a, "no"), ids(b, "yes"))]
    either = [f"({has(x)} AND {has(y)})" for x, y in pairs if x and y]
    return (f"({' OR '.join(either)})" if either else None), rare


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


COLS = ", ".join(f"b.{c}" for c in KEY)


def segment_statement(p: Plan, seg: Segment, collect: bool, ordered: bool = True) -> tuple[str, list]:
    """One segment's keys in page order (then the limit parameter).

    walk     the primary key in page order, the bucket tested in the row;
    collect  the bucket index, the first page kept (SQLite's top-N sort). Per-row filters are
             tested before the sort, except a text probe (~40 us a row): that one runs on the
             sorted rows in order until the page is full (a materialized CTE is read in the
             order it was written; tests/test_tui_queries.py checks the order).
    """
    order = f" ORDER BY {COLS}" if ordered else ""
    residual, params = p.residual()
    if not collect:
        return (f"SELECT {COLS} FROM browse_rows b WHERE {seg.where()} AND {p.bucket_test()} AND {residual}"
                f"{order} LIMIT ?", params)
    index = f"FROM browse_rows b INDEXED BY idx_browse_rows_bucket WHERE b.bucket IN ({_ids(p.buckets)}) AND {seg.where()}"
    if not any(x.sql.startswith("EXISTS (SELECT 1 FROM triples_fts") for x in p.per_row):
        return f"SELECT {COLS} {index} AND {residual}{order} LIMIT ?", params
    residual, params = p.residual("collected")
    return (f"WITH collected AS MATERIALIZED (SELECT {COLS}, b.triple_id, b.peers {index} ORDER BY {COLS}) "
            f"SELECT {', '.join(KEY)} FROM collected WHERE {residual} LIMIT ?", params)


def driver_statement(p: Plan, driver: str, after: Key | None, ordered: bool = True) -> tuple[str, list]:
    """All rows reached from a per-row filter (set members, the rarer judge's groups, text matches),
    the other filters tested per row, the first page kept (then the limit parameter)."""
    runs, steps = sorted({r for r, _ in p.cells}), sorted({s for _, s in p.cells})
    where = [f"b.run_id IN ({_ids(runs)})", f"b.step IN ({_ids(steps)})", p.bucket_test()]
    residual, params = p.residual(skip=driver)
    where.append(residual)
    if driver == "set":
        source = ("eval_sets s CROSS JOIN eval_set_members m ON m.set_id = s.id "
                  "CROSS JOIN browse_rows b ON b.run_id = s.run_id AND b.qa_id = m.qa_id")
        where.insert(0, f"s.name = ? AND s.run_id IN ({_ids(runs)})")
        params = [p.set_name, *params]
    elif driver == "disagree":
        source = ("browse_rows r INDEXED BY idx_browse_rows_bucket CROSS JOIN browse_rows b "
                  "ON b.run_id = r.run_id AND b.step = r.step AND b.qa_id = r.qa_id")
        where.insert(0, f"r.bucket IN ({_ids(p.rare_judge)}) AND r.run_id IN ({_ids(runs)}) "
                        f"AND r.step IN ({_ids(steps)})")
        residual, params = p.residual()  # the driver only finds the groups: disagreement is tested per row
        where[-1] = residual
    else:  # text
        source = ("triples_fts CROSS JOIN browse_rows b INDEXED BY idx_browse_rows_triple "
                  "ON b.triple_id = triples_fts.rowid")
        where.insert(0, "triples_fts MATCH ?")
        params = [p.text, *params]
    if after is not None:
        where.append(f"({COLS}) > (?, ?, ?, ?)")
        params += list(after)
    distinct = "DISTINCT " if driver == "disagree" else ""
    order = f" ORDER BY {COLS}" if ordered else ""
    return f"SELECT {distinct}{COLS} FROM {source} WHERE {' AND '.join(where)}{order} LIMIT ?", params


def choose(p: Plan) -> str | None:
    """The driver a page starts from, or None: walk (or collect by buckets) segment by segment.

    Without per-row filters the counts are exact and the segments decide alone. With them, each
    way is costed in index entries read: collecting by buckets (its rows, plus the per-row tests'
    lookups), starting from a per-row filter (an index lookup per entry point, RANDOM_COST each:
    set member, row of the rarer judge, matching triple; then its candidate rows, read in index
    order, plus the other tests' lookups), or walking in page order (a page over the estimated
    density, times WALK_SAFETY: filters can be correlated, and a walk that finds nothing reads
    the whole range); the cheapest is taken.
    """
    if not p.per_row:
        return None
    seeks = sum(x.seeks for x in p.per_row)
    options = {x.name: x.entries * RANDOM_COST + x.candidates * (1 + seeks - x.seeks)
               for x in p.per_row if x.candidates is not None}
    if p.buckets is not None:
        options["buckets"] = p.total * (1 + seeks)
    density = p.total / max(p.size, 1)
    for x in p.per_row:
        density *= min(1.0, (x.candidates or p.size) / max(p.size, 1))
    walk = min(p.size, PAGE_SIZE / max(density, 1e-12)) * WALK_SAFETY
    best = min(options, key=options.get, default=None)
    return best if best is not None and options[best] <= walk else None


def collects(p: Plan, seg: Segment, driver: str | None) -> bool:
    """Collect a segment's rows from the bucket index (rather than walk): when buckets are the chosen
    driver, or (no per-row filters) when reading every matching row costs less than walking to a page."""
    if p.buckets is None:
        return False
    if driver == "buckets":
        return True
    matching = segment_total(p.cells, seg)
    size = segment_total(p.sizes, seg)
    walk = min(size, PAGE_SIZE * size / max(matching, 1))
    return driver is None and not p.per_row and COLLECT_COST * matching <= walk


def segment_total(cells: dict[tuple[int, int], int], seg: Segment) -> int:
    return sum(cells.get((r, s), 0) for r in seg.runs for s in seg.steps)


def page_keys(conn: sqlite3.Connection, f: Filters, after: Key | None = None,
              limit: int | None = None) -> list[Key]:
    """The keys of one page after the keyset cursor ``after`` (None: the first page)."""
    limit = PAGE_SIZE if limit is None else int(limit)
    p = plan(conn, f)
    if not p.cells:
        return []
    driver = choose(p)
    if driver not in (None, "buckets"):
        sql, params = driver_statement(p, driver, after)
        return [tuple(r) for r in conn.execute(sql, params + [limit]).fetchall()]
    keys: list[Key] = []
    for seg in segments(p, after):
        sql, params = segment_statement(p, seg, collects(p, seg, driver))
        keys += [tuple(r) for r in conn.execute(sql, params + [limit - len(keys)]).fetchall()]
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
    text) is on; then counted up to ``cap`` rows within ``budget_s`` seconds, the way the page
    reads them (else unknown, with the count without the per-row filters as an upper bound)."""
    p = plan(conn, f)
    if not p.per_row or not p.cells:
        return Count(p.total)
    driver = choose(p)
    if driver not in (None, "buckets"):
        sql, params = driver_statement(p, driver, None, ordered=False)
    else:
        seg = segments(p, None)[0]
        sql, params = segment_statement(p, seg, collects(p, seg, driver), ordered=False)
    n = _timed_scalar(conn, f"SELECT count(*) FROM ({sql})", params + [cap + 1], budget_s)
    if n is None:
        return Count(None, at_most=p.total)
    return Count(min(n, cap), capped=n > cap)


def _timed_scalar(conn: sqlite3.Connection, sql: str, params: list, budget_s: float):
    """The first column of the first row, or None when SQLite took longer than budget_s."""
    return budgeted(conn, lambda: conn.execute(sql, params).fetchone()[0], budget_s)


def budgeted(conn: sqlite3.Connection, fn, budget_s: float, every: int | None = None, clock=time.monotonic):
    """fn() (SQL on ``conn``), or None when SQLite was stopped after budget_s seconds of ``clock``;
    the clock is looked at every ``every`` VM steps (default COUNT_CHECK_EVERY)."""
    deadline = clock() + budget_s
    conn.set_progress_handler(lambda: int(clock() > deadline), every or COUNT_CHECK_EVERY)
    try:
        return fn()
    except sqlite3.OperationalError as exc:
        if "interrupt" not in str(exc):
            raise
        return None
    finally:
        conn.set_progress_handler(None, 0)
