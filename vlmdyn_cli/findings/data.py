"""The judged counts a findings check reads, per run (seed), checkpoint, set and category.

``load_study(db, runs=None, like=None, judge=None)`` reads the counts the figures
use (``plots.aggregate``: yes / scored / unscored / unjudged per run, step, set,
category and sub-category) and keeps them per run. A check asks a ``RunData`` for
the per-category counts of some sets at one step; when those sets were not
generated or not judged completely at that step, it raises ``Missing`` with a
sentence naming the run, the step, the set and what to run, so a finding that
lacks its data says "cannot be shown" instead of computing on half the items.

Vocabulary (METHOD.md section 3):

- the evaluated checkpoints of a run are the steps > 0 with generations, up to L;
- L, the last evaluated checkpoint, is the step after which the unseen sets were
  drawn (the largest Seen@k step): after L the unseen sets are trained on;
- the *trained-on* seen sets at step s are the Seen@k sets with k <= s;
- the *validation* set is the unseen set with image de-duplication.

Category-standardised accuracy: per-category accuracies averaged with one fixed
weight per category -- its share of the dataset's QA pairs (the training mix,
Table 1) -- over the categories every compared set has scored items in. Sets
whose category mixes differ by chance are then compared on the same footing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.plots import aggregate as A

Counts = dict[str, list[int]]   # key (category, or category/subcategory) -> [yes, scored]


class Missing(Exception):
    """The data a comparison needs is not there; the message says what is missing."""


@dataclass(frozen=True)
class EvalSet:
    id: int
    name: str
    kind: str              # seen | unseen
    k: int | None          # Seen@k step
    dedup: str | None      # unseen: image | pair | none
    size: int
    after_step: int | None  # unseen: drawn from data trained after this step


@dataclass
class RunData:
    run: A.RunRef
    total_steps: int
    sets: dict[str, EvalSet]
    # (step, set id) -> (category, subcategory) -> [yes, scored, unscored, unjudged]
    cells: dict[tuple[int, int], dict[tuple[str | None, str | None], list[int]]]
    steps: list[int] = field(default_factory=list)   # evaluated checkpoints, ascending, 0 < s <= L
    last: int | None = None                          # L

    @property
    def name(self) -> str:
        return self.run.name

    # ------------------------------------------------------------------ sets
    def seen_sets(self) -> list[EvalSet]:
        return sorted((s for s in self.sets.values() if s.kind == "seen" and s.k is not None),
                      key=lambda s: s.k)

    def trained_seen(self, step: int) -> list[EvalSet]:
        """Seen@k sets with k <= step (the checkpoint at step has trained on them)."""
        out = [s for s in self.seen_sets() if s.k <= step]
        if not out:
            raise Missing(f"run {self.name}: no Seen@k set with k <= {step}")
        return out

    def unseen(self, dedup: str) -> EvalSet:
        for s in self.sets.values():
            if s.kind == "unseen" and (s.dedup or "image") == dedup:
                return s
        raise Missing(f"run {self.name}: no unseen set with {dedup} de-duplication "
                      f"(build it: vlmdyn sets build --run {self.name} --dedup {dedup})")

    def require_last(self) -> int:
        if self.last is None:
            raise Missing(f"run {self.name}: no Seen@k set, so no last evaluated checkpoint")
        if self.last not in self.steps:
            raise Missing(f"run {self.name}: the last evaluated checkpoint, step {self.last}, has no "
                          f"generations (vlmdyn infer --run {self.name})")
        return self.last

    # ------------------------------------------------------------------ counts
    def counts(self, step: int, sets: list[EvalSet], by: str = "category") -> Counts:
        """[yes, scored] per category (``by="category"``) or per "category/subcategory",
        pooled over ``sets`` at ``step``. Missing when a set is not completely generated and
        judged at that step."""
        out: Counts = {}
        for s in sets:
            cell = self.cells.get((step, s.id))
            if not cell:
                raise Missing(f"run {self.name}: set {s.name} has no generations at step {step} "
                              f"(vlmdyn infer --run {self.name})")
            generated = sum(v[1] + v[2] + v[3] for v in cell.values())
            unjudged = sum(v[3] for v in cell.values())
            if generated < s.size:
                raise Missing(f"run {self.name}: set {s.name} at step {step}: only {generated} of its "
                              f"{s.size} items generated (vlmdyn infer --run {self.name})")
            if unjudged:
                raise Missing(f"run {self.name}: set {s.name} at step {step}: {unjudged} of {generated} "
                              f"items not judged by this judge (vlmdyn judge --run {self.name})")
            for (cat, sub), (yes, scored, _u, _j) in cell.items():
                if cat is None:
                    continue
                key = cat if by == "category" else f"{cat}/{sub or '-'}"
                acc = out.setdefault(key, [0, 0])
                acc[0] += yes
                acc[1] += scored
        return out

    def unscored(self, step: int, s: EvalSet) -> tuple[int, int]:
        """(unscored, generated) of one set at one step."""
        cell = self.cells.get((step, s.id), {})
        return (sum(v[2] for v in cell.values()), sum(v[1] + v[2] + v[3] for v in cell.values()))


def rate(counts: Counts, key: str) -> float | None:
    yes, scored = counts.get(key, (0, 0))
    return yes / scored if scored else None


@dataclass
class Study:
    """The selected runs (one per seed) under one judge, with the category weights."""

    runs: list[RunData]
    judge: A.JudgeRef
    weights: dict[str, float]      # category -> share of the dataset's categorised QA pairs
    notes: list[str] = field(default_factory=list)

    def standardised(self, *tables: Counts) -> tuple[list[float], list[str]]:
        """Each table's accuracy averaged with the fixed category weights, over the categories
        every table has scored items in; returns (accuracies, categories used)."""
        cats = [c for c in self.weights if all(t.get(c, (0, 0))[1] > 0 for t in tables)]
        if not cats:
            raise Missing("no category has scored items in every compared set")
        total = sum(self.weights[c] for c in cats)
        return [sum(self.weights[c] * t[c][0] / t[c][1] for c in cats) / total for t in tables], cats


def load_study(db, runs: list[str] | None = None, like: str | None = None, judge: str | None = None,
               reporter=None) -> Study:
    """Read the judged counts of the selected runs; BadInput when there is nothing to check."""
    sel = A.selection(db, runs=runs, like=like, judge=judge)
    A.ensure_cells(db, sel, reporter)
    conn = getattr(db, "conn", db)
    ph = ",".join("?" * len(sel.runs))
    totals = dict(conn.execute(f"SELECT id, total_steps FROM runs WHERE id IN ({ph})", sel.run_ids).fetchall())
    sets: dict[int, dict[str, EvalSet]] = {r.id: {} for r in sel.runs}
    for sid, run_id, name, kind, k, dedup, size, definition in conn.execute(
            f"SELECT id, run_id, name, kind, k_step, dedup, size, definition_json FROM eval_sets "
            f"WHERE run_id IN ({ph})", sel.run_ids):
        after = None
        if kind == "unseen":
            try:
                after = json.loads(definition or "{}").get("after_step")
            except ValueError:
                after = None
        sets[run_id][name] = EvalSet(sid, name, kind, k, dedup, size, after)
    cells: dict[int, dict] = {r.id: {} for r in sel.runs}
    for run_id, step, set_id, cat, sub, yes, scored, unscored, unjudged in conn.execute(
            f"SELECT run_id, step, set_id, category, subcategory, yes, scored, unscored, unjudged FROM plot_cells "
            f"WHERE spec_hash = ? AND run_id IN ({ph})", [sel.judge.hash, *sel.run_ids]):
        cells[run_id].setdefault((step, set_id), {})[(cat, sub)] = [yes, scored, unscored, unjudged]
    data = []
    for r in sel.runs:
        rd = RunData(r, totals[r.id], sets[r.id], cells[r.id])
        seen_ks = [s.k for s in rd.seen_sets()]
        rd.last = max(seen_ks) if seen_ks else None
        evaluated = sorted({step for step, _ in rd.cells})
        rd.steps = [s for s in evaluated if s > 0 and (rd.last is None or s <= rd.last)]
        data.append(rd)
    if not any(rd.cells for rd in data):
        raise BadInput("the selected runs have no generations in their evaluation sets: run "
                       "`vlmdyn sets build`, `vlmdyn infer` and `vlmdyn judge` first")
    weights = _category_weights(conn, sel.runs[0].dataset_id)
    if not weights:
        raise BadInput(f"dataset {sel.dataset!r} has no categorised QA pairs: run `vlmdyn data categorize` first")
    study = Study(data, sel.judge, weights)
    if len(data) == 1:
        study.notes.append(f"one run ({data[0].name}): no spread over seeds; 'in every seed' is that seed "
                           "(the paper used 8 seeds)")
    for rd in data:
        if not rd.seen_sets():
            study.notes.append(f"run {rd.name}: no Seen@k sets (vlmdyn sets build --run {rd.name})")
        elif len(rd.steps) == 1:
            study.notes.append(f"run {rd.name}: only one evaluated checkpoint (step {rd.steps[0]}): "
                               "findings about change over training cannot be shown")
    return study


def _category_weights(conn, dataset_id: int) -> dict[str, float]:
    rows = conn.execute("SELECT category, COUNT(*) FROM qa_pairs WHERE dataset_id = ? AND category IS NOT NULL "
                        "GROUP BY category ORDER BY category", [dataset_id]).fetchall()
    total = sum(n for _, n in rows)
    return {c: n / total for c, n in rows} if total else {}
