"""Reading stored generations (``vlmdyn generations list``)."""

from __future__ import annotations

from vlmdyn_cli.errors import BadInput

LIST_COLUMNS = ("run", "step", "qa_id", "category", "question", "answer", "prediction", "backend",
                "gen_config_hash", "triple_hash", "created_at")


def list_generations(db, *, run_id: int | None = None, step: int | None = None, set_name: str | None = None,
                     limit: int = 20) -> list[dict]:
    """Stored answers next to their question and reference, by run, step and QA pair.

    ``set_name`` keeps the QA pairs of the run's evaluation set of that name; BadInput when
    no run has a set of that name.
    """
    where, args = [], []
    if run_id is not None:
        where.append("g.run_id = ?")
        args.append(run_id)
    if step is not None:
        where.append("g.step = ?")
        args.append(step)
    if set_name is not None:
        if not db.execute("SELECT 1 FROM eval_sets WHERE name = ?", [set_name]).fetchone():
            raise BadInput(f"no evaluation set named '{set_name}' (see `vlmdyn sets list`)")
        where.append("g.qa_id IN (SELECT qa_id FROM eval_set_members WHERE set_id IN "
                     "(SELECT s.id FROM eval_sets s WHERE s.name = ? AND s.run_id = g.run_id))")
        args.append(set_name)
    sql = ("SELECT r.name, g.step, g.qa_id, q.category, q.question, q.answer, g.prediction, g.backend, "
           "g.gen_config_hash, g.triple_hash, g.created_at FROM generations g "
           "JOIN runs r ON r.id = g.run_id JOIN qa_pairs q ON q.id = g.qa_id")
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY r.name, g.step, g.qa_id LIMIT ?"
    return [dict(zip(LIST_COLUMNS, r)) for r in db.execute(sql, args + [limit])]
