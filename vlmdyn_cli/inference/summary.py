"""String-match accuracy per (checkpoint, set, category): a quick signal, not a judgement.

Rows come from generations joined to set members, so a QA pair in two sets
counts in both. Category ``all`` is the whole set; pairs without a category
are ``uncategorised``.
"""

from __future__ import annotations

from collections import defaultdict

from sqlite_utils import Database

from vlmdyn_cli.evalsets.match import LEVELS, score
from vlmdyn_cli.evalsets.sampling import UNCATEGORISED

LABEL = "string match, not a judgement"


def string_match_rows(db: Database, run_id: int, steps: list[int] | None = None,
                      set_names: list[str] | None = None) -> list[dict]:
    """[{step, set, category, n, exact, normalised, contains}] sorted by set, step, category."""
    sql = """SELECT g.step, s.name, s.kind, s.k_step, COALESCE(q.category, ?), q.answer, g.prediction
             FROM generations g
             JOIN eval_set_members m ON m.qa_id = g.qa_id
             JOIN eval_sets s ON s.id = m.set_id AND s.run_id = g.run_id
             JOIN qa_pairs q ON q.id = g.qa_id
             WHERE g.run_id = ?"""
    args: list = [UNCATEGORISED, run_id]
    if steps is not None:
        sql += f" AND g.step IN ({','.join('?' * len(steps))})"
        args += steps
    if set_names is not None:
        sql += f" AND s.name IN ({','.join('?' * len(set_names))})"
        args += set_names
    acc: dict[tuple, list[int]] = defaultdict(lambda: [0] * (1 + len(LEVELS)))
    order: dict[str, tuple] = {}
    for step, name, kind, k, cat, ans, pred in db.execute(sql, args):
        order[name] = (kind != "seen", k or 0, name)
        sc = score(pred, ans)
        for key in ((step, name, cat), (step, name, "all")):
            cell = acc[key]
            cell[0] += 1
            for i, lvl in enumerate(LEVELS, 1):
                cell[i] += sc[lvl]
    rows = []
    for (step, name, cat), cell in acc.items():
        row = {"step": step, "set": name, "category": cat, "n": cell[0]}
        row.update({lvl: cell[i] / cell[0] for i, lvl in enumerate(LEVELS, 1)})
        rows.append(row)
    rows.sort(key=lambda r: (order[r["set"]], r["step"], r["category"] != "all", r["category"]))
    return rows


def pivot(rows: list[dict], metric: str = "normalised", category: str = "all") -> tuple[list[str], list[dict]]:
    """(columns, rows): one row per set, one column per checkpoint step (named by the step
    number), cells in percent.

    ``n`` is the largest number of answered items of the set over the steps.
    """
    steps = sorted({r["step"] for r in rows})
    table: dict[str, dict] = {}
    for r in rows:
        if r["category"] != category:
            continue
        t = table.setdefault(r["set"], {"set": r["set"], "n": 0})
        t["n"] = max(t["n"], r["n"])
        t[str(r["step"])] = f"{100 * r[metric]:.1f}"
    return ["set", "n"] + [str(s) for s in steps], list(table.values())
