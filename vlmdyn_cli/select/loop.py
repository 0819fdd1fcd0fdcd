"""The Individual Select loop over ordinary runs.

    for each round (a category of candidates, in plan order):
        train base and base + each candidate alone (per seed), evaluate each on the benchmark
        keep the candidates the acceptance rule keeps (decision.py), merge them into the base
    then the selected mix and, for comparison, the mix of every candidate

Every training is ``vlmdyn train`` (a run named ``<plan>-<label>-s<seed>``,
with its order manifest); evaluation is ``infer`` and ``judge`` on the run's
last checkpoint and its ``benchmark`` eval set, with their caching. A mix
that was trained before in the plan (the next round's base is often a kept
candidate's mix) reuses that run. The walk is deterministic given the
results, so a rerun after a kill replays it: finished runs, generations and
judgements are reused, an interrupted run resumes, nothing is trained twice.

``walk(..., mode="read")`` trains nothing: the report and ``--dry-run`` read
the same walk and stop at the first run that is not finished.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from vlmdyn_cli.errors import BadInput, Failure
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.select.decision import Decision, decide, mean_sd
from vlmdyn_cli.select.plan import SelectPlan

SET_NAME = "benchmark"
MAX_NEW_TOKENS = 16
INFER_BATCH = 64


@dataclass
class RunScore:
    """One run of the plan (a mix and a seed) and its benchmark result, if it has one."""

    name: str
    mix: tuple[str, ...]
    seed: int
    status: str                       # missing | created | running | interrupted | failed | done | unscored
    accuracy: float | None = None     # points: yes / scored
    scored: int = 0
    unscored: int = 0
    unjudged: int = 0                 # benchmark items without a generation or judgement yet
    by_category: dict[str, tuple[int, int]] = field(default_factory=dict)   # category -> (yes, scored)

    @property
    def ready(self) -> bool:
        return self.accuracy is not None and self.unjudged == 0

    def as_dict(self) -> dict:
        return {"run": self.name, "mix": list(self.mix), "seed": self.seed, "status": self.status,
                "accuracy": None if self.accuracy is None else round(self.accuracy, 2), "scored": self.scored,
                "unscored": self.unscored, "unjudged": self.unjudged,
                "by_category": {c: {"yes": y, "scored": n} for c, (y, n) in sorted(self.by_category.items())}}


@dataclass
class Arm:
    """A mix over all seeds (the base of a round, a candidate, the selected or the all mix)."""

    label: str
    mix: tuple[str, ...]
    runs: list[RunScore]
    decision: Decision | None = None

    @property
    def ready(self) -> bool:
        return all(r.ready for r in self.runs)

    def accuracies(self) -> list[float]:
        return [r.accuracy for r in self.runs]

    def mean_sd(self) -> tuple[float, float | None] | None:
        return mean_sd(self.accuracies()) if self.ready else None

    def category_accuracy(self) -> dict[str, float]:
        """Category -> accuracy (points) pooled over seeds."""
        tot: dict[str, list[int]] = {}
        for r in self.runs:
            for c, (y, n) in r.by_category.items():
                t = tot.setdefault(c, [0, 0])
                t[0] += y
                t[1] += n
        return {c: 100 * y / n for c, (y, n) in sorted(tot.items()) if n}


@dataclass
class RoundResult:
    number: int
    category: str
    base: Arm
    candidates: list[Arm]
    kept: list[str] = field(default_factory=list)
    decided: bool = False


@dataclass
class Walk:
    plan: SelectPlan
    rounds: list[RoundResult] = field(default_factory=list)
    selected: Arm | None = None
    everything: Arm | None = None
    pending: list[RunScore] = field(default_factory=list)   # runs the walk waits for (read mode)

    @property
    def complete(self) -> bool:
        return self.selected is not None and self.everything is not None and \
            self.selected.ready and self.everything.ready


class _Runner:
    """Trains and evaluates (mode "run") or only reads (mode "read") the runs of a plan."""

    def __init__(self, db, plan: SelectPlan, bench: list[int], spec, out_dir: str, mode: str,
                 reporter: Reporter, progress=None):
        self.db, self.plan, self.bench, self.spec = db, plan, bench, spec
        self.out_dir, self.mode, self.reporter, self.progress = out_dir, mode, reporter, progress
        self.names: dict[tuple[tuple[str, ...], int], str] = {}
        self.done_names: set[str] = set()
        self.definition = {"kind": "benchmark", "plan": plan.name, "datasets": list(plan.benchmark),
                           "size": len(bench), "sample_seed": 0, "first": bench[0], "last": bench[-1]}

    def arm(self, label: str, mix: tuple[str, ...]) -> Arm:
        return Arm(label, mix, [self.score(label, mix, seed) for seed in self.plan.seeds])

    def name(self, label: str, mix: tuple[str, ...], seed: int) -> str:
        return self.names.setdefault((mix, seed), f"{self.plan.name}-{label}-s{seed}")

    def score(self, label: str, mix: tuple[str, ...], seed: int) -> RunScore:
        from vlmdyn_cli.store.runs import find_run

        name = self.name(label, mix, seed)
        run = find_run(self.db, name)
        if run is not None:
            _check_same_data(run, self.config(mix), seed, self.plan.name)
        if self.mode == "run" and name not in self.done_names:
            if self.progress is not None:
                self.progress.advance(0, now=f"{label} seed {seed}")
            self._train(name, mix, seed, run)
            self._evaluate(name)
            self.done_names.add(name)
            if self.progress is not None:
                self.progress.advance(1)
            run = find_run(self.db, name)
        if run is None:
            return RunScore(name, mix, seed, "missing", unjudged=len(self.bench))
        score = read_score(self.db, run, mix, self.spec.hash, len(self.bench))
        if self.mode == "run" and score.status == "unscored":
            raise Failure(f"run {name}: judge {self.spec.name} decided none of the {score.unscored} benchmark "
                          "items (all unscored), so there is no accuracy to compare; see them with `vlmdyn "
                          f"judgements list --judge {self.spec.name} --status unscored` and use a judge that "
                          "decides them (e.g. cascade or lexical)")
        return score

    def config(self, mix):
        from vlmdyn_cli.select.plan import training_config

        return training_config(self.plan, mix, self.out_dir)

    def _train(self, name: str, mix, seed: int, run) -> None:
        from vlmdyn_cli.training.trainer import train

        if run is not None and run.status == "done":
            return
        cfg = self.config(mix)
        verb = "resuming" if run is not None else "training"
        self.reporter.info(f"{verb} {name}: {' + '.join(mix)}, seed {seed}")
        train(self.db, cfg, seed=seed, run_name=name, resume=run is not None, reporter=self.reporter.stage(name))

    def _evaluate(self, name: str) -> None:
        from vlmdyn_cli.evalsets.build import fixed_set
        from vlmdyn_cli.inference.config import GenConfig
        from vlmdyn_cli.inference.runner import InferRequest, run_inference
        from vlmdyn_cli.judging.run import judge_run
        from vlmdyn_cli.store.runs import checkpoints, get_run

        run = get_run(self.db, name)
        fixed_set(self.db, run, SET_NAME, self.bench, self.definition)
        last = max(checkpoints(self.db, run.id))
        r = self.reporter.stage(name)
        run_inference(self.db, InferRequest(run=name, checkpoints=[last], sets=[SET_NAME], batch_size=INFER_BATCH,
                                            gen=GenConfig(max_new_tokens=MAX_NEW_TOKENS)), reporter=r)
        judge_run(self.db, name, self.spec, sets=[SET_NAME], checkpoints=[last], reporter=r)


def _check_same_data(run, cfg, seed: int, plan_name: str) -> None:
    """A run found under the plan's name must be the run the plan asks for (e.g. one a scheduler trained)."""
    from vlmdyn_cli.training.config import training_differences

    diff = training_differences(json.loads(run.config_json), cfg) + (["seed"] if run.seed != seed else [])
    if diff:
        raise BadInput(f"run '{run.name}' exists but was trained with another {', '.join(diff)} than plan "
                       f"'{plan_name}' asks for ({' + '.join(cfg.data.dataset)}, seed {seed}); "
                       "this plan needs that name: rename the plan ('name') or use another database")


