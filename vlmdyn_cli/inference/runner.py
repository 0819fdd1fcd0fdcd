"""The inference loop: for each checkpoint, load once, answer what is missing, batch by batch."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlite_utils import Database

from vlmdyn_cli.evalsets.match import normalised
from vlmdyn_cli.inference import items as items_mod
from vlmdyn_cli.inference import plan, store
from vlmdyn_cli.inference.backends import GenBackend, get_backend
from vlmdyn_cli.inference.config import GenConfig
from vlmdyn_cli.progress import NullReporter, Reporter
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


def run_inference(db: Database, req: InferRequest, reporter: Reporter | None = None,
                  backend: GenBackend | None = None) -> list[dict]:
    """Generate every missing (checkpoint, QA pair) of the plan; one summary dict per checkpoint."""
    reporter = reporter or NullReporter()
    run = get_run(db, req.run)
    sets = plan.resolve_sets(db, run, req.sets)
    ckpts = plan.resolve_checkpoints(db, run, req.checkpoints, sets)
    for w in plan.unseen_warnings([k for k, _ in ckpts], sets):
        reporter.info(w)
    all_items = items_mod.load_items(db, plan.qa_ids_of(db, sets))
    items_mod.check_images(all_items)
    cfg_hash = store.save_config(db, req.gen)
    backend = backend or get_backend(req.backend, device=req.device, threads=req.threads)
    summaries = []
    try:
        for step, folder in ckpts:
            summaries.append(_one_checkpoint(db, run.id, step, folder, all_items, req, cfg_hash,
                                             backend, reporter))
    finally:
        backend.close()
    return summaries


def _one_checkpoint(db, run_id, step, folder, all_items, req, cfg_hash, backend, reporter) -> dict:
    done_any = store.done_qa_ids(db, run_id, step)
    done_same = store.done_qa_ids(db, run_id, step, cfg_hash)
    done = done_same if req.regenerate else done_any
    pending = [it for it in all_items if it.qa_id not in done]
    other_cfg = len({it.qa_id for it in all_items} & (done_any - done_same))
    t0 = time.monotonic()
    if pending:
        backend.load(folder)
        with reporter.task(f"step {step}", total=len(pending), unit="items") as t:
            for batch in items_mod.batches(pending, req.batch_size):
                preds = backend.generate(batch, req.gen)
                store.write_batch(db, run_id, step, batch, preds, cfg_hash, backend.name,
                                  replace=req.regenerate)
                t.advance(len(batch))
    secs = time.monotonic() - t0
    acc, n = _normalised_accuracy(db, run_id, step, [it.qa_id for it in all_items])
    summary = {"step": step, "generated": len(pending), "already_done": len(all_items) - len(pending),
               "items": len(all_items), "seconds": round(secs, 2),
               "items_per_s": round(len(pending) / secs, 2) if pending and secs > 0 else None,
               "normalised_match": acc, "other_config": 0 if req.regenerate else other_cfg}
    rate = f", {summary['items_per_s']} items/s" if summary["items_per_s"] else ""
    reporter.info(
        f"checkpoint {step}: {len(pending)} generated, {summary['already_done']} already done"
        f"{rate}; normalised string match {100 * acc:.1f}% of {n} (string match, not a judgement)")
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
