"""`vlmdyn demo`: the whole experiment on the embedded defaults, stage by stage.

Every stage is the library call the matching CLI command makes, and every one
of them skips what the database already holds, so a rerun continues where an
interrupted demo stopped. The stages report through one Reporter, prefixed
with the stage name, so the user sees a single pipeline with rates and ETAs.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vlmdyn_cli.atomic import write_text
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.progress import NullReporter, Reporter

if TYPE_CHECKING:
    from vlmdyn_cli.findings import FindingsReport

DATASET = "synth"
# How the demo trains the tiny model (on top of the preset's defaults), measured for one epoch of
# the synthetic benchmark to show the paper's findings (notes/demo-science.md):
# - the token embeddings learn at 1e-2 (the rest of the LM at 1e-3): a picture's made-up name
#   is one embedding row that moves only when the picture is trained on, so its hidden fact is
#   memorised in one or two exposures (findings 1-3);
# - Adam's beta2 0.99 instead of 0.999: with 0.999, the bias correction makes a rarely-updated
#   row move ~3x less early in the epoch than late, so early Seen@k sets would hardly jump (2);
# - vision tower and projector at 3e-4 (the preset's 3e-3 learns the pictures no better here);
# - a 1% warm-up, so answer formats are learned before the second checkpoint (7%; finding 8).
DEMO_TRAINING = {"train": {"warmup": 0.01, "adam_beta2": 0.99},
                 "parts": {"lr": {"vision": 3e-4, "projector": 3e-4, "embeddings": 1e-2}}}


@dataclass
class DemoConfig:
    out: Path = Path("vlmdyn-demo")
    seeds: int = 3
    images: int = 2400
    judge: str = "cascade"
    seen_size: int = 400
    unseen_size: int = 1000
    batch_size: int = 64
    max_new_tokens: int = 24
    data_seed: int = 0
    train_overrides: dict = field(default_factory=lambda: copy.deepcopy(DEMO_TRAINING))

    def validate(self) -> None:
        if self.seeds < 1:
            raise BadInput(f"--seeds must be at least 1 (got {self.seeds})")
        if self.images < 50:
            raise BadInput(f"--images must be at least 50 for the demo to have sets to build (got {self.images})")
        for flag, n in (("--seen-size", self.seen_size), ("--unseen-size", self.unseen_size)):
            if n < 1:
                raise BadInput(f"{flag} must be at least 1 (got {n})")
        if str(self.out).strip() in ("", "."):
            raise BadInput("--out: give the demo a folder of its own (the path is empty or '.')")
        if self.out.exists() and not self.out.is_dir():
            raise BadInput(f"--out {self.out} exists and is not a folder")

    @property
    def db_path(self) -> Path:
        return self.out / "vlmdyn.db"

    def run_name(self, seed: int) -> str:
        return f"demo-s{seed}"


@dataclass
class DemoResult:
    db_path: Path
    runs: list[str]
    report: Path
    figures: dict[str, str]
    timings: dict[str, float]
    findings: "FindingsReport"      # the paper's findings checked on this demo (vlmdyn_cli.findings)
    accuracy: list[dict]
    judge: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"db": str(self.db_path), "runs": self.runs, "report": str(self.report),
                "figures": self.figures, "timings_s": self.timings, "findings": self.findings.to_dict(),
                "accuracy": self.accuracy, "judge": self.judge, "notes": self.notes}


def run_demo(cfg: DemoConfig, reporter: Reporter | None = None) -> DemoResult:
    from vlmdyn_cli.judging.backends import check_installed
    from vlmdyn_cli.judging.run import checked_options
    from vlmdyn_cli.judging.spec import load_spec
    from vlmdyn_cli.store import open_db

    reporter = reporter or NullReporter()
    cfg.validate()
    spec = load_spec(cfg.judge)  # a bad --judge, or one whose packages are missing, fails before any work
    check_installed(spec)
    checked_options(spec, ready=True)  # ... and so does one that cannot run here (no API key)
    cfg.out.mkdir(parents=True, exist_ok=True)
    db = open_db(cfg.db_path)
    timings: dict[str, float] = {}

    def stage(name: str, fn):
        t0 = time.monotonic()
        out = fn(reporter.stage(name))
        timings[name] = round(time.monotonic() - t0, 1)
        return out

    data_dir = cfg.out / "data"
    stage("synth", lambda r: _synth(data_dir, cfg, r))
    stage("import", lambda r: _import(db, data_dir, r))
    stage("categorize", lambda r: _categorize(db, r))
    runs = [cfg.run_name(s) for s in range(cfg.seeds)]
    for seed, name in enumerate(runs):
        stage(f"train {name}", lambda r, seed=seed, name=name: _train(db, cfg, seed, name, r))
    for name in runs:
        stage(f"sets {name}", lambda r, name=name: _sets(db, cfg, name, r))
    for name in runs:
        stage(f"infer {name}", lambda r, name=name: _infer(db, cfg, name, r))
    for name in runs:
        stage(f"judge {name}", lambda r, name=name: _judge(db, spec, name, r))
    figures, report = stage("plots", lambda r: _plots(db, cfg, runs, spec.hash, r))
    from vlmdyn_cli.demo.accuracy import accuracy_table
    from vlmdyn_cli.findings import FindingsReport, check_findings

    try:
        findings = check_findings(db, runs=runs, judge=spec.hash)
    except BadInput as exc:  # e.g. a benchmark too small for any comparison: the demo's work stays valid
        findings = FindingsReport(spec.name, runs, [], [], [str(exc)])
    acc = accuracy_table(db, runs, spec.hash)
    write_text(cfg.out / "summary.json", json.dumps(
        {"timings_s": timings, "findings": findings.to_dict(), "accuracy": acc}, indent=2, default=str))
    return DemoResult(cfg.db_path, runs, report, figures, timings, findings, acc, spec.name)


def _synth(data_dir: Path, cfg: DemoConfig, r: Reporter) -> None:
    from vlmdyn_cli.data.synth import generate

    res = generate(data_dir, n_images=cfg.images, seed=cfg.data_seed, reporter=r)
    r.info(f"synthetic benchmark: {cfg.images} images in {data_dir}"
           + (" (already there)" if getattr(res, "skipped", False) else ""))


def _import(db, data_dir: Path, r: Reporter) -> None:
    from vlmdyn_cli.data.importer import import_dataset

    existing = db.execute("SELECT name FROM datasets").fetchall()
    if existing and existing[0][0] != DATASET:
        raise BadInput(f"{db} already holds dataset {existing[0][0]!r}; give the demo its own --out folder")
    res = import_dataset(db, data_dir / "llava.json", data_dir / "images", name=DATASET, reporter=r)
    r.info(f"imported {res.n_kept} conversations, {res.n_qa} QA pairs, {res.n_images} images"
           + (" (already imported)" if res.already_imported else ""))


def _categorize(db, r: Reporter) -> None:
    from vlmdyn_cli.data.categorize import categorize_dataset

    categorize_dataset(db, "rules", DATASET, reporter=r)


def _train(db, cfg: DemoConfig, seed: int, name: str, r: Reporter) -> None:
    from vlmdyn_cli.store.runs import find_run
    from vlmdyn_cli.training.config import load_config
    from vlmdyn_cli.training.trainer import train

    overrides = {"data": {"dataset": DATASET}, "train": {"out_dir": str((cfg.out / "runs").resolve())}}
    for sec, vals in cfg.train_overrides.items():
        overrides.setdefault(sec, {}).update(vals)
    tcfg = load_config(None, overrides)
    train(db, tcfg, seed=seed, run_name=name, resume=find_run(db, name) is not None, reporter=r)


def _sets(db, cfg: DemoConfig, name: str, r: Reporter) -> None:
    from vlmdyn_cli.evalsets import build
    from vlmdyn_cli.evalsets.selection import seen_members, unseen_candidates
    from vlmdyn_cli.store.runs import get_run

    run = get_run(db, name)
    steps = run.eval_steps
    # On a small benchmark a Seen@k set (the first checkpoint comes after ~1% of the epoch) and the
    # image-de-duplicated unseen set can have fewer candidates than asked: each set takes what there
    # is (and says so); the other sets keep their size.
    seen_n = {k: min(cfg.seen_size, len(seen_members(db, run.id, k, cfg.seen_size))) for k in steps}
    unseen_n = min(cfg.unseen_size, len(unseen_candidates(db, run.id, run.dataset_id, max(steps), "image")))
    if min(seen_n.values()) < 10 or unseen_n < 10:
        raise BadInput(f"run {name}: only {min(seen_n.values())} seen / {unseen_n} unseen candidates; "
                       f"use more --images")
    capped = [f"seen@{k} {n}" for k, n in seen_n.items() if n < cfg.seen_size]
    if unseen_n < cfg.unseen_size:
        capped.append(f"unseen {unseen_n}")
    if capped:
        r.info(f"{name}: set sizes capped to the candidates available: {', '.join(capped)}")
    specs = [s for k in steps for s in build.plan(run, [k], seen_n[k], unseen_n, [], None, run.seed)]
    specs += [s for s in build.plan(run, steps, cfg.seen_size, unseen_n, ["image", "pair", "none"], None, run.seed)
              if s.kind == "unseen"]
    build.build(db, run, specs, reporter=r)


def _infer(db, cfg: DemoConfig, name: str, r: Reporter) -> None:
    from vlmdyn_cli.inference.config import GenConfig
    from vlmdyn_cli.inference.runner import InferRequest, run_inference

    run_inference(db, InferRequest(run=name, batch_size=cfg.batch_size,
                                   gen=GenConfig(max_new_tokens=cfg.max_new_tokens)), reporter=r)


def _judge(db, spec, name: str, r: Reporter) -> None:
    from vlmdyn_cli.judging.run import judge_run

    s = judge_run(db, name, spec, reporter=r)
    r.info(f"{name}: {s.cached} judgements cached, {s.new} new")


def _plots(db, cfg: DemoConfig, runs: list[str], spec_hash: str, r: Reporter):
    from vlmdyn_cli.plots import aggregate as A
    from vlmdyn_cli.plots.figures import BUILDERS, build
    from vlmdyn_cli.plots.render import draw
    from vlmdyn_cli.plots.report import write_report

    sel = A.selection(db, runs=runs, judge=spec_hash)
    fig_dir = cfg.out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, str] = {}
    with r.task("figures", total=len(BUILDERS), unit="figures") as t:
        for name in BUILDERS:
            try:
                figures[name] = str(draw(build(db, name, sel), fig_dir / f"{name}.png"))
            except BadInput as exc:  # e.g. a category without items: say so, draw the rest
                r.info(f"figure {name} skipped: {exc}")
            t.advance()
    report = cfg.out / "report.html"
    write_report(db, sel, report, reporter=r)
    return figures, report