def read_score(db, run, mix, spec_hash: str, n_bench: int) -> RunScore:
    """A run's benchmark result at its last checkpoint under the judge (partial while work is left)."""
    from vlmdyn_cli.store.runs import checkpoints

    score = RunScore(run.name, tuple(mix), run.seed, run.status, unjudged=n_bench)
    ck = checkpoints(db, run.id)
    if run.status != "done" or not ck:
        return score
    rows = db.execute(
        "SELECT COALESCE(q.category, q.true_category, 'uncategorised') AS cat, "
        "SUM(j.status = 'scored' AND j.verdict = 'yes'), SUM(j.status = 'scored'), SUM(j.status = 'unscored'), "
        "SUM(j.status IS NULL) "
        "FROM eval_sets s JOIN eval_set_members m ON m.set_id = s.id JOIN qa_pairs q ON q.id = m.qa_id "
        "LEFT JOIN generations g ON g.run_id = s.run_id AND g.step = ? AND g.qa_id = m.qa_id "
        "LEFT JOIN judgements j ON j.triple_hash = g.triple_hash AND j.spec_hash = ? "
        "WHERE s.run_id = ? AND s.name = ? GROUP BY cat", [max(ck), spec_hash, run.id, SET_NAME]).fetchall()
    if not rows:
        return score
    yes = sum(r[1] or 0 for r in rows)
    scored = sum(r[2] or 0 for r in rows)
    score.scored, score.unscored = scored, sum(r[3] or 0 for r in rows)
    score.unjudged = sum(r[4] or 0 for r in rows)
    score.by_category = {r[0]: (r[1] or 0, r[2] or 0) for r in rows}
    if scored:
        score.accuracy = 100 * yes / scored
    elif not score.unjudged:
        score.status = "unscored"      # judged, but the judge decided none of the items
    return score


