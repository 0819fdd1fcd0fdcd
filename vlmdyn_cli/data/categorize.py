"""Label the QA pairs of the experiment database with skill categories.

``categorize_dataset`` walks the unlabelled QA pairs in id order, in batches;
each batch is labelled by a categoriser (``categories.get_categorizer``) and
written in one transaction (category, subcategory, category_method,
category_reason). A rerun skips labelled rows, so an interrupted run resumes
where it stopped; ``force=True`` relabels everything. A categoriser may return
None for a question (an LLM reply that did not parse): that row stays
unlabelled, is counted, and is retried by the next run.

Every method gets the dataset-source rule in front (``label_pairs``): a pair
whose conversation comes from an OCR dataset (``categories.pair_source``: the
image folder ocr_vqa/ or textvqa/, or the record's ``source`` field) is OCR,
as in the paper, and a pair from a benchmark subtask that tests one skill (MME's
subtask folders) gets that skill; only the other pairs go to the method.

When the data carries ground truth (``true_category``, the synthetic
benchmark), the result also reports agreement and the confusion matrix.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field

from vlmdyn_cli.data.categories import (CATEGORIES, OCR, RECOGNITION, Categorizer, Label, Source, get_categorizer,
                                        pair_source)
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.store.db import immediate


@dataclass
class Agreement:
    n: int
    category: float                         # share of rows whose category equals the truth
    subcategory: float                      # share whose (category, subcategory) equals the truth
    confusion: dict[str, dict[str, int]]    # truth -> predicted -> count

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CategorizeResult:
    method: str
    datasets: list[str]
    n_total: int           # QA pairs in scope
    n_labelled: int        # labelled by this run
    n_skipped: int         # already labelled before this run (kept)
    n_failed: int          # the categoriser gave no label (left unlabelled, retried next run)
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)        # category -> rows (all labelled rows in scope)
    subcounts: dict[str, int] = field(default_factory=dict)     # "Category/sub" -> rows
    agreement: Agreement | None = None

    @property
    def rate(self) -> float:
        return self.n_labelled / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rate_per_s"] = round(self.rate, 1)
        return d


def source_label(question: str, dataset: str) -> Label:
    """The label of a pair from an OCR dataset: OCR, sub-category from the rules' OCR cues (default recognition)."""
    from vlmdyn_cli.data.rules import classify

    cue, rule = classify(question)
    sub = cue.subcategory if cue.category == OCR else RECOGNITION
    why = f"the rules' cue {rule}" if cue.category == OCR else "no semantic cue"
    return Label(OCR, sub, f"source.ocr: from {dataset}, an OCR dataset, so OCR whatever the wording ({sub}: {why})",
                 "source.ocr")


def source_decided(question: str, src: Source | str) -> Label:
    """The label a pair's source decides (``categories.pair_source``); a plain string names an OCR dataset."""
    if isinstance(src, str):
        return source_label(question, src)
    if src.category == OCR and src.subcategory is None:
        return source_label(question, src.name)
    return Label(src.category, src.subcategory,
                 f"source.subtask: from {src.name}, a subtask that tests one skill, so {src.category} "
                 f"whatever the wording", "source.subtask")


def label_pairs(cat: Categorizer, questions: list[str], answers: list[str] | None = None,
                sources: list[Source | str | None] | None = None) -> list[Label | None]:
    """Labels for QA pairs: what ``sources[i]`` decides (``pair_source``: OCR datasets, MME subtasks), ``cat`` for the rest."""
    if not sources or not any(sources):
        return cat.categorize(questions, answers)
    out: list[Label | None] = [None] * len(questions)
    rest = []
    for i, (q, src) in enumerate(zip(questions, sources)):
        if src:
            out[i] = source_decided(q, src)
        else:
            rest.append(i)
    if rest:
        got = cat.categorize([questions[i] for i in rest], [answers[i] for i in rest] if answers is not None else None)
        if len(got) != len(rest):
            raise RuntimeError(f"categoriser {cat.method} returned {len(got)} labels for {len(rest)} questions")
        for i, lab in zip(rest, got):
            out[i] = lab
    return out


def resolve_datasets(db, dataset: str | None) -> list[tuple[int, str]]:
    rows = db.execute("SELECT id, name FROM datasets ORDER BY id").fetchall()
    if not rows:
        raise BadInput("the database has no datasets yet: run `vlmdyn data import FILE.json --images DIR` first")
    if dataset is None:
        return [(r[0], r[1]) for r in rows]
    hit = [(r[0], r[1]) for r in rows if r[1] == dataset]
    if not hit:
        from vlmdyn_cli.errors import did_you_mean

        names = [r[1] for r in rows]
        raise BadInput(f"no dataset named {dataset!r}{did_you_mean(dataset, names)}; "
                       f"datasets: {', '.join(names)}")
    return hit


