"""The benchmark of a selection plan, and the refusal of a benchmark the runs would train on.

The benchmark is the QA pairs of the plan's benchmark datasets (kept
conversations; a seeded sample of ``size`` when size > 0). It must share
nothing with the training data of the base or of any candidate: not an image
(by content hash: the images table has one row per distinct picture) and not a
QA pair (same picture or none, same normalised question and answer). Either
is a ``BadInput`` naming how many items overlap, with which dataset, and one
example; nothing is trained.
"""

from __future__ import annotations

import random

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.judging.normalize import normalize
from vlmdyn_cli.select.plan import SelectPlan

SAMPLE_SEED = 0


def _pairs(db, dataset_ids: list[int]) -> list[tuple]:
    """(qa id, dataset name, image id, question, answer, image path) of kept conversations."""
    marks = ",".join("?" * len(dataset_ids))
    return db.execute(
        "SELECT q.id, d.name, q.image_id, q.question, q.answer, c.image_path FROM qa_pairs q "
        "JOIN conversations c ON c.id = q.conversation_id JOIN datasets d ON d.id = q.dataset_id "
        f"WHERE q.dataset_id IN ({marks}) AND c.kept = 1 ORDER BY q.id", dataset_ids).fetchall()


def benchmark_ids(db, plan: SelectPlan, datasets: dict[str, dict]) -> list[int]:
    ids = [r[0] for r in _pairs(db, [datasets[n]["id"] for n in plan.benchmark])]
    if not ids:
        raise BadInput(f"benchmark dataset(s) {', '.join(plan.benchmark)} have no kept QA pairs")
    if plan.bench_size and plan.bench_size < len(ids):
        ids = sorted(random.Random(SAMPLE_SEED).sample(ids, plan.bench_size))
    elif plan.bench_size > len(ids):
        raise BadInput(f"[benchmark] size {plan.bench_size} is more than the {len(ids)} QA pairs of "
                       f"{', '.join(plan.benchmark)}; use size = {len(ids)} or 0 (all)")
    return ids


def check_overlap(db, plan: SelectPlan, datasets: dict[str, dict], bench: list[int]) -> None:
    """BadInput when a benchmark QA pair or image is in the training data of the base or a candidate."""
    train = _pairs(db, [datasets[n]["id"] for n in plan.base + plan.candidates])
    wanted = set(bench)
    bench_rows = [r for r in _pairs(db, [datasets[n]["id"] for n in plan.benchmark]) if r[0] in wanted]
    by_image: dict[int, tuple] = {}
    by_pair: dict[tuple, tuple] = {}
    for r in train:
        if r[2] is not None:
            by_image.setdefault(r[2], r)
        by_pair.setdefault((r[2], normalize(r[3]), normalize(r[4])), r)
    problems = []
    images = [(b, by_image[b[2]]) for b in bench_rows if b[2] is not None and b[2] in by_image]
    if images:
        b, t = images[0]
        n = len({b[2] for b, _ in images})
        problems.append(f"{len(images)} benchmark QA pair(s) show {n} picture(s) that the training data also has "
                        f"(same image content), e.g. benchmark {b[1]} {b[5]!r} = {t[1]} {t[5]!r}")
    pairs = [(b, by_pair[k]) for b in bench_rows if (k := (b[2], normalize(b[3]), normalize(b[4]))) in by_pair]
    if pairs:
        b, t = pairs[0]
        problems.append(f"{len(pairs)} benchmark QA pair(s) are also training QA pairs (same picture or none, same "
                        f"question and answer), e.g. {b[3]!r} -> {b[4]!r} in {b[1]} and {t[1]}")
    if problems:
        raise BadInput("the benchmark overlaps the training data; a benchmark the candidates were trained on "
                       "measures nothing. Nothing was trained.\n  " + "\n  ".join(problems))
