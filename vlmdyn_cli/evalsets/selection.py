"""Which QA pairs can go into a Seen@k or an unseen set (pure SQL over the manifest).

Definitions (METHOD.md section 3):

- A checkpoint saved at step k is written *after* optimizer step k, so every
  conversation the manifest assigns to a step <= k has been trained on by it.
- **Seen@k** = the N QA pairs trained most recently at steps <= k, walking back
  through the manifest by (step desc, position desc). The QA pairs of one
  conversation share its step and position; inside a conversation they are
  taken in turn order, so a set can end part-way through a conversation.
- **Unseen** candidates after step L (the last evaluated checkpoint) = QA pairs
  of kept conversations of the run's dataset that the manifest places after
  step L or not at all, minus, by dedup mode:
    * ``image``: every pair whose image occurs in any conversation trained at
      a step <= L, and any exact repeat of a pair trained at a step <= L
      (this only matters for text-only pairs, which are allowed);
    * ``pair``: only exact (image, question, answer) repeats of a pair trained
      at a step <= L;
    * ``none``: nothing.

The image of a QA pair is ``COALESCE(qa_pairs.image_id, conversations.image_id)``:
images are content-addressed, so the same picture under two paths is one id.
"""

from __future__ import annotations

from sqlite_utils import Database

DEDUP_MODES = ("image", "pair", "none")

# The image of a QA pair q in conversation c.
_QA_IMAGE = "COALESCE(q.image_id, c.image_id)"


def seen_members(db: Database, run_id: int, k: int, n: int) -> list[int]:
    """The (up to) n QA pair ids trained most recently at steps <= k, most recent first."""
    rows = db.execute(
        """
        SELECT q.id FROM run_order o
        JOIN qa_pairs q ON q.conversation_id = o.conversation_id
        WHERE o.run_id = ? AND o.step <= ?
        ORDER BY o.step DESC, o.position DESC, q.turn ASC
        LIMIT ?
        """,
        [run_id, k, n],
    ).fetchall()
    return [r[0] for r in rows]


def unseen_candidates(db: Database, run_id: int, dataset_id: int, last_step: int,
                      dedup: str) -> list[tuple[int, str | None]]:
    """(qa_id, category) of every QA pair allowed in an unseen set after ``last_step``, by id."""
    if dedup not in DEDUP_MODES:
        raise ValueError(f"dedup must be one of {DEDUP_MODES}, not {dedup!r}")
    image_filter = ""
    if dedup == "image":
        image_filter = f"""
          AND ({_QA_IMAGE} IS NULL OR {_QA_IMAGE} NOT IN (
                SELECT tc.image_id FROM run_order tro
                JOIN conversations tc ON tc.id = tro.conversation_id
                WHERE tro.run_id = :run AND tro.step <= :last AND tc.image_id IS NOT NULL
                UNION
                SELECT tq.image_id FROM run_order tro
                JOIN qa_pairs tq ON tq.conversation_id = tro.conversation_id
                WHERE tro.run_id = :run AND tro.step <= :last AND tq.image_id IS NOT NULL))"""
    rows = db.execute(
        f"""
        SELECT q.id, q.category FROM qa_pairs q
        JOIN conversations c ON c.id = q.conversation_id
        LEFT JOIN run_order o ON o.run_id = :run AND o.conversation_id = c.id
        WHERE c.dataset_id = :ds AND c.kept = 1 AND (o.step IS NULL OR o.step > :last)
        {image_filter}
        ORDER BY q.id
        """,
        {"run": run_id, "ds": dataset_id, "last": last_step},
    ).fetchall()
    if dedup == "none":
        return [(r[0], r[1]) for r in rows]
    repeats = repeated_pairs(db, run_id, last_step, [r[0] for r in rows])
    return [(r[0], r[1]) for r in rows if r[0] not in repeats]


def repeated_pairs(db: Database, run_id: int, last_step: int, qa_ids: list[int]) -> set[int]:
    """Those of ``qa_ids`` whose exact (image, question, answer) was trained at a step <= last_step.

    One scan over the trained pairs, probing a temporary index of the given pairs.
    """
    if not qa_ids:
        return set()
    conn = db.conn
    conn.execute("DROP TABLE IF EXISTS temp._vlmdyn_probe")
    conn.execute("CREATE TEMP TABLE _vlmdyn_probe (qa_id INTEGER PRIMARY KEY, image_id INTEGER, "
                 "question TEXT, answer TEXT)")
    try:
        conn.executemany("INSERT INTO temp._vlmdyn_probe(qa_id) VALUES (?)", [(i,) for i in qa_ids])
        conn.execute(
            f"""UPDATE temp._vlmdyn_probe SET (image_id, question, answer) = (
                SELECT {_QA_IMAGE}, q.question, q.answer FROM qa_pairs q
                JOIN conversations c ON c.id = q.conversation_id
                WHERE q.id = temp._vlmdyn_probe.qa_id)"""
        )
        conn.execute("CREATE INDEX temp._vlmdyn_probe_text ON _vlmdyn_probe(question, answer)")
        rows = conn.execute(
            f"""
            SELECT DISTINCT p.qa_id FROM run_order o
            JOIN conversations c ON c.id = o.conversation_id
            JOIN qa_pairs q ON q.conversation_id = o.conversation_id
            JOIN temp._vlmdyn_probe p
              ON p.question = q.question AND p.answer = q.answer AND p.image_id IS {_QA_IMAGE}
            WHERE o.run_id = ? AND o.step <= ? AND p.qa_id != q.id
            """,
            [run_id, last_step],
        ).fetchall()
    finally:
        conn.execute("DROP TABLE IF EXISTS temp._vlmdyn_probe")
    return {r[0] for r in rows}
