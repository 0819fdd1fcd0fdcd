"""Accuracy numbers behind every figure, the report and the TUI's plots tab: all in SQL.

Flow (a newcomer's map)::

    sel = selection(db, runs=None, like=None, judge=None)   # which runs, which judge (BadInput on bad input)
    ensure_cells(db, sel)          # per-run counts, cached in plot_cells (recomputed when data changed)
    seed_stats(db, sel, ...)       # mean / 1-sigma over seeds of per-run accuracies, one row per (key, step)

The heavy part is ``ensure_cells``: one GROUP BY over set members -> generations
-> judgements per run, giving for every (run, step, set, category, subcategory)
the counts ``yes``, ``scored``, ``unscored`` (judged but not scorable: excluded
from every accuracy and reported) and ``unjudged`` (generated, no judgement by
this judge yet). Those few thousand rows are stored in ``plot_cells`` with the
``plot_data_version`` they were computed at; triggers bump the version whenever
judgements, generations, sets or categories change, so a stale cache is never
used. Everything after that -- pooling the sets seen at a step, the training
frontier (best seen set), mean and variance over seeds -- is SQL over
``plot_cells`` too (``seed_stats``).

Accuracy of one run at one point = yes / scored. Across seeds: the mean of the
per-run accuracies, the sample standard deviation (n-1) as the 1-sigma band,
``n`` = number of runs with at least one scored item there. Runs are matched
across seeds by set *name* (``seen@357``, ``unseen``...) and checkpoint step.

Accepts a sqlite_utils ``Database`` or a plain ``sqlite3.Connection``.
"""

from __future__ import annotations

import fnmatch
import math
import time
from dataclasses import dataclass, field

from vlmdyn_cli.errors import BadInput

#: the validation ("unseen") sets: image de-dup (the protocol's default)
VALIDATION = "s.kind = 'unseen' AND COALESCE(s.dedup, 'image') = 'image'"
#: seen sets that the checkpoint has trained on
SEEN_AT_STEP = "s.kind = 'seen' AND s.k_step <= c.step"


@dataclass(frozen=True)
class RunRef:
    id: int
    name: str
    seed: int
    dataset_id: int
    dataset: str


@dataclass(frozen=True)
class JudgeRef:
    hash: str
    name: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.hash[:8]})"


@dataclass
class Selection:
    runs: list[RunRef]
    judge: JudgeRef
    notes: list[str] = field(default_factory=list)

    @property
    def run_ids(self) -> list[int]:
        return [r.id for r in self.runs]

    @property
    def dataset(self) -> str:
        return self.runs[0].dataset


def _conn(db):
    return getattr(db, "conn", db)


def _q(db, sql: str, params=()) -> list[tuple]:
    return _conn(db).execute(sql, list(params)).fetchall()


def _ph(n: int) -> str:
    return ",".join("?" * n)


# --------------------------------------------------------------------------- selection


def select_runs(db, runs: list[str] | None = None, like: str | None = None) -> list[RunRef]:
    """Runs by name (``runs``), by pattern (``like``: a glob such as ``tiny-s*``; ``%`` works too),
    or all runs. All must come from one dataset, else BadInput."""
    rows = _q(db, "SELECT r.id, r.name, r.seed, r.dataset_id, d.name FROM runs r "
                  "JOIN datasets d ON d.id = r.dataset_id ORDER BY r.name")
    every = [RunRef(*r) for r in rows]
    if not every:
        raise BadInput("no runs in this database (train some with `vlmdyn train`, or run `vlmdyn demo`)")
    by_name = {r.name: r for r in every}
    if runs:
        chosen = []
        for name in runs:
            if name not in by_name:
                from vlmdyn_cli.store.runs import unknown_run

                raise unknown_run(name, sorted(by_name))
            chosen.append(by_name[name])
    elif like:
        pat = like.replace("%", "*")
        chosen = [r for r in every if fnmatch.fnmatchcase(r.name, pat)]
        if not chosen:
            raise BadInput(f"--runs-like '{like}' matches no run; runs: {', '.join(sorted(by_name)[:12])}")
    else:
        chosen = every
    datasets = sorted({r.dataset for r in chosen})
    if len(datasets) > 1:
        per = {d: [r.name for r in chosen if r.dataset == d] for d in datasets}
        detail = "; ".join(f"{d}: {', '.join(n[:4])}{' ...' if len(n) > 4 else ''}" for d, n in per.items())
        raise BadInput(f"the selected runs come from different datasets ({detail}); accuracies from "
                       "different data cannot be averaged: pick runs of one dataset with --run or --runs-like")
    return sorted(chosen, key=lambda r: (r.seed, r.name))


