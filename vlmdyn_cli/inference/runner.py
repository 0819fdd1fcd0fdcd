"""The inference loop: for each checkpoint, load once, answer what is missing, batch by batch.

With a ``shard`` (``--shard i/N``) the process answers only the (checkpoint,
QA pair) units of its shard (vlmdyn_cli/sharding.py), so N processes fill one
database side by side; ``dry_run`` counts what each shard has left and
estimates its time from the speed measured so far (timings.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlite_utils import Database

from vlmdyn_cli.evalsets.match import normalised
from vlmdyn_cli.inference import items as items_mod
from vlmdyn_cli.inference import plan as plan_mod
from vlmdyn_cli.inference import store, timings
from vlmdyn_cli.inference.backends import GenBackend, get_backend
from vlmdyn_cli.inference.config import GenConfig
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.sharding import Shard, shard_of
from vlmdyn_cli.store import shards as shard_store
from vlmdyn_cli.store.db import immediate
from vlmdyn_cli.store.runs import get_run


@dataclass
class InferRequest:
    run: str
    checkpoints: list[int] | None = None     # None = all (see plan.resolve_checkpoints)
    sets: list[str] | None = None            # None = all of the run's sets
    backend: str = "hf"
    batch_size: int = 16
    gen: GenConfig = GenConfig()
    regenerate: bool = False                 # redo rows made with another generation config
    device: str = "auto"
    threads: int = 1                         # torch CPU threads while generating (0 = torch's default)
    shard: Shard | None = None               # only this shard's units (--shard i/N)
    reshard: bool = False                    # replace the split recorded for this plan


def run_inference(db: Database, req: InferRequest, reporter: Reporter | None = None,
                  backend: GenBackend | None = None) -> list[dict]:
    """Generate every missing (checkpoint, QA pair) of the plan; one summary dict per checkpoint."""
    reporter = reporter or NullReporter()
    run = get_run(db, req.run)
    plan = plan_mod.make_plan(db, run, req.sets, req.checkpoints)
    for w in plan.notes:
        reporter.info(w)
    if req.shard is not None:
        shard_store.claim(db, run.id, run.name, "infer", plan.split_key(req.gen.hash), req.shard,
                          reshard=req.reshard)
    cfg_hash = store.save_config(db, req.gen)
    backend = backend or get_backend(req.backend, device=req.device, threads=req.threads)
    timer = timings.Timer(run.id, backend.name, getattr(backend, "device", req.device), req.batch_size,
                          req.gen.max_new_tokens, None if req.shard is None else str(req.shard))
    summaries = []
    try:
        for step, folder in plan.checkpoints:
            owned = [it for it in plan.items if req.shard is None or req.shard.owns(it.unit_key(step))]
            summaries.append(_one_checkpoint(db, run.id, step, folder, owned, req, cfg_hash, backend, timer,
                                             reporter))
    finally:
        backend.close()
    return summaries


def _one_checkpoint(db, run_id, step, folder, owned, req, cfg_hash, backend, timer, reporter) -> dict:
    todo, other_cfg = plan_mod.pending(db, run_id, step, owned, cfg_hash, req.regenerate)
    label = f"step {step}" + (f" shard {req.shard}" if req.shard else "")
    t0 = time.monotonic()
    if todo:
        backend.load(folder)
        with immediate(db) as conn:
            timer.write(conn, step, "load", 0, time.monotonic() - t0)
        with reporter.task(label, total=len(todo), unit="items") as t:
            for batch in items_mod.batches(todo, req.batch_size):
                tb = time.monotonic()
                preds = backend.generate(batch, req.gen)
                store.write_batch(db, run_id, step, batch, preds, cfg_hash, backend.name,
                                  replace=req.regenerate, timer=timer, seconds=time.monotonic() - tb)
                t.advance(len(batch))
    secs = time.monotonic() - t0
    acc, n = _normalised_accuracy(db, run_id, step, [it.qa_id for it in owned])
    summary = {"step": step, "shard": None if req.shard is None else str(req.shard), "generated": len(todo),
               "already_done": len(owned) - len(todo), "items": len(owned), "seconds": round(secs, 2),
               "items_per_s": round(len(todo) / secs, 2) if todo and secs > 0 else None,
               "normalised_match": acc, "other_config": 0 if req.regenerate else other_cfg}
    rate = f", {summary['items_per_s']} items/s" if summary["items_per_s"] else ""
    reporter.info(
        f"checkpoint {step}{' shard ' + str(req.shard) if req.shard else ''}: {len(todo)} generated, "
        f"{summary['already_done']} already done{rate}; normalised string match {100 * acc:.1f}% of {n} "
        f"(string match, not a judgement)")
    if summary["other_config"]:
        reporter.info(f"  {other_cfg} stored answers at step {step} used another generation config and "
                      f"were kept; pass --regenerate to redo them with this one")
    return summary


def _normalised_accuracy(db, run_id, step, qa_ids) -> tuple[float, int]:
    wanted = set(qa_ids)
    rows = [(p, a) for qa, p, a in db.execute(
        "SELECT g.qa_id, g.prediction, q.answer FROM generations g JOIN qa_pairs q ON q.id = g.qa_id "
        "WHERE g.run_id = ? AND g.step = ?", [run_id, step]) if qa in wanted]
    if not rows:
        return 0.0, 0
    return sum(normalised(p, a) for p, a in rows) / len(rows), len(rows)


def dry_run(db: Database, req: InferRequest, shards: int = 1) -> dict:
    """What is left, split ``shards`` ways: items and checkpoint loads per shard, and the time each
    shard would take at the speed measured so far. Reads only."""
    run = get_run(db, req.run)
    plan = plan_mod.make_plan(db, run, req.sets, req.checkpoints)
    per_shard = [{"shard": f"{i}/{shards}", "items": 0, "loads": 0} for i in range(shards)]
    steps = []
    for step, _ in plan.checkpoints:
        todo, other = plan_mod.pending(db, run.id, step, plan.items, req.gen.hash, req.regenerate)
        counts = [0] * shards
        for it in todo:
            counts[shard_of(it.unit_key(step), shards) if shards > 1 else 0] += 1
        for row, c in zip(per_shard, counts):
            row["items"] += c
            row["loads"] += c > 0
        steps.append({"step": step, "items": len(plan.items), "done": len(plan.items) - len(todo),
                      "pending": len(todo), "other_config": 0 if req.regenerate else other})
    speed = timings.measured(db, run.id, run.name, run.model_id, req.backend)
    for row in per_shard:
        row["est_seconds"] = None if speed is None else round(speed.seconds(row["items"], row["loads"]), 1)
    recorded = shard_store.recorded(db, run.id, "infer", plan.split_key(req.gen.hash))
    return {
        "run": run.name, "sets": [s.name for s in plan.sets], "shards": shards, "checkpoints": steps,
        "per_shard": per_shard, "notes": plan.notes, "recorded_split": recorded,
        "pending": sum(s["pending"] for s in steps), "total": len(plan.items) * len(plan.checkpoints),
        "speed": None if speed is None else {"items_per_s": round(speed.items_per_s, 2), "load_s": speed.load_s,
                                             "batches": speed.n_batches, "items": speed.n_items,
                                             "measured_on": speed.source},
        "est_wall_seconds": None if speed is None else max(r["est_seconds"] for r in per_shard),
    }
