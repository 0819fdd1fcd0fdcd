"""The judgements browser over input files: the judgements of the triples of one judged file
(`vlmdyn judge --input FILE`), or of the triples judged from files before vlmdyn recorded them.

One row is one judgement of one line of the file, in (line, judgement id) order;
pages are keyset pages after the last row shown. The filters that make sense
without a run apply (judge, verdict, status, "judges disagree", text search);
each is tested per row while the file's lines are walked in order (one judgement
index lookup per line), so a page costs at most the file's length: a 100k-line
file is measured in benchmarks/bench_tui_inputs.py. Counts are capped and
budgeted like the run rows' (``browse.count``).
"""

from __future__ import annotations

import sqlite3

from vlmdyn_cli.store.search import fts_query
from vlmdyn_cli.tui.browse import COUNT_BUDGET_S, COUNT_CAP, PAGE_SIZE, TEXT_FILTER_MAX, Count, Filters, budgeted

UNRECORDED = "unrecorded"   # Filters.source of the judgements whose file is not recorded

Key = tuple[int, int]       # (line or position, judgement id)


def file_source(file_id: int) -> str:
    """The ``Filters.source`` value of one recorded input file."""
    return f"file:{int(file_id)}"


def is_input(f: Filters) -> bool:
    return f.source is not None


def _rows(source: str) -> tuple[str, list]:
    """FROM clause giving ``r.pos`` (the order) and ``r.triple_hash`` of the source's lines, and its params."""
    if source == UNRECORDED:
        return ("(SELECT u.id AS pos, u.triple_hash FROM input_unrecorded u WHERE NOT EXISTS "
                "(SELECT 1 FROM input_file_rows x WHERE x.triple_hash = u.triple_hash)) r", [])
    kind, _, ident = source.partition(":")
    if kind != "file" or not ident.isdigit():
        raise ValueError(f"unknown browser source {source!r}")
    return ("(SELECT line AS pos, triple_hash FROM input_file_rows WHERE file_id = ?) r", [int(ident)])


def _where(conn: sqlite3.Connection, f: Filters) -> tuple[list[str], list]:
    where, params = [], []
    for col, value in (("judge_name", f.judge), ("status", f.status), ("verdict", f.verdict)):
        if value is not None:
            where.append(f"j.{col} = ?")
            params.append(value)
    if f.disagree is not None:
        where.append("EXISTS (SELECT 1 FROM judgements a JOIN judgements b ON b.triple_hash = a.triple_hash "
                     "WHERE a.triple_hash = r.triple_hash AND a.judge_name = ? AND b.judge_name = ? "
                     "AND a.status = 'scored' AND b.status = 'scored' AND a.verdict <> b.verdict)")
        params += list(f.disagree)
    q = fts_query(f.text or "")
    if q is not None:
        if _collect_text(conn, f.source, q):   # the matching triples collected once per statement
            where.append("r.triple_hash IN (SELECT t.hash FROM triples t WHERE t.id IN "
                         "(SELECT rowid FROM triples_fts WHERE triples_fts MATCH ?))")
        else:                      # so many match that probing each line finds a page fast
            where.append("EXISTS (SELECT 1 FROM triples t JOIN triples_fts ON triples_fts.rowid = t.id "
                         "WHERE t.hash = r.triple_hash AND triples_fts MATCH ?)")
        params.append(q)
    return where, params


COLLECT_US = 5.0     # collecting one matching triple (FTS entry, triple row, hash into the set), microseconds
PROBE_US = 40.0      # asking the FTS index whether one line's triple matches, microseconds


def _collect_text(conn: sqlite3.Connection, source: str, q: str) -> bool:
    """Collect the triples matching ``q`` once (cost ~ matches in the whole database), or probe the
    FTS index per line walked (cost ~ lines walked until a page is full, estimated from the share of
    triples that match)? The cheaper one."""
    n = conn.execute("SELECT count(*) FROM (SELECT rowid FROM triples_fts WHERE triples_fts MATCH ? LIMIT ?)",
                     (q, TEXT_FILTER_MAX + 1)).fetchone()[0]
    if n > TEXT_FILTER_MAX:
        return False
    triples = conn.execute("SELECT max(id) FROM triples").fetchone()[0] or 1
    lines = _size(conn, source)
    walked = min(lines, PAGE_SIZE * triples / max(n, 1))
    return n * COLLECT_US <= walked * PROBE_US


def _size(conn: sqlite3.Connection, source: str) -> int:
    if source == UNRECORDED:
        return conn.execute("SELECT count(*) FROM input_unrecorded").fetchone()[0]
    row = conn.execute("SELECT n_rows FROM input_files WHERE id = ?", (int(source.split(":")[1]),)).fetchone()
    return row[0] if row else 0


def _judgement_range(conn: sqlite3.Connection, f: Filters) -> tuple[str, list] | None:
    """The judge / status / verdict filters as a range of ``idx_judgements_name`` (judge, status,
    verdict) over the whole database, or None when none of them is set."""
    if f.judge is None and f.status is None and f.verdict is None:
        return None
    judges = [f.judge] if f.judge is not None else [r[0] for r in conn.execute(
        "SELECT DISTINCT name FROM judge_specs ORDER BY name")]
    statuses = [f.status] if f.status is not None else ["scored", "unscored"]
    sql = (f"j.judge_name IN ({', '.join('?' * len(judges))}) AND j.status IN ({', '.join('?' * len(statuses))})"
           + (" AND j.verdict = ?" if f.verdict is not None else ""))
    return sql, judges + statuses + ([f.verdict] if f.verdict is not None else [])