def judges_for(db, run_ids: list[int], *, counts: bool = False) -> list[tuple[JudgeRef, int | None]]:
    """Judge specs that judged at least one generation of these runs (an indexed probe per spec);
    with ``counts``, also how many judgements each spec has overall (a scan: for messages only)."""
    out = []
    for h, name in _q(db, "SELECT hash, name FROM judge_specs ORDER BY created_at, name"):
        hit = _q(db, f"SELECT 1 FROM judgements j JOIN generations g ON g.triple_hash = j.triple_hash "
                     f"WHERE j.spec_hash = ? AND g.run_id IN ({_ph(len(run_ids))}) LIMIT 1", [h, *run_ids])
        if hit:
            n = _q(db, "SELECT COUNT(*) FROM judgements WHERE spec_hash = ?", [h])[0][0] if counts else None
            out.append((JudgeRef(h, name), n))
    return out


def select_judge(db, run_ids: list[int], spec: str | None = None) -> JudgeRef:
    """The judge by name or hash prefix; without ``spec``, the only judge of these runs."""
    if spec:
        rows = _q(db, "SELECT hash, name FROM judge_specs WHERE name = ? OR hash LIKE ? ORDER BY created_at",
                  [spec, f"{spec}%" if len(spec) >= 6 else "\x00"])
        if not rows:
            names = sorted({n for (n,) in _q(db, "SELECT name FROM judge_specs")})
            from vlmdyn_cli.errors import did_you_mean

            raise BadInput(f"unknown judge '{spec}'{did_you_mean(spec, names)}; judges in this database: "
                           f"{', '.join(names) or '(none: run `vlmdyn judge` first)'}")
        used = {j.hash for j, _ in judges_for(db, run_ids)}
        rows_used = [r for r in rows if r[0] in used]
        if len(rows_used) > 1:
            raise BadInput(f"judge '{spec}' names several specs with judgements ("
                           + ", ".join(h[:12] for h, _ in rows_used) + "): pass a hash prefix with --judge")
        if not rows_used:
            raise BadInput(f"judge '{spec}' has no judgements for the selected runs: judge them first "
                           f"(`vlmdyn judge run --judge {spec} ...`)")
        return JudgeRef(*rows_used[0])
    found = judges_for(db, run_ids)
    if not found:
        raise BadInput("no judgements for the selected runs: run `vlmdyn judge` on their generations first")
    if len(found) > 1:
        found = judges_for(db, run_ids, counts=True)
        raise BadInput("several judges judged these runs: choose one with --judge ("
                       + ", ".join(f"{j.name} [{j.hash[:8]}] {n} judgements" for j, n in found) + ")")
    return found[0][0]


def selection(db, runs: list[str] | None = None, like: str | None = None, judge: str | None = None) -> Selection:
    chosen = select_runs(db, runs, like)
    return Selection(chosen, select_judge(db, [r.id for r in chosen], judge))


# --------------------------------------------------------------------------- cells (the heavy part)

_CELLS_SQL = """
SELECT s.run_id, g.step, s.id, q.category, q.subcategory,
       COALESCE(SUM(j.verdict = 'yes' AND j.status = 'scored'), 0),
       COALESCE(SUM(j.status = 'scored'), 0),
       COALESCE(SUM(j.status = 'unscored'), 0),
       SUM(j.status IS NULL)
FROM eval_sets s
CROSS JOIN eval_set_members m ON m.set_id = s.id
CROSS JOIN qa_pairs q INDEXED BY idx_plots_qa_cat ON q.id = m.qa_id
CROSS JOIN generations g INDEXED BY idx_plots_generations_run_qa ON g.run_id = s.run_id AND g.qa_id = m.qa_id
LEFT JOIN judgements j INDEXED BY idx_plots_judgements_cover
       ON j.spec_hash = ? AND j.triple_hash = g.triple_hash
WHERE s.run_id = ?
GROUP BY g.step, s.id, q.category, q.subcategory
"""


def data_version(db) -> int:
    return _q(db, "SELECT n FROM plot_data_version WHERE id = 1")[0][0]


def compute_cells(db, spec_hash: str, run_id: int) -> list[tuple]:
    """The per-run counts straight from the source tables (no cache)."""
    return _q(db, _CELLS_SQL, [spec_hash, run_id])


