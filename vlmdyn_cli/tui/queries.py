"""The SQL the TUI runs, as plain functions over a sqlite3 connection.

One browser row is one judgement of one generation: a generation (run, step,
QA pair, prediction) joined through its triple hash to every judgement of that
triple. Pages are fetched with keyset pagination on
``(run_id, step, qa_id, judgement id)``, which is the order of the unique
index on generations, so a page costs the rows it shows plus the rows the
filters skip, never the whole table (nothing is loaded into memory). How the
SQL is steered so this holds with or without planner statistics: ``_where``.
Latencies at paper scale: benchmarks/bench_tui_filter.py, notes/tui.md.

The queries the TUI shares with the CLI live in ``store/``: run listing
(``store.runs``), judge status (``store.judgement_queries``), samples and
label saving (``store.labels``), the FTS query builder (``store.search``).
Connections must use ``row_factory = sqlite3.Row`` (``tui.store.Store`` does).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, fields
from pathlib import Path

from vlmdyn_cli.store.search import fts_query

PAGE_SIZE = 100
COUNT_CAP = 10_000
COUNT_BUDGET_S = 3.0
COUNT_CHECK_EVERY = 10_000  # SQLite VM steps between two looks at the clock

Key = tuple[int, int, int, int]  # (run_id, step, qa_id, judgement id)


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


# Text search strategy thresholds, see fts_mode(); chosen with benchmarks/bench_tui_filter.py.
FTS_DRIVE_MAX = 2_000     # matching generations
FTS_FILTER_MAX = 30_000   # matching triples


def _where(f: Filters, text_mode: str = "drive", free: bool = False) -> tuple[str, list]:
    """SQL conditions over aliases g (generations) and j (judgements), and their parameters.

    Query-plan steering, so pages stay fast with or without ANALYZE statistics:
    conditions on judgement columns carry a unary ``+`` and QA-pair columns are
    looked up per row, so SQLite never drives a page query from their indexes
    (that plan collects and sorts every match before the first row); with the
    CROSS JOIN of ``FROM`` a page walks generations in page order and stops
    after one page. ``free=True`` drops the ``+`` on the judgement columns (the
    planner may then start from a judgement index: the fast way to *count* a
    selective judgement filter, see ``count``).
    """
    p = "" if free else "+"
    conds: list[str] = []
    params: list = []
    if f.run is not None:
        conds.append("g.run_id = (SELECT id FROM runs WHERE name = ?)")
        params.append(f.run)
    if f.seed is not None:
        conds.append("g.run_id IN (SELECT id FROM runs WHERE seed = ?)")
        params.append(int(f.seed))
    if f.step is not None:
        conds.append("g.step = ?")
        params.append(int(f.step))
    if f.set_name is not None:
        conds.append(
            "EXISTS (SELECT 1 FROM eval_sets s JOIN eval_set_members m ON m.set_id = s.id "
            "WHERE s.run_id = g.run_id AND s.name = ? AND m.qa_id = g.qa_id)")
        params.append(f.set_name)
    for col, value in (("category", f.category), ("subcategory", f.subcategory)):
        if value is not None:
            # a primary-key lookup per scanned row (a join would get a Bloom filter built over
            # the whole qa_pairs table first: 100+ ms before the first row)
            conds.append(f"(SELECT q.{col} FROM qa_pairs q WHERE q.id = g.qa_id) = ?")
            params.append(value)
    if f.judge is not None:
        conds.append(f"{p}j.judge_name = ?")
        params.append(f.judge)
    if f.verdict is not None:
        conds.append(f"{p}j.verdict = ?")
        params.append(f.verdict)
    if f.status is not None:
        conds.append(f"{p}j.status = ?")
        params.append(f.status)
    if f.disagree is not None:
        a, b = f.disagree
        conds.append(
            "EXISTS (SELECT 1 FROM judgements ja JOIN judgements jb ON jb.triple_hash = ja.triple_hash "
            "WHERE ja.triple_hash = g.triple_hash AND +ja.judge_name = ? AND +jb.judge_name = ? "
            "AND +ja.status = 'scored' AND +jb.status = 'scored' AND +ja.verdict <> +jb.verdict)")
        params += [a, b]
    q = fts_query(f.text or "")
    if q is not None:
        hashes = "SELECT t.hash FROM triples t WHERE t.id IN (SELECT rowid FROM triples_fts WHERE triples_fts MATCH ?)"
        if text_mode == "probe":  # very common words: check each scanned generation (stops after a page)
            conds.append(
                "EXISTS (SELECT 1 FROM triples t JOIN triples_fts ON triples_fts.rowid = t.id "
                "WHERE t.hash = g.triple_hash AND triples_fts MATCH ?)")
        elif text_mode == "filter":  # collect the matches once, test scanned generations against them
            conds.append(f"+g.triple_hash IN ({hashes})")
        else:  # rare words ("drive"): start from the few matching triples, sort them
            conds.append(f"g.triple_hash IN ({hashes})")
        params.append(q)
    return (" AND ".join(conds) or "1"), params


def fts_mode(conn: sqlite3.Connection, f: Filters) -> str:
    """How to apply the text search, from capped counts of what matches.

    drive  (at most FTS_DRIVE_MAX matching generations): start from the matches, sort them;
    filter (at most FTS_FILTER_MAX matching triples): collect the matching triples once and
           test generations against them while scanning in page order;
    probe  (more triples): scan generations in page order and ask the FTS index per row,
           which finds a page quickly exactly because so many rows match.
    Generations are counted, not just triples: one triple ("Is this a children's book?" /
    "No" / "No") can stand for thousands of generations.
    """
    q = fts_query(f.text or "")
    if q is None:
        return "drive"
    n_triples = conn.execute(
        "SELECT count(*) FROM (SELECT rowid FROM triples_fts WHERE triples_fts MATCH ? LIMIT ?)",
        (q, FTS_FILTER_MAX + 1)).fetchone()[0]
    if n_triples > FTS_FILTER_MAX:
        return "probe"
    n_gens = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM generations WHERE triple_hash IN (SELECT t.hash FROM triples t "
        "WHERE t.id IN (SELECT rowid FROM triples_fts WHERE triples_fts MATCH ?)) LIMIT ?)",
        (q, FTS_DRIVE_MAX + 1)).fetchone()[0]
    return "drive" if n_gens <= FTS_DRIVE_MAX else "filter"


# CROSS JOIN keeps generations the outer loop (SQLite never reorders a CROSS JOIN)
FROM = "generations g CROSS JOIN judgements j ON j.triple_hash = g.triple_hash"


def _order_columns(f: Filters) -> list[str]:
    """The page order (run, step, qa, judgement) without the columns a filter fixes to one value.

    Leaving fixed columns out of ORDER BY and of the keyset comparison lets SQLite
    walk an index that starts with the fixed column (e.g. step) instead of scanning.
    """
    cols = []
    if f.run is None:
        cols.append("g.run_id")
    if f.step is None:
        cols.append("g.step")
    return cols + ["g.qa_id", "j.id"]


def page(conn: sqlite3.Connection, f: Filters, after: Key | None = None, limit: int | None = None) -> list[dict]:
    """One page of browser rows after the keyset cursor ``after`` (None: the first page)."""
    limit = PAGE_SIZE if limit is None else limit
    where, params = _where(f, text_mode=fts_mode(conn, f))
    cols = _order_columns(f)
    if after is not None:
        full = dict(zip(("g.run_id", "g.step", "g.qa_id", "j.id"), after))
        where += f" AND ({', '.join(cols)}) > ({', '.join('?' * len(cols))})"
        params = params + [full[c] for c in cols]
    keys = conn.execute(
        f"SELECT g.id AS gid, j.id AS jid FROM {FROM} WHERE {where} "
        f"ORDER BY {', '.join(cols)} LIMIT ?", params + [int(limit)]).fetchall()
    if not keys:
        return []
    return rows_for(conn, [(k["gid"], k["jid"]) for k in keys])


def rows_for(conn: sqlite3.Connection, pairs: list[tuple[int, int]]) -> list[dict]:
    """Display columns for (generation id, judgement id) pairs, in the given order."""
    out = []
    for gid, jid in pairs:
        r = conn.execute(
            "SELECT g.id AS gid, j.id AS jid, g.run_id, g.qa_id, r.name AS run, r.seed, g.step, "
            "q.category, q.subcategory, j.judge_name AS judge, j.status, j.verdict, "
            "q.question, q.answer, g.prediction, "
            "(SELECT group_concat(s.name, ' ') FROM eval_set_members m JOIN eval_sets s ON s.id = m.set_id "
            " WHERE m.qa_id = g.qa_id AND s.run_id = g.run_id) AS sets "
            "FROM generations g JOIN judgements j ON j.id = ? JOIN runs r ON r.id = g.run_id "
            "JOIN qa_pairs q ON q.id = g.qa_id WHERE g.id = ?", (jid, gid)).fetchone()
        if r is not None:
            d = dict(r)
            d["key"] = (d["run_id"], d["step"], d["qa_id"], d["jid"])
            out.append(d)
    return out


def count(conn: sqlite3.Connection, f: Filters, cap: int = COUNT_CAP,
          budget_s: float = COUNT_BUDGET_S) -> tuple[int | None, bool]:
    """How many rows match, counting at most ``cap``; returns (n, capped).

    First the steered plan of the pages (predictable on any database, fast when
    matches are dense), for half the time budget; if that runs out, a free plan
    (plain JOIN, judgement indexes allowed: fast for a selective judgement filter
    such as status=unscored) for the other half. When both give up the result is
    (None, False), shown as "of ?", instead of keeping a worker busy for minutes.
    """
    mode = fts_mode(conn, f)
    for free in (False, True):
        where, params = _where(f, text_mode=mode, free=free)
        source = FROM.replace("CROSS JOIN", "JOIN") if free else FROM
        n = _timed_scalar(conn, f"SELECT count(*) FROM (SELECT 1 FROM {source} WHERE {where} LIMIT ?)",
                          params + [cap + 1], budget_s / 2)
        if n is not None:
            return min(n, cap), n > cap
    return None, False


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


# ---------------------------------------------------------------- filter choices

def choices(conn: sqlite3.Connection) -> dict[str, list]:
    """The values each filter can take (small tables only: fast on any database size)."""
    def col(sql):
        return [r[0] for r in conn.execute(sql).fetchall() if r[0] is not None]

    steps = col("SELECT DISTINCT step FROM checkpoints ORDER BY step")
    if not steps:
        steps = col("SELECT DISTINCT step FROM generations ORDER BY step")
    return {
        "run": col("SELECT name FROM runs ORDER BY seed, name"),
        "seed": col("SELECT DISTINCT seed FROM runs ORDER BY seed"),
        "step": steps,
        "set_name": col("SELECT name FROM eval_sets GROUP BY name ORDER BY min(kind), min(k_step), name"),
        "category": col("SELECT DISTINCT category FROM qa_pairs WHERE category IS NOT NULL ORDER BY category"),
        "subcategory": col("SELECT DISTINCT subcategory FROM qa_pairs WHERE subcategory IS NOT NULL "
                           "ORDER BY subcategory"),
        "judge": col("SELECT DISTINCT name FROM judge_specs ORDER BY name"),
        "verdict": ["yes", "no"],
        "status": ["scored", "unscored"],
    }


# ---------------------------------------------------------------- overview

def judge_specs(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(label, spec hash) of every judge spec that judged something, for the grid and plots selects.

    Labels are judge names; when one name has several specs (a changed prompt makes a new
    judge) the hash prefix is added.
    """
    from vlmdyn_cli.plots import aggregate as A

    run_ids = [r[0] for r in conn.execute("SELECT id FROM runs").fetchall()]
    found = A.judges_for(conn, run_ids) if run_ids else []
    names = [j.name for j, _ in found]
    return sorted(((j.name if names.count(j.name) == 1 else j.label), j.hash) for j, _ in found)