def categorize_dataset(db, method: str = "rules", dataset: str | None = None,
                       reporter: Reporter = NullReporter(), force: bool = False, batch_size: int = 2000,
                       categorizer: Categorizer | None = None, **opts) -> CategorizeResult:
    """Label QA pairs of ``dataset`` (default: all datasets) with ``method``.

    ``opts`` go to the categoriser factory (e.g. ``judge="local"`` for llm).
    Pass ``categorizer`` to use an already built one.
    """
    datasets = resolve_datasets(db, dataset)
    cat = categorizer or get_categorizer(method, **opts)
    ids = [d[0] for d in datasets]
    marks = ",".join("?" * len(ids))
    n_total = db.execute(f"SELECT COUNT(*) FROM qa_pairs WHERE dataset_id IN ({marks})", ids).fetchone()[0]
    pending = f"q.dataset_id IN ({marks})" + ("" if force else " AND q.category IS NULL")
    n_pending = db.execute(f"SELECT COUNT(*) FROM qa_pairs q WHERE {pending}", ids).fetchone()[0]
    n_skipped = n_total - n_pending

    t0 = time.monotonic()
    n_labelled = n_failed = 0
    last_id = 0
    with reporter.task(f"categorising ({cat.method})", total=n_pending, unit="QA") as task:
        while True:
            rows = db.execute(
                f"SELECT q.id, q.question, q.answer, c.source, c.image_path FROM qa_pairs q "
                f"JOIN conversations c ON c.id = q.conversation_id "
                f"WHERE {pending} AND q.id > ? ORDER BY q.id LIMIT ?", [*ids, last_id, batch_size]).fetchall()
            if not rows:
                break
            last_id = rows[-1][0]
            labels = label_pairs(cat, [r[1] for r in rows], [r[2] for r in rows],
                                 [pair_source(r[3], r[4], r[1]) for r in rows])
            if len(labels) != len(rows):
                raise RuntimeError(f"categoriser {cat.method} returned {len(labels)} labels for {len(rows)} questions")
            updates = [(lab.category, lab.subcategory, cat.method, lab.reason, r[0])
                       for r, lab in zip(rows, labels) if lab is not None]
            with immediate(db):
                db.conn.executemany("UPDATE qa_pairs SET category = ?, subcategory = ?, category_method = ?, "
                                    "category_reason = ? WHERE id = ?", updates)
            n_labelled += len(updates)
            n_failed += len(rows) - len(updates)
            task.advance(len(rows), failed=n_failed)
    seconds = time.monotonic() - t0

    counts = dict(db.execute(f"SELECT category, COUNT(*) FROM qa_pairs WHERE dataset_id IN ({marks}) "
                             f"AND category IS NOT NULL GROUP BY category ORDER BY category", ids).fetchall())
    subcounts = {f"{c}/{s}": n for c, s, n in db.execute(
        f"SELECT category, subcategory, COUNT(*) FROM qa_pairs WHERE dataset_id IN ({marks}) "
        f"AND subcategory IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2", ids).fetchall()}
    res = CategorizeResult(method=cat.method, datasets=[d[1] for d in datasets], n_total=n_total,
                           n_labelled=n_labelled, n_skipped=n_skipped, n_failed=n_failed,
                           seconds=round(seconds, 3), counts=counts, subcounts=subcounts,
                           agreement=agreement(db, ids))
    reporter.info(f"{cat.method}: labelled {n_labelled} QA pairs ({n_skipped} already labelled, "
                  f"{n_failed} without a label) in {seconds:.1f} s")
    return res


def agreement(db, dataset_ids: list[int]) -> Agreement | None:
    """Agreement of the stored labels with the ground truth, where the data has one."""
    marks = ",".join("?" * len(dataset_ids))
    rows = db.execute(
        f"SELECT true_category, category, COALESCE(true_subcategory, ''), COALESCE(subcategory, ''), COUNT(*) "
        f"FROM qa_pairs WHERE dataset_id IN ({marks}) AND true_category IS NOT NULL AND category IS NOT NULL "
        f"GROUP BY 1, 2, 3, 4", dataset_ids).fetchall()
    n = sum(r[4] for r in rows)
    if not n:
        return None
    conf: dict[str, Counter] = {c: Counter() for c in CATEGORIES}
    cat_ok = sub_ok = 0
    for tc, pc, ts, ps, k in rows:
        conf.setdefault(tc, Counter())[pc] += k
        if tc == pc:
            cat_ok += k
            if ts == ps:
                sub_ok += k
    confusion = {t: {p: c[p] for p in CATEGORIES if c[p]} for t, c in conf.items() if sum(c.values())}
    return Agreement(n=n, category=round(cat_ok / n, 5), subcategory=round(sub_ok / n, 5), confusion=confusion)