def ensure_cells(db, sel: Selection, reporter=None) -> dict:
    """Make plot_cells current for every selected run under the selected judge.

    Returns {"recomputed": [run names], "seconds": float}. Each run is read in one
    snapshot together with the version it is stored under, so a judge writing at the
    same time only makes the next call recompute.
    """
    conn = _conn(db)
    t0 = time.monotonic()
    stale = []
    for r in sel.runs:
        row = _q(db, "SELECT version FROM plot_cells_state WHERE spec_hash = ? AND run_id = ?", [sel.judge.hash, r.id])
        if not row or row[0][0] != data_version(db):
            stale.append(r)
    if not stale:
        return {"recomputed": [], "seconds": 0.0}
    from contextlib import nullcontext

    ctx = reporter.task("aggregating judgements", total=len(stale), unit="runs") if reporter else nullcontext()
    with ctx as task:
        for r in stale:
            t1 = time.monotonic()
            own_tx = not conn.in_transaction
            if own_tx:
                conn.execute("BEGIN")  # one snapshot: version and counts agree
            try:
                version = data_version(db)
                cells = compute_cells(db, sel.judge.hash, r.id)
            finally:
                if own_tx:
                    conn.execute("COMMIT")
            _store_somewhere(conn, sel.judge.hash, r.id, version, cells, time.monotonic() - t1)
            if task is not None:
                task.advance(1)
    return {"recomputed": [r.name for r in stale], "seconds": round(time.monotonic() - t0, 3)}


def _store_somewhere(conn, spec_hash, run_id, version, cells, seconds) -> None:
    """Write the cache through ``conn``; a read-only connection (the TUI's ``PRAGMA query_only``)
    writes it through a short-lived connection of its own to the same file instead."""
    import sqlite3

    from vlmdyn_cli.store.db import connect

    try:
        _store(conn, spec_hash, run_id, version, cells, seconds)
    except sqlite3.OperationalError as exc:
        if "readonly" not in str(exc):
            raise
        path = next(r[2] for r in conn.execute("PRAGMA database_list") if r[1] == "main")
        own = connect(path)
        try:
            _store(own, spec_hash, run_id, version, cells, seconds)
        finally:
            own.close()


def _store(conn, spec_hash, run_id, version, cells, seconds) -> None:
    from vlmdyn_cli.store.db import now

    own_tx = not conn.in_transaction
    try:
        if own_tx:
            conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM plot_cells WHERE spec_hash = ? AND run_id = ?", [spec_hash, run_id])
        conn.executemany("INSERT INTO plot_cells(spec_hash, run_id, step, set_id, category, subcategory, yes,"
                         " scored, unscored, unjudged) VALUES (?,?,?,?,?,?,?,?,?,?)",
                         [(spec_hash, *c) for c in cells])
        conn.execute("INSERT OR REPLACE INTO plot_cells_state(spec_hash, run_id, version, computed_at, seconds)"
                     " VALUES (?,?,?,?,?)", [spec_hash, run_id, version, now(), round(seconds, 3)])
        if own_tx:
            conn.execute("COMMIT")
    except Exception:
        if own_tx and conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# --------------------------------------------------------------------------- statistics over seeds


@dataclass
class Point:
    """One (series key, step): mean and 1-sigma over seeds plus pooled counts."""

    key: tuple
    step: int
    n: int                 # runs with scored items here
    mean: float | None     # mean over runs of yes/scored
    std: float | None      # sample std over runs (None when n < 2)
    yes: int
    scored: int
    unscored: int
    unjudged: int

    def as_dict(self) -> dict:
        return {"step": self.step, "mean": self.mean, "std": self.std, "n_seeds": self.n, "yes": self.yes,
                "scored": self.scored, "unscored": self.unscored, "unjudged": self.unjudged}