def accuracy_grid(conn: sqlite3.Connection, run: str, spec_hash: str) -> list[dict]:
    """Accuracy cells of one run under one judge spec, per (checkpoint step, eval set, category).

    The numbers come from the plots aggregation (``vlmdyn_cli.plots.aggregate``), the same as
    ``vlmdyn plot``: its plot_cells cache is brought up to date first, so ``conn`` must be
    writable and outside a transaction. ``acc`` = yes / scored; unscored items are counted
    apart, ``missing`` = generations this judge has not judged yet.
    """
    from vlmdyn_cli.plots import aggregate as A

    name = conn.execute("SELECT name FROM judge_specs WHERE hash = ?", (spec_hash,)).fetchone()
    sel = A.Selection(A.select_runs(conn, runs=[run]), A.JudgeRef(spec_hash, name[0] if name else spec_hash))
    A.ensure_cells(conn, sel)
    rows = conn.execute(
        "SELECT c.step, s.name AS set_name, s.kind, s.k_step, coalesce(c.category, '?') AS category, "
        "sum(c.yes) AS yes, sum(c.scored) AS scored, sum(c.unscored) AS unscored, sum(c.unjudged) AS missing "
        "FROM plot_cells c JOIN eval_sets s ON s.id = c.set_id WHERE c.spec_hash = ? AND c.run_id = ? "
        "GROUP BY c.step, s.id, c.category ORDER BY c.step, s.kind, s.k_step, s.name, c.category",
        (spec_hash, sel.runs[0].id)).fetchall()
    out = []
    for r in rows:
        d = dict(zip(("step", "set_name", "kind", "k_step", "category", "yes", "scored", "unscored", "missing"), r))
        d["n"] = d["scored"] + d["unscored"] + d["missing"]
        d["acc"] = (d["yes"] / d["scored"]) if d["scored"] else None
        out.append(d)
    return out