def walk(db, plan: SelectPlan, bench: list[int], spec, out_dir: str, mode: str = "read",
         reporter: Reporter | None = None) -> Walk:
    """Replay (and in mode "run", do) the selection; stops at the first round that is not decided."""
    reporter = reporter or NullReporter()
    w = Walk(plan)
    with reporter.task(f"select {plan.name}", total=None, unit="runs") as progress:
        runner = _Runner(db, plan, bench, spec, out_dir, mode, reporter, progress if mode == "run" else None)
        base = plan.mix(plan.base)
        for i, rnd in enumerate(plan.rounds, 1):
            # runs so far + at most: a new base, each candidate left, the selected and the all mix
            left = sum(len(r.candidates) for r in plan.rounds[i - 1:])
            progress.set_total(len(runner.names) + len(plan.seeds) * (left + 3))
            r = RoundResult(i, rnd.category, runner.arm(f"r{i}-base", base), [])
            for c in rnd.candidates:
                r.candidates.append(runner.arm(f"r{i}-{c}", plan.mix(base + (c,))))
            w.rounds.append(r)
            waiting = [s for a in [r.base, *r.candidates] for s in a.runs if not s.ready]
            if waiting:
                w.pending = waiting
                return w
            for a in r.candidates:
                a.decision = decide(r.base.accuracies(), a.accuracies(), plan.tolerance, plan.seed_margin)
            r.kept = [_added(a.mix, base) for a in r.candidates if a.decision.keep]
            r.decided = True
            base = plan.mix(base + tuple(r.kept))
        progress.set_total(len(runner.names) + 2 * len(plan.seeds))
        w.selected = runner.arm("selected", base)
        w.everything = runner.arm("all", plan.mix(plan.base + plan.candidates))
        w.pending = [s for a in (w.selected, w.everything) for s in a.runs if not s.ready]
        progress.set_total(progress.done)
    return w


def _added(mix: tuple[str, ...], base: tuple[str, ...]) -> str:
    (extra,) = [m for m in mix if m not in base]
    return extra


def default_out_dir(db_path) -> str:
    return str((Path(db_path).resolve().parent / "runs"))


def prepare(db, plan: SelectPlan, write: bool):
    """Every check before work: the judge, the datasets, the benchmark and its overlap, the stored plan.

    Returns (judge spec, benchmark QA ids). ``write`` stores the plan on its first run."""
    from vlmdyn_cli.judging.run import preflight
    from vlmdyn_cli.judging.spec import load_spec
    from vlmdyn_cli.select.overlap import benchmark_ids, check_overlap
    from vlmdyn_cli.select.plan import check_datasets, record_plan, training_config

    spec = load_spec(plan.judge)
    datasets = check_datasets(db, plan)
    bench = benchmark_ids(db, plan, datasets)
    check_overlap(db, plan, datasets, bench)
    training_config(plan, plan.mix(plan.base + plan.candidates), "runs")   # a bad [training] fails here
    if write:
        preflight(spec)
    record_plan(db, plan, datasets, write=write)   # last: a plan is stored only once it can run
    return spec, bench


def run_select(db, plan: SelectPlan, out_dir: str, reporter: Reporter | None = None) -> Walk:
    """Do the whole selection (resumable); returns the finished walk."""
    spec, bench = prepare(db, plan, write=True)
    return walk(db, plan, bench, spec, out_dir, mode="run", reporter=reporter)


def read_select(db, plan: SelectPlan, out_dir: str) -> Walk:
    """The selection as far as the database has it (nothing is trained or written)."""
    spec, bench = prepare(db, plan, write=False)
    return walk(db, plan, bench, spec, out_dir, mode="read")