def drives(conn: sqlite3.Connection, f: Filters) -> bool:
    """Start from the judgements matching the judge / status / verdict filters (in the whole
    database, through their index) rather than walk the file's lines? When there are so few of
    them (n) that looking each up (2 seeks) costs less than the walk until a page is full (at
    best PAGE_SIZE x lines / n lines, and never more than the file)."""
    rng = _judgement_range(conn, f)
    if rng is None or f.source == UNRECORDED:
        return False
    lines = _size(conn, f.source)
    n = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM judgements j INDEXED BY idx_judgements_name "
                     f"WHERE {rng[0]} LIMIT ?)", rng[1] + [lines + 1]).fetchone()[0]
    return 2 * n <= min(lines, PAGE_SIZE * lines / max(n, 1))


def statement(conn: sqlite3.Connection, f: Filters, after: Key | None, ordered: bool = True) -> tuple[str, list]:
    """The (pos, judgement id) keys of the rows after ``after``, then the limit parameter: the
    file's lines walked in order, each line's judgements looked up (``idx_judgements_triple_verdict``
    answers judge, status and verdict), or (``drives``) the few matching judgements looked up in the
    file and sorted."""
    source, source_params = _rows(f.source)
    where, params = _where(conn, f)
    if after is not None:
        where.append("(r.pos, j.id) > (?, ?)")
        params += list(after)
    order = " ORDER BY r.pos, j.id" if ordered else ""
    if drives(conn, f):
        rng, rng_params = _judgement_range(conn, f)
        return (f"SELECT r.pos, j.id FROM judgements j INDEXED BY idx_judgements_name CROSS JOIN {source} "
                f"ON r.triple_hash = j.triple_hash WHERE {rng} AND {' AND '.join(where) or '1'}{order} LIMIT ?",
                source_params + rng_params + params)
    return (f"SELECT r.pos, j.id FROM {source} CROSS JOIN judgements j ON j.triple_hash = r.triple_hash "
            f"WHERE {' AND '.join(where) or '1'}{order} LIMIT ?", source_params + params)


def page(conn: sqlite3.Connection, f: Filters, after: Key | None = None, limit: int | None = None) -> list[dict]:
    """One page of rows (display columns) after the keyset cursor ``after``."""
    sql, params = statement(conn, f, after)
    keys = [tuple(r) for r in conn.execute(sql, params + [PAGE_SIZE if limit is None else int(limit)]).fetchall()]
    return rows_for(conn, f.source, keys)


def rows_for(conn: sqlite3.Connection, source: str, keys: list[Key]) -> list[dict]:
    """Display columns of the rows ``keys`` of ``source``, in the given order."""
    out = []
    for pos, jid in keys:
        r = conn.execute(
            "SELECT j.id AS jid, j.judge_name AS judge, j.status, j.verdict, t.hash AS triple_hash, "
            "t.question, t.answer, t.prediction FROM judgements j JOIN triples t ON t.hash = j.triple_hash "
            "WHERE j.id = ?", (jid,)).fetchone()
        if r is None:
            continue
        d = dict(r) | {"key": (pos, jid), "source": source, "gid": None, "line": None, "item_id": None,
                       "file": "(not recorded)"}
        if source != UNRECORDED:
            line = conn.execute(
                "SELECT x.line, x.item_id, f.path FROM input_file_rows x JOIN input_files f ON f.id = x.file_id "
                "WHERE x.file_id = ? AND x.line = ?", (int(source.split(":")[1]), pos)).fetchone()
            if line is not None:
                d["line"], d["item_id"], d["file"] = line[0], line[1], line[2]
        out.append(d)
    return out


def count(conn: sqlite3.Connection, f: Filters, cap: int = COUNT_CAP, budget_s: float = COUNT_BUDGET_S) -> Count:
    """The number of matching rows, counted up to ``cap`` within ``budget_s`` seconds."""
    sql, params = statement(conn, f, None, ordered=False)
    n = budgeted(conn, lambda: conn.execute(f"SELECT count(*) FROM ({sql})", params + [cap + 1]).fetchone()[0],
                 budget_s)
    if n is None:
        return Count(None)
    return Count(min(n, cap), capped=n > cap)


def item(conn: sqlite3.Connection, source: str, pos: int) -> dict | None:
    """One line of an input file (or one unrecorded triple) for the detail screen: its texts, the
    file (path, sha256, when first judged), the line and its id, and where else the triple occurs."""
    if source == UNRECORDED:
        r = conn.execute("SELECT t.hash AS triple_hash, t.question, t.answer, t.prediction FROM input_unrecorded u "
                         "JOIN triples t ON t.hash = u.triple_hash WHERE u.id = ?", (pos,)).fetchone()
        d = None if r is None else dict(r) | {"path": None, "sha256": None, "created_at": None, "line": None,
                                              "item_id": None}
    else:
        r = conn.execute(
            "SELECT t.hash AS triple_hash, t.question, t.answer, t.prediction, f.path, f.sha256, f.created_at, "
            "x.line, x.item_id FROM input_file_rows x JOIN input_files f ON f.id = x.file_id "
            "JOIN triples t ON t.hash = x.triple_hash WHERE x.file_id = ? AND x.line = ?",
            (int(source.split(":")[1]), pos)).fetchone()
        d = None if r is None else dict(r)
    if d is None:
        return None
    d["elsewhere"] = [f"{p} line {n}" for p, n in conn.execute(
        "SELECT f.path, x.line FROM input_file_rows x JOIN input_files f ON f.id = x.file_id "
        "WHERE x.triple_hash = ? ORDER BY f.id, x.line LIMIT 6", (d["triple_hash"],)).fetchall()
        if (p, n) != (d["path"], d["line"])][:5]
    d["generations"] = conn.execute("SELECT count(*) FROM generations WHERE triple_hash = ?",
                                    (d["triple_hash"],)).fetchone()[0]
    return d