def seed_stats(db, sel: Selection, keys: list[str], where: str = "1", *, best_of: str | None = None,
               cells_ready: bool = False) -> list[Point]:
    """Mean / 1-sigma over the selected runs of per-run accuracy, grouped by ``keys`` and step.

    ``keys``   SQL expressions over ``c`` (plot_cells) and ``s`` (eval_sets), e.g. ``["c.category"]``,
               ``["s.name"]``, ``["'seen'"]``; cells matching ``where`` are pooled per run first.
    ``best_of`` an SQL expression (e.g. ``"s.name"``): per run and step, first compute the
               accuracy per value of it, then keep the best one (the training frontier).
    """
    if not cells_ready:
        ensure_cells(db, sel)
    kx = ", ".join(f"{k} AS k{i}" for i, k in enumerate(keys)) or "'all' AS k0"
    kn = ", ".join(f"k{i}" for i in range(max(1, len(keys))))
    base = (f"SELECT c.run_id, c.step, {kx}{', ' + best_of + ' AS b' if best_of else ''}, "
            "SUM(c.yes) yes, SUM(c.scored) scored, SUM(c.unscored) unscored, SUM(c.unjudged) unjudged "
            "FROM plot_cells c JOIN eval_sets s ON s.id = c.set_id "
            f"WHERE c.spec_hash = ? AND c.run_id IN ({_ph(len(sel.runs))}) AND ({where}) "
            f"GROUP BY c.run_id, c.step, {kn}{', b' if best_of else ''}")
    if best_of:  # keep, per run and step, the value of best_of with the highest accuracy
        per_run = (f"SELECT run_id, step, {kn}, yes, scored, unscored, unjudged, acc FROM ("
                   f"SELECT *, CASE WHEN scored > 0 THEN 1.0 * yes / scored END acc, ROW_NUMBER() OVER ("
                   f"PARTITION BY run_id, step, {kn} ORDER BY CASE WHEN scored > 0 THEN 1.0 * yes / scored END "
                   f"DESC NULLS LAST) rn FROM ({base})) WHERE rn = 1")
    else:
        per_run = f"SELECT *, CASE WHEN scored > 0 THEN 1.0 * yes / scored END acc FROM ({base})"
    sql = (f"SELECT {kn}, step, COUNT(acc), AVG(acc), "
           "CASE WHEN COUNT(acc) > 1 THEN (SUM(acc * acc) - SUM(acc) * SUM(acc) / COUNT(acc)) "
           "/ (COUNT(acc) - 1) END, SUM(yes), SUM(scored), SUM(unscored), SUM(unjudged) "
           f"FROM ({per_run}) GROUP BY {kn}, step ORDER BY {kn}, step")
    nk = max(1, len(keys))
    out = []
    for row in _q(db, sql, [sel.judge.hash, *sel.run_ids]):
        key, (step, n, mean, var, yes, scored, unscored, unjudged) = tuple(row[:nk]), row[nk:]
        std = math.sqrt(max(var, 0.0)) if var is not None else None
        out.append(Point(key, step, n, mean, std, yes, scored, unscored, unjudged))
    return out


def totals(db, sel: Selection) -> dict:
    """Pooled counts over the selection: what a caption says about excluded items."""
    ensure_cells(db, sel)
    yes, scored, unscored, unjudged = _q(
        db, "SELECT COALESCE(SUM(yes),0), COALESCE(SUM(scored),0), COALESCE(SUM(unscored),0), "
            f"COALESCE(SUM(unjudged),0) FROM plot_cells WHERE spec_hash = ? AND run_id IN ({_ph(len(sel.runs))})",
        [sel.judge.hash, *sel.run_ids])[0]
    return {"yes": yes, "scored": scored, "unscored": unscored, "unjudged": unjudged}


def set_info(db, sel: Selection) -> list[dict]:
    """The evaluation sets of the selection, matched across runs by name."""
    rows = _q(db, "SELECT name, kind, MIN(k_step), MAX(k_step), MAX(dedup), COUNT(DISTINCT run_id), SUM(size) "
                  f"FROM eval_sets WHERE run_id IN ({_ph(len(sel.runs))}) GROUP BY name "
                  "ORDER BY kind, MIN(k_step), name", sel.run_ids)
    return [{"name": n, "kind": k, "k_step": k1, "dedup": d, "n_runs": nr, "size_total": sz,
             "k_mismatch": k1 != k2} for n, k, k1, k2, d, nr, sz in rows]


def category_shares(db, dataset_id: int) -> list[dict]:
    """Table 1: share of the dataset's QA pairs per category (uncategorised shown as None)."""
    rows = _q(db, "SELECT category, COUNT(*) FROM qa_pairs WHERE dataset_id = ? GROUP BY category "
                  "ORDER BY COUNT(*) DESC", [dataset_id])
    total = sum(n for _, n in rows) or 1
    return [{"category": c, "n": n, "share": n / total} for c, n in rows]


def loss_stats(db, sel: Selection, column: str) -> list[Point]:
    """Mean / 1-sigma over runs of a metrics column (loss or lr) per step."""
    if column not in ("loss", "lr"):
        raise ValueError(column)
    sql = (f"SELECT step, COUNT({column}), AVG({column}), CASE WHEN COUNT({column}) > 1 THEN "
           f"(SUM({column} * {column}) - SUM({column}) * SUM({column}) / COUNT({column})) / (COUNT({column}) - 1) END "
           f"FROM metrics WHERE run_id IN ({_ph(len(sel.runs))}) AND {column} IS NOT NULL GROUP BY step ORDER BY step")
    out = []
    for step, n, mean, var in _q(db, sql, sel.run_ids):
        std = math.sqrt(max(var, 0.0)) if var is not None else None
        out.append(Point((column,), step, n, mean, std, 0, 0, 0, 0))
    return out
