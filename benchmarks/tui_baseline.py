"""The judgements browser's page and count queries as they were before browse_rows (issue 19):
the baseline of benchmarks/bench_tui_filter.py, kept verbatim from vlmdyn_cli/tui/queries.py at
commit 16ac78c (main before issue 19). One browser row is a generation joined through its triple
hash to each judgement; pages walk generations in page order (keyset on run, step, qa, judgement),
with every filter tested per generation.
"""

from __future__ import annotations

import sqlite3
from vlmdyn_cli.store.search import fts_query
from vlmdyn_cli.tui.browse import Filters, budgeted

PAGE_SIZE = 100
COUNT_CAP = 10_000
COUNT_BUDGET_S = 3.0
COUNT_CHECK_EVERY = 10_000  # SQLite VM steps between two looks at the clock

Key = tuple[int, int, int, int]  # (run_id, step, qa_id, judgement id)


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
    return budgeted(conn, lambda: conn.execute(sql, params).fetchone()[0], budget_s, COUNT_CHECK_EVERY)

