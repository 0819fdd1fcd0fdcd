"""Read-only views over stored judgements (``vlmdyn judgements list|status|export``)."""

from __future__ import annotations

import re

from sqlite_utils import Database

from vlmdyn_cli.errors import BadInput

ROW_COLUMNS = ("id", "judge_name", "spec_hash", "resolved_model", "status", "verdict", "reason", "decided_by",
               "ms", "md", "h", "p_yes", "prompt_tokens", "completion_tokens", "cost_usd", "latency_s",
               "created_at", "triple_hash", "question", "answer", "prediction", "raw")


def fts_query(text: str) -> str:
    """User text as a safe FTS5 query: every word a quoted term, all required."""
    words = re.findall(r"\w+", text, flags=re.UNICODE)
    if not words:
        raise BadInput(f"search text {text!r} has no words to search for")
    return " ".join(f'"{w}"' for w in words)


def _filters(judge: str | None, verdict: str | None, status: str | None, search: str | None):
    where, args = [], []
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
        where.append("t.rowid IN (SELECT rowid FROM triples_fts WHERE triples_fts MATCH ?)")
        args.append(fts_query(search))
    return (" WHERE " + " AND ".join(where)) if where else "", args


def iter_judgements(db: Database, *, judge: str | None = None, verdict: str | None = None,
                    status: str | None = None, search: str | None = None, limit: int | None = None,
                    newest_first: bool = True):
    where, args = _filters(judge, verdict, status, search)
    cols = ", ".join(f"t.{c}" if c in ("question", "answer", "prediction") else f"j.{c}" for c in ROW_COLUMNS)
    sql = (f"SELECT {cols} FROM judgements j LEFT JOIN triples t ON t.hash = j.triple_hash{where} "
           f"ORDER BY j.id {'DESC' if newest_first else 'ASC'}")
    if limit:
        sql += f" LIMIT {int(limit)}"
    for row in db.conn.execute(sql, args):
        yield dict(zip(ROW_COLUMNS, row))


def judge_status(db: Database) -> list[dict]:
    """Per judge (and spec version): counts, accuracy over scored items, cost, mean latency."""
    sql = """
        SELECT j.judge_name, j.spec_hash, COUNT(*) AS n,
               SUM(j.status = 'scored') AS scored, SUM(j.status = 'unscored') AS unscored,
               SUM(j.verdict = 'yes') AS yes, SUM(j.verdict = 'no') AS no,
               SUM(j.cost_usd) AS cost_usd, SUM(j.cost_usd IS NULL) AS n_cost_unknown,
               AVG(j.latency_s) AS mean_latency_s,
               GROUP_CONCAT(DISTINCT j.resolved_model) AS resolved_models,
               MAX(j.created_at) AS last_at
        FROM judgements j GROUP BY j.judge_name, j.spec_hash ORDER BY j.judge_name, last_at
    """
    out = []
    for r in db.conn.execute(sql):
        d = dict(zip(("judge", "spec_hash", "n", "scored", "unscored", "yes", "no", "cost_usd", "n_cost_unknown",
                      "mean_latency_s", "resolved_models", "last_at"), r))
        d["accuracy"] = d["yes"] / d["scored"] if d["scored"] else None
        d["accuracy_excludes_unscored"] = d["unscored"]
        out.append(d)
    return out
