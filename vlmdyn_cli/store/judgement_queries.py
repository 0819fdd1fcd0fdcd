"""Reading stored judgements: list and search them, and each judge's status.

Used by ``vlmdyn judgements list|status|export`` and by the TUI overview.
Functions take a sqlite_utils ``Database`` or a ``sqlite3.Connection`` (any
row factory) and return plain dicts.
"""

from __future__ import annotations

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.store.search import fts_query

ROW_COLUMNS = ("id", "judge_name", "spec_hash", "resolved_model", "status", "verdict", "reason", "decided_by",
               "ms", "md", "h", "rubric_score", "p_yes", "prompt_tokens", "completion_tokens", "cost_usd", "latency_s",
               "created_at", "triple_hash", "question", "answer", "prediction", "raw")


def _filters(judge: str | None, verdict: str | None, status: str | None, search: str | None,
             min_score: float | None = None, max_score: float | None = None, input_files: list[int] | None = None):
    where, args = [], []
    if input_files is not None:   # ids of recorded input files (store/input_files.py)
        where.append("j.triple_hash IN (SELECT triple_hash FROM input_file_rows WHERE file_id IN "
                     f"({', '.join(str(int(i)) for i in input_files) or 'NULL'}))")
    for bound, op, flag in ((min_score, ">=", "--min-score"), (max_score, "<=", "--max-score")):
        if bound is not None:
            if not 1 <= bound <= 5:
                raise BadInput(f"{flag} is a rubric score between 1 and 5 (the mean of MS, MD and H), got {bound}")
            where.append(f"j.rubric_score {op} ?")
            args.append(bound)
    if judge:
        where.append("j.judge_name = ?")
        args.append(judge)
    if verdict:
        if verdict not in ("yes", "no"):
            raise BadInput(f"--verdict must be yes or no, not {verdict!r}")
        where.append("j.verdict = ?")
        args.append(verdict)
    if status:
        if status not in ("scored", "unscored"):
            raise BadInput(f"--status must be scored or unscored, not {status!r}")
        where.append("j.status = ?")
        args.append(status)
    if search:
        query = fts_query(search)
        if query is None:
            raise BadInput(f"search text {search!r} has no words to search for")
        where.append("t.rowid IN (SELECT rowid FROM triples_fts WHERE triples_fts MATCH ?)")
        args.append(query)
    return (" WHERE " + " AND ".join(where)) if where else "", args


def iter_judgements(db, *, judge: str | None = None, verdict: str | None = None,
                    status: str | None = None, search: str | None = None, limit: int | None = None,
                    newest_first: bool = True, min_score: float | None = None, max_score: float | None = None,
                    input_files: list[int] | None = None):
    """Judgements with their triple's text (ROW_COLUMNS), filtered, newest (or oldest) first;
    ``input_files``: only the triples of these recorded input files."""
    where, args = _filters(judge, verdict, status, search, min_score, max_score, input_files)
    cols = ", ".join(f"t.{c}" if c in ("question", "answer", "prediction") else f"j.{c}" for c in ROW_COLUMNS)
    sql = (f"SELECT {cols} FROM judgements j LEFT JOIN triples t ON t.hash = j.triple_hash{where} "
           f"ORDER BY j.id {'DESC' if newest_first else 'ASC'}")
    if limit:
        sql += f" LIMIT {int(limit)}"
    for row in db.execute(sql, args):
        yield dict(zip(ROW_COLUMNS, row))


def judge_names(db) -> list[str]:
    """The names of the judges with judgements in this database."""
    return [r[0] for r in db.execute("SELECT DISTINCT judge_name FROM judgements ORDER BY 1")]


def count_judgements(db, *, judge: str | None = None) -> int:
    where, args = _filters(judge, None, None, None)
    return db.execute(f"SELECT COUNT(*) FROM judgements j{where}", args).fetchone()[0]


# Every column read here is in idx_tui_judgements_summary(judge_name, status, verdict, cost_usd,
# latency_s), so the per-name summary is an index-only scan (the TUI overview on millions of rows).
# Only what cannot be derived is aggregated (each aggregate costs per row): a judgement is scored or
# unscored, and a scored one says yes or no, so scored = n - unscored and no = scored - yes.
_COUNTS = ("COUNT(*) AS n, SUM(j.status = 'unscored') AS unscored, SUM(j.verdict = 'yes') AS yes, "
           "SUM(j.cost_usd) AS cost_usd, AVG(j.latency_s) AS mean_latency_s")
_STATUS_KEYS = ("judge", "spec_hash", "n", "scored", "unscored", "yes", "no", "cost_usd", "n_cost_unknown",
                "mean_latency_s", "resolved_models", "last_at")


def judge_status(db, *, per_spec: bool = True, reporter: Reporter | None = None) -> list[dict]:
    """Per judge: counts, accuracy over scored items (unscored excluded and counted), cost, mean latency.

    ``per_spec=True`` (``vlmdyn judgements status``): one row per judge name and spec version,
    with the judgements of unknown cost, the models the backend resolved and the last
    judgement's time; a spec at a time (the judgements of each counted first from an index), so
    ``reporter`` shows progress in judgements with a rate and ETA (seconds on millions of rows).
    ``per_spec=False`` (the TUI overview): one row per judge name, from the covering index only.
    """
    if not per_spec:
        sql = f"SELECT j.judge_name AS judge, {_COUNTS} FROM judgements j GROUP BY j.judge_name ORDER BY j.judge_name"
        return [_status_row(r) for r in _dicts(db.execute(sql))]
    sizes = db.execute("SELECT spec_hash, COUNT(*) FROM judgements GROUP BY spec_hash").fetchall()
    out = []
    with (reporter or NullReporter()).task("judge status", total=sum(n for _, n in sizes), unit="judgements") as task:
        for spec_hash, n in sizes:
            rows = _dicts(db.execute(
                f"SELECT j.judge_name AS judge, j.spec_hash, {_COUNTS}, SUM(j.cost_usd IS NULL) AS n_cost_unknown, "
                "GROUP_CONCAT(DISTINCT j.resolved_model) AS resolved_models, MAX(j.created_at) AS last_at "
                "FROM judgements j WHERE j.spec_hash = ? GROUP BY j.judge_name", [spec_hash]))
            by = {who or "?": k for who, k in db.execute(
                "SELECT decided_by, COUNT(*) FROM judgements WHERE spec_hash = ? AND status = 'scored' "
                "GROUP BY decided_by ORDER BY 2 DESC", [spec_hash])}
            for r in rows:   # which stage decided how many (a cascade's stages; else the judge itself)
                out.append(_status_row(r) | {"decided_by": by})
            task.advance(n)
    return sorted(out, key=lambda d: (d["judge"], d["last_at"] or ""))


def _dicts(cur) -> list[dict]:
    names = [c[0] for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _status_row(got: dict) -> dict:
    got["scored"] = got["n"] - got["unscored"]
    got["no"] = None if got["yes"] is None else got["scored"] - got["yes"]  # None: no verdict at all
    d = {k: got[k] for k in _STATUS_KEYS if k in got}
    d["accuracy"] = d["yes"] / d["scored"] if d["scored"] else None
    d["accuracy_excludes_unscored"] = d["unscored"]
    return d
