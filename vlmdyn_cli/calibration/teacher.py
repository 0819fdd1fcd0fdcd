"""Teacher labels: when there are no (or few) human labels, a strong judge labels a sample.

``teacher_labels`` draws ``n`` triples from the database (a run's generations, or every
stored triple), has the teacher judge them (cached as always: a rerun pays nothing twice)
and returns its scored verdicts as labels. A cheap judge fitted on them
(calibration/fit.py) then judges the rest of the experiment for nothing: the price of a
few thousand teacher calls instead of every item.
"""

from __future__ import annotations

import random

from sqlite_utils import Database

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.judging.spec import JudgeSpec
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.store import judgements as store


def draw(db: Database, n: int, run: str | None = None, seed: int = 0) -> list[str]:
    """``n`` triple hashes drawn at random (all of them when there are fewer)."""
    if run is not None:
        from vlmdyn_cli.judging.run import run_triple_hashes

        hashes = sorted(set(run_triple_hashes(db, run)))
    else:
        hashes = [r[0] for r in db.conn.execute("SELECT hash FROM triples ORDER BY hash")]
    if not hashes:
        raise BadInput("no triples to draw from: run `vlmdyn infer` first, or import items to judge")
    return sorted(random.Random(seed).sample(hashes, min(n, len(hashes))))


def teacher_labels(db: Database, teacher: JudgeSpec, n: int, run: str | None = None, seed: int = 0,
                   reporter: Reporter = NullReporter()) -> dict[str, str]:
    """triple hash -> the teacher's yes/no, for the scored ones of ``n`` drawn triples."""
    from vlmdyn_cli.judging.run import judge_triples

    hashes = draw(db, n, run, seed)
    judge_triples(db, teacher, hashes, reporter=reporter)
    rows = store.rows_of(db, teacher.hash, hashes)
    labels = {h: r.verdict for h, r in rows.items() if r.status == "scored" and r.verdict in ("yes", "no")}
    reporter.info(f"teacher {teacher.name}: {len(labels)} of {len(hashes)} drawn items scored")
    return labels
