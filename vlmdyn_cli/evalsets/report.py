"""What `vlmdyn sets list` shows: each set's size, category mix and overlap checks.

The checks are computed from the manifest every time, never taken from the
definition:

- seen@k: ``not_trained_by_k`` = members whose conversation the manifest does
  not place at a step <= k (must be 0).
- unseen sets (L = the set's ``after_step``):
    * ``trained_members``: members whose conversation was trained at a step <= L
      (must be 0);
    * ``violating_images``: distinct member images that occur in a conversation
      trained at a step <= L (0 under ``--dedup image``; > 0 is expected under
      ``pair``/``none`` when the data re-uses images);
    * ``repeated_pairs``: members whose exact (image, question, answer) was
      trained at a step <= L (0 under ``image`` and ``pair``).
"""

from __future__ import annotations

import json

from sqlite_utils import Database

from vlmdyn_cli.evalsets.sampling import UNCATEGORISED
from vlmdyn_cli.evalsets.selection import repeated_pairs


def list_sets(db: Database, run_name: str | None = None) -> list[dict]:
    sql = ("SELECT s.id, r.name, r.id, s.name, s.kind, s.k_step, s.dedup, s.size, s.seed, "
           "s.definition_json, s.created_at FROM eval_sets s JOIN runs r ON r.id = s.run_id")
    params: list = []
    if run_name is not None:
        sql += " WHERE r.name = ?"
        params.append(run_name)
    sql += " ORDER BY r.name, s.kind, s.k_step, s.name"
    out = []
    for sid, run, run_id, name, kind, k, dedup, size, seed, definition, created in \
            db.execute(sql, params).fetchall():
        d = json.loads(definition)
        info = {"run": run, "name": name, "kind": kind, "k_step": k, "dedup": dedup, "size": size,
                "seed": seed if kind == "unseen" else None, "stratify": d.get("stratify"),
                "after_step": d.get("after_step"), "created_at": created,
                "categories": category_mix(db, sid)}
        info["checks"] = (seen_checks(db, sid, run_id, k) if kind == "seen"
                          else unseen_checks(db, sid, run_id, d["after_step"]))
        out.append(info)
    return out


def category_mix(db: Database, set_id: int) -> dict[str, int]:
    rows = db.execute(
        "SELECT COALESCE(q.category, ?), count(*) FROM eval_set_members m "
        "JOIN qa_pairs q ON q.id = m.qa_id WHERE m.set_id = ? GROUP BY 1 ORDER BY 1",
        [UNCATEGORISED, set_id])
    return {c: n for c, n in rows}


def seen_checks(db: Database, set_id: int, run_id: int, k: int) -> dict[str, int]:
    (n,) = db.execute(
        """SELECT count(*) FROM eval_set_members m JOIN qa_pairs q ON q.id = m.qa_id
           LEFT JOIN run_order o ON o.run_id = ? AND o.conversation_id = q.conversation_id
           WHERE m.set_id = ? AND (o.step IS NULL OR o.step > ?)""",
        [run_id, set_id, k]).fetchone()
    return {"not_trained_by_k": n}


def unseen_checks(db: Database, set_id: int, run_id: int, last: int) -> dict[str, int]:
    (trained,) = db.execute(
        """SELECT count(*) FROM eval_set_members m JOIN qa_pairs q ON q.id = m.qa_id
           JOIN run_order o ON o.run_id = ? AND o.conversation_id = q.conversation_id
           WHERE m.set_id = ? AND o.step <= ?""",
        [run_id, set_id, last]).fetchone()
    (images,) = db.execute(
        """SELECT count(DISTINCT COALESCE(q.image_id, c.image_id)) FROM eval_set_members m
           JOIN qa_pairs q ON q.id = m.qa_id JOIN conversations c ON c.id = q.conversation_id
           WHERE m.set_id = ? AND COALESCE(q.image_id, c.image_id) IN (
               SELECT tc.image_id FROM run_order o JOIN conversations tc ON tc.id = o.conversation_id
               WHERE o.run_id = ? AND o.step <= ? AND tc.image_id IS NOT NULL
               UNION
               SELECT tq.image_id FROM run_order o JOIN qa_pairs tq ON tq.conversation_id = o.conversation_id
               WHERE o.run_id = ? AND o.step <= ? AND tq.image_id IS NOT NULL)""",
        [set_id, run_id, last, run_id, last]).fetchone()
    ids = [r[0] for r in db.execute("SELECT qa_id FROM eval_set_members WHERE set_id = ?", [set_id])]
    return {"trained_members": trained, "violating_images": images,
            "repeated_pairs": len(repeated_pairs(db, run_id, last, ids))}