# ---------------------------------------------------------------- detail

def item(conn: sqlite3.Connection, gid: int) -> dict | None:
    r = conn.execute(
        "SELECT g.id AS gid, g.run_id, g.step, g.qa_id, g.prediction, g.triple_hash, g.backend, "
        "r.name AS run, r.seed, q.question, q.answer, q.category, q.subcategory, q.true_category, "
        "c.image_path, c.source, d.image_root, "
        "(SELECT group_concat(s.name, ' ') FROM eval_set_members m JOIN eval_sets s ON s.id = m.set_id "
        " WHERE m.qa_id = g.qa_id AND s.run_id = g.run_id) AS sets "
        "FROM generations g JOIN runs r ON r.id = g.run_id JOIN qa_pairs q ON q.id = g.qa_id "
        "JOIN conversations c ON c.id = q.conversation_id JOIN datasets d ON d.id = q.dataset_id "
        "WHERE g.id = ?", (gid,)).fetchone()
    return dict(r) if r else None


def verdicts(conn: sqlite3.Connection, triple_hash: str) -> list[dict]:
    """Every judge's judgement of one triple."""
    return [dict(r) for r in conn.execute(
        "SELECT judge_name AS judge, resolved_model, status, verdict, reason, decided_by, raw, ms, md, h, "
        "p_yes, latency_s, cost_usd FROM judgements WHERE triple_hash = ? ORDER BY judge_name",
        (triple_hash,)).fetchall()]


def history(conn: sqlite3.Connection, run_id: int, qa_id: int) -> list[dict]:
    """The same QA pair at every checkpoint of the run, with each judge's verdict."""
    out: dict[int, dict] = {}
    for r in conn.execute(
            "SELECT g.step, g.prediction, j.judge_name, j.status, j.verdict FROM generations g "
            "LEFT JOIN judgements j ON j.triple_hash = g.triple_hash "
            "WHERE g.run_id = ? AND g.qa_id = ? ORDER BY g.step, j.judge_name", (run_id, qa_id)).fetchall():
        d = out.setdefault(r["step"], {"step": r["step"], "prediction": r["prediction"], "verdicts": {}})
        if r["judge_name"] is not None:
            d["verdicts"][r["judge_name"]] = r["verdict"] if r["status"] == "scored" else "unscored"
    return list(out.values())


def image_file(image_root: str | None, image_path: str | None, db_path: Path | None = None) -> Path | None:
    """The image of an item when the file exists (root taken as given, else relative to the DB)."""
    if not image_path:
        return None
    candidates = []
    if image_root:
        candidates.append(Path(image_root) / image_path)
        if db_path is not None and not Path(image_root).is_absolute():
            candidates.append(Path(db_path).parent / image_root / image_path)
    candidates.append(Path(image_path))
    for c in candidates:
        if c.is_file():
            return c
    return None


# ---------------------------------------------------------------- rater

def rater_items(conn: sqlite3.Connection, sample: str, rater: str) -> list[dict]:
    """The sample's items in draw order, with this rater's label (None when not labelled yet).

    The judges' verdicts are deliberately not part of this query.
    """
    return [dict(r) for r in conn.execute(
        "SELECT ci.item_id, ci.triple_hash, ci.category, ci.subcategory, t.question, t.answer, t.prediction, "
        "hl.label FROM calibration_items ci JOIN triples t ON t.hash = ci.triple_hash "
        "LEFT JOIN human_labels hl ON hl.triple_hash = ci.triple_hash AND hl.rater = ? "
        "WHERE ci.sample = ? ORDER BY ci.rowid", (rater, sample)).fetchall()]


def triple_image(conn: sqlite3.Connection, triple_hash: str) -> tuple[str | None, str | None]:
    """(image_root, image_path) of some generation of this triple, for showing its picture."""
    r = conn.execute(
        "SELECT d.image_root, c.image_path FROM generations g JOIN qa_pairs q ON q.id = g.qa_id "
        "JOIN conversations c ON c.id = q.conversation_id JOIN datasets d ON d.id = q.dataset_id "
        "WHERE g.triple_hash = ? LIMIT 1", (triple_hash,)).fetchone()
    return (r[0], r[1]) if r else (None, None)
