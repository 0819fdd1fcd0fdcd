"""One epoch of training (or a fixed number of steps): a small trainer whose steps are named methods.

    Trainer(db, cfg, seed=...).run() -> summary dict
      set_up           the processes (accelerate), threads, tracker package check
      plan_run         dataset, schedule, run name; a new run, a resume, or a refusal   -> RunPlan
      build_model      build it (model registry) or load it (--init-from, resume); tokenise once;
                       packed attention for the language model ([train] packing)
      build_optimizer  parts (freeze, per-part LR), memory check, fused AdamW, accelerate prepare
      open_run         the runs row, status running
      make_batches     the epoch plan and this rank's batches (the collator is the replaceable piece)
      loop             per step: train_step, record; then checkpoint / flush / resume state
      finish           the run's status and timings

At a checkpoint step the model folder is written first, then the manifest,
metrics and checkpoint rows in one transaction (``flush``), then the resume
state. Works single-process (``vlmdyn train``) and under ``accelerate launch``
/ ``torchrun``: every rank computes the same order and consumes a disjoint
slice; rank 0 gathers what all ranks consumed and writes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from vlmdyn_cli.atomic import writable_ancestor
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.names import check_run_name
from vlmdyn_cli.models.checkpoint import load_checkpoint, quiet_transformers, save_checkpoint
from vlmdyn_cli.models.parts import param_groups
from vlmdyn_cli.models.registry import build_model, size_before_build
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.store.db import now
from vlmdyn_cli.store.runs import Run, checkpoints, find_run, get_run
from vlmdyn_cli.training import dataset as D
from vlmdyn_cli.training import distributed, trackers
from vlmdyn_cli.training import runs as R
from vlmdyn_cli.training.collate import Collator, ImageCache, rank_batches
from vlmdyn_cli.training.config import RESUMABLE_CHANGES, TrainConfig
from vlmdyn_cli.training.loss import LossModule, loss_sum
from vlmdyn_cli.training.memory import check_fits, estimate_bytes
from vlmdyn_cli.training.order import plan_epoch
from vlmdyn_cli.training.packing import use_packed_attention
from vlmdyn_cli.training.resume import ResumeState
from vlmdyn_cli.training.schedule import checkpoint_steps, lr_multiplier, total_steps
from vlmdyn_cli.training.speed import tune_malloc

FLUSH_EVERY = 200          # also write manifest/metrics rows every N steps


def train(db, cfg: TrainConfig, *, seed: int = 0, run_name: str | None = None, resume: bool = False,
          init_from: str | None = None, reporter: Reporter | None = None,
          collate_hook=None, stop_after_step: int | None = None) -> dict:
    """Train one epoch; returns the run's summary. See notes/models-api.md."""
    return Trainer(db, cfg, seed=seed, run_name=run_name, resume=resume, init_from=init_from, reporter=reporter,
                   collate_hook=collate_hook, stop_after_step=stop_after_step).run()


@dataclass(frozen=True)
class RunPlan:
    dataset: dict
    convs: list[D.Conversation]
    name: str
    run_dir: Path                 # <out_dir>/<run>: checkpoints/, resume/
    global_batch: int
    total: int
    checkpoint_steps: list[int]
    resolved: dict                # the config as stored with the run (+ seed, world size, global batch)
    existing: Run | None          # the run, when it exists already
    start_step: int               # steps already done (resume)
    init_from: str | None

    @property
    def done(self) -> bool:
        return self.existing is not None and self.existing.status == "done"


class Trainer:
    """``collate_hook(batch)`` sees every collated batch (tests record it); ``stop_after_step``
    raises KeyboardInterrupt after that step (a simulated kill). ``prepare()`` runs every step
    before the loop, so a caller can look at the model before ``run()``."""

    def __init__(self, db, cfg: TrainConfig, *, seed: int = 0, run_name: str | None = None, resume: bool = False,
                 init_from: str | None = None, reporter: Reporter | None = None, collate_hook=None,
                 stop_after_step: int | None = None):
        self.db, self.cfg, self.seed = db, cfg, seed
        self.run_name, self.resume, self.init_from = run_name, resume, init_from
        self.reporter = reporter or NullReporter()
        self.collate_hook, self.stop_after_step = collate_hook, stop_after_step
        self.plan: RunPlan | None = None
        self.consumed: list[tuple[int, int, int]] = []     # (conversation, step, position) not yet written
        self.metric_rows: list[tuple] = []

    # ---------------------------------------------------------------- before the first step

    def prepare(self) -> None:
        self.set_up()
        self.plan = self.plan_run()
        if self.plan.done:
            return
        self.build_model()
        self.build_optimizer()
        self.open_run()
        self.make_batches()

    def set_up(self) -> None:
        trackers.check(self.cfg.train.report_to)
        quiet_transformers()
        tune_malloc()
        self.dist = distributed.start(self.cfg.train.mixed_precision, self.cfg.train.threads)
        if not self.dist.main:
            self.reporter = NullReporter()

    def plan_run(self) -> RunPlan:
        """What to train on and the schedule: every check here runs before anything heavy."""
        cfg, db = self.cfg, self.db
        mix = D.resolve_datasets(db, cfg.data.dataset)
        ds = mix[0]                       # the run's dataset; a mix trains on all of them
        convs = D.sample_conversations(D.load_mix(db, mix), cfg.data.sample, cfg.data.sample_seed,
                                       "+".join(d["name"] for d in mix))
        B = cfg.train.per_device_batch * cfg.train.grad_accum * self.dist.world
        total = cfg.train.steps or total_steps(len(convs), B)
        ck = cfg.checkpoints
        ck_steps = checkpoint_steps(ck.steps, total, ck.include_step_0, ck.final)
        name = (check_run_name(self.run_name) if self.run_name is not None
                else R.default_run_name("+".join(d["name"] for d in mix), cfg.model.id, self.seed))
        run_dir = Path(cfg.train.out_dir).resolve() / name
        writable_ancestor(run_dir, "[train] out_dir")   # made later: a bad input after this leaves none
        resolved = {**cfg.to_dict(), "seed": self.seed, "world_size": self.dist.world, "global_batch": B}
        run = find_run(db, name)
        start, init_from = 0, self.init_from
        if run is not None:
            same = _comparable(json.loads(run.config_json)) == _comparable(resolved)
            if run.status == "running" and run.pid is not None and not run.process_gone:
                raise BadInput(f"run '{name}' is being trained right now (pid {run.pid} on {run.host}); "
                               "wait for it, or stop that process first")
            if run.status == "done" and same:      # a finished stage rerun does nothing, like every other stage
                self.reporter.info(f"run {name} is already done ({run.total_steps} steps): nothing to do")
            elif run.status == "done":
                raise BadInput(f"run '{name}' is done, with another config (model, data, batch, schedule or "
                               "loss differ); choose another --run name or --seed")
            elif not self.resume:
                gone = f", its process (pid {run.pid} on {run.host}) is gone" if run.process_gone else ""
                raise BadInput(f"run '{name}' exists (status {run.status}{gone}); add --resume to continue it, "
                               "or choose another --run name")
            elif not same:
                raise BadInput(f"--resume: the config differs from the one run '{name}' started with "
                               "(model, data, batch, schedule and loss must match)")
            start, init_from = ResumeState(run_dir).step(), run.init_from
        elif init_from:
            source, _, _ = R.find_checkpoint(db, init_from)  # fail early on a bad RUN[:STEP] ...
            _check_same_model(init_from, source, resolved)    # ... or a [model] the weights do not have
        return RunPlan(ds, convs, name, run_dir, B, total, ck_steps, resolved, run, start, init_from)

    def build_model(self) -> None:
        cfg, plan = self.cfg, self.plan
        torch.manual_seed(self.seed)
        if plan.start_step > 0 or plan.init_from:
            path = (ResumeState(plan.run_dir).model_dir if plan.start_step > 0
                    else R.find_checkpoint(self.db, plan.init_from)[2])
            model, processor, _ = load_checkpoint(path)
            model.train()
        else:
            self._check_memory_before_build()
            texts = (D.conversation_text(c)[0] for c in plan.convs)   # read only by models that learn a vocabulary
            model, processor = build_model(cfg.model.id, {**asdict(cfg.model), "seed": self.seed}, texts=texts)
        n_img = int(model.config.image_seq_length)
        if cfg.data.max_length < n_img + 8:
            raise BadInput(f"[data] max_length {cfg.data.max_length} leaves no room for text after the "
                           f"{n_img} image tokens")
        self.encoded = D.encode_all(plan.convs, processor.tokenizer, n_img, cfg.train.loss, cfg.data.max_length)
        if self.encoded.n_truncated:
            self.reporter.info(f"{self.encoded.n_truncated} conversation(s) longer than [data] max_length "
                               f"{cfg.data.max_length} tokens are cut")
        if cfg.model.gradient_checkpointing:
            enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
            enable()
            model.config.use_cache = False
        self.packed = cfg.train.packing and use_packed_attention(model)
        if cfg.train.packing and not self.packed:
            self.reporter.info(f"{cfg.model.id}: its language model cannot use packed attention (no "
                               "AttentionInterface support, or sliding windows); training on padded batches")
        self.llava, self.processor = model, processor

    def _check_memory_before_build(self) -> None:
        """Refuse impossible sizes before allocating anything, for models whose size is known unbuilt."""
        cfg = self.cfg
        size = size_before_build(cfg.model.id, asdict(cfg.model))
        if size is None:
            return
        check_fits(estimate_bytes(size.n_params, size.n_params, cfg.train.per_device_batch,
                                  min(cfg.data.max_length, 256), size.hidden, size.layers, size.vocab),
                   self.dist.device.type, f"the {cfg.model.id} model ({size.n_params / 1e6:.0f}M parameters)")

    def build_optimizer(self) -> None:
        t, model = self.cfg.train, self.llava
        groups, counts = param_groups(model, t.lr, list(self.cfg.parts.freeze), self.cfg.parts.lr, t.weight_decay)
        tc = model.config.text_config
        longest = max(len(x) for x in self.encoded.ids)
        check_fits(estimate_bytes(sum(p.numel() for p in model.parameters()), sum(counts.values()),
                                  min(t.per_device_batch, len(self.plan.convs)), longest, tc.hidden_size,
                                  tc.num_hidden_layers, tc.vocab_size, 2 if t.mixed_precision != "no" else 4),
                   self.dist.device.type, f"per_device_batch {t.per_device_batch} x {longest} tokens")
        for g in groups:
            g["base_lr"] = g["lr"]
        # one fused kernel for all parameters instead of a dozen small ops per tensor (as transformers.Trainer)
        fused = self.dist.device.type in ("cpu", "cuda") and not self.dist.sharded
        opt = torch.optim.AdamW(groups, lr=t.lr, betas=(t.adam_beta1, t.adam_beta2), fused=fused or None)
        self.params = [p for g in groups for p in g["params"]]
        self.wrapped, self.opt = self.dist.acc.prepare(LossModule(model), opt)
        if self.plan.start_step > 0:
            ResumeState(self.plan.run_dir).load_optimizer(self.dist, self.opt)

    def open_run(self) -> None:
        plan, db = self.plan, self.db
        if self.dist.main:
            if plan.existing is None:
                run_id = R.create_run(db, name=plan.name, dataset_id=plan.dataset["id"], seed=self.seed,
                                      model_id=self.cfg.model.id, cfg=plan.resolved, out_dir=plan.run_dir,
                                      total_steps=plan.total, global_batch=plan.global_batch,
                                      checkpoint_steps=plan.checkpoint_steps, init_from=plan.init_from)
            else:
                run_id = plan.existing.id
                R.forget_after(db, run_id, plan.start_step)
            R.set_status(db, run_id, "running", pid=os.getpid(), host=socket.gethostname())
        self.dist.acc.wait_for_everyone()
        self.run_id = get_run(db, plan.name).id

    def make_batches(self) -> None:
        plan, t, dist = self.plan, self.cfg.train, self.dist
        self.epoch = plan_epoch(plan.convs, self.encoded, self.seed, plan.global_batch, self.cfg.train.steps)
        images = [c.image for c in plan.convs]
        collate = Collator(self.encoded, self.epoch, images, self.processor.tokenizer.pad_token_id,
                           ImageCache(self.processor.image_processor, sum(1 for i in images if i)), pack=self.packed)
        self.batches = rank_batches(self.epoch, collate, per_device=t.per_device_batch, grad_accum=t.grad_accum,
                                    world=dist.world, rank=dist.rank, start_step=plan.start_step + 1,
                                    num_workers=t.num_workers)

    # ---------------------------------------------------------------- the loop

    def run(self) -> dict:
        if self.plan is None:
            self.prepare()
        if self.plan.done:
            return self.summary()
        plan = self.plan
        self.tracker = (trackers.open_tracker(self.cfg.train.report_to, plan.name, plan.resolved, plan.run_dir)
                        if self.dist.main else None)
        self.t_start = time.monotonic()
        status = "interrupted"
        try:
            with _sigterm_as_interrupt():
                self.loop()
            status = "done"
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            raise
        finally:
            if self.tracker:
                self.tracker.close()
            self.finish(status)
        return self.summary()

    def loop(self) -> None:
        plan = self.plan
        if plan.start_step == 0 and 0 in plan.checkpoint_steps:
            self.checkpoint(0, None)
        self.wrapped.train()
        with self.reporter.task(f"train {plan.name}" + (f" from step {plan.start_step}" if plan.start_step else ""),
                                total=plan.total - plan.start_step, unit="steps") as task:
            for step in range(plan.start_step + 1, plan.total + 1):
                t0 = time.perf_counter()
                loss, lr = self.train_step(step)
                self.record(step, loss, lr, max(time.perf_counter() - t0, 1e-9), task)
                self.after_step(step, loss)
                if self.stop_after_step is not None and step >= self.stop_after_step:
                    raise KeyboardInterrupt
        self.flush()

    def train_step(self, step: int) -> tuple[float, float]:
        """One optimizer step over this rank's micro-batches; returns (loss per target token, lr)."""
        t, dist, acc = self.cfg.train, self.dist, self.dist.acc
        mult = lr_multiplier(step, self.plan.total, t.warmup, t.min_lr_ratio)
        for g in self.opt.param_groups:
            g["lr"] = g["base_lr"] * mult
        n_targets = max(int(self.epoch.targets[step - 1]), 1)
        scale = dist.world / n_targets       # DDP averages over ranks: undo that, divide by the global count
        total = torch.zeros((), device=dist.device)
        for m in range(t.grad_accum):
            batch = next(self.batches)
            assert batch["step"] == step and batch["micro"] == m, "order and loop out of step"
            if self.collate_hook:
                self.collate_hook(batch)
            sync = contextlib.nullcontext() if m == t.grad_accum - 1 else acc.no_sync(self.wrapped)
            with sync:
                with acc.autocast():
                    s = loss_sum(self.wrapped, batch, dist.device)
                acc.backward(s * (scale * batch["weight"]))
            total += s.detach() * batch["weight"]
            self.consumed.extend((c, step, p) for c, p in zip(batch["conversation_ids"], batch["positions"]))
        if t.max_grad_norm > 0:
            acc.clip_grad_norm_(self.params, t.max_grad_norm)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if dist.world > 1:
            total = acc.reduce(total, reduction="sum")
        return float(total) / n_targets, t.lr * mult

    def record(self, step: int, loss: float, lr: float, seconds: float, task) -> None:
        sps, tps = self.epoch.items[step - 1] / seconds, self.epoch.tokens[step - 1] / seconds
        self.metric_rows.append((step, loss, lr, sps, tps, time.time()))
        if self.tracker:
            self.tracker.log(step, {"loss": loss, "lr": lr, "samples_per_s": sps, "tokens_per_s": tps})
        task.advance(1, loss=f"{loss:.3f}", **{"samples/s": f"{sps:.0f}"})

    def after_step(self, step: int, loss: float) -> None:
        resume_every = self.cfg.train.resume_every
        if step in self.plan.checkpoint_steps:
            self.checkpoint(step, loss)
            if step < self.plan.total:
                self.save_resume(step)
        elif resume_every and step % resume_every == 0:
            self.flush()
            self.save_resume(step)
        elif step % FLUSH_EVERY == 0:
            self.flush()

    # ---------------------------------------------------------------- what a run leaves behind

    def checkpoint(self, step: int, loss: float | None) -> None:
        """The model folder, then its row with the manifest and metrics so far (one transaction)."""
        plan = self.plan
        full = distributed.gathered(self.dist, self.wrapped, self.llava)
        path = plan.run_dir / "checkpoints" / f"step-{step:06d}"
        if self.dist.main:
            meta = {"step": step, "seed": self.seed, "run": plan.name, "model_id": self.cfg.model.id,
                    "total_steps": plan.total, "global_batch": plan.global_batch, "dataset": plan.dataset["name"],
                    "init_from": plan.init_from, "config": plan.resolved}
            save_checkpoint(full, self.processor, path, meta)
        self.dist.acc.wait_for_everyone()
        self.flush(checkpoint=(step, str(path)))
        self.reporter.info(f"checkpoint {plan.name} step {step}/{plan.total} ({100 * step / plan.total:.1f}% of "
                           "the epoch)" + (f" loss {loss:.4f}" if loss is not None else "")
                           + f" elapsed {time.monotonic() - self.t_start:.0f}s -> {path}")

    def flush(self, checkpoint: tuple[int, str] | None = None) -> None:
        """Write the order manifest (gathered from every rank) and the metrics rows collected so far."""
        rows = distributed.gather_rows(self.dist, self.consumed)
        if self.dist.main:
            R.write_progress(self.db, self.run_id, rows, self.metric_rows, checkpoint)
        self.consumed.clear()
        self.metric_rows.clear()

    def save_resume(self, step: int) -> None:
        ResumeState(self.plan.run_dir).save(self.dist, self.wrapped, self.llava, self.processor, self.opt, step,
                                            self.plan.name)

    def finish(self, status: str) -> None:
        if not self.dist.main:
            return
        plan, db = self.plan, self.db
        elapsed = time.monotonic() - self.t_start
        fields = {"train_seconds": elapsed}
        if status == "done":
            trained = len(self.epoch.order) - plan.start_step * plan.global_batch
            fields.update(finished_at=now(), samples_per_s=trained / max(elapsed, 1e-9))
        R.set_status(db, self.run_id, status, **fields)
        if status == "done":
            ResumeState(plan.run_dir).remove()    # after "done": a kill in between leaves only spare files
            n = db.execute("SELECT COUNT(*) FROM run_order WHERE run_id=?", [self.run_id]).fetchone()[0]
            self.reporter.info(f"run {plan.name} done: {plan.total} steps, {n} conversations, {elapsed:.1f}s")

    def summary(self) -> dict:
        run = get_run(self.db, self.plan.name)
        return {
            "run": run.name, "run_id": run.id, "status": run.status, "seed": run.seed,
            "model_id": run.model_id, "total_steps": run.total_steps, "global_batch": run.global_batch,
            "checkpoints": {str(k): v for k, v in checkpoints(self.db, run.id).items()},
            "train_seconds": run.train_seconds, "samples_per_s": run.samples_per_s,
        }


# [model] keys that may differ from the --init-from run's: they do not change the architecture
MODEL_CHANGES_ALLOWED = ("gradient_checkpointing", "dtype")


def _check_same_model(spec: str, source, resolved: dict) -> None:
    """BadInput when the config's [model] describes another model than the --init-from run's (the
    checkpoint's architecture is what trains, so the new run's stored config would be wrong)."""
    stored = json.loads(source.config_json).get("model", {})
    diff = [f"{k} = {v!r} (that run: {stored[k]!r})" for k, v in resolved["model"].items()
            if k not in MODEL_CHANGES_ALLOWED and k in stored and stored[k] != v]
    if diff:
        raise BadInput(f"--init-from {spec}: the config's [model] is not the model of run '{source.name}': "
                       f"{'; '.join(diff)}. The weights keep that run's architecture: give the [model] it "
                       "was trained with")


def _comparable(resolved: dict) -> dict:
    """The parts of a stored config that must not change between a run and its resume."""
    keep = {k: v for k, v in resolved.items() if k != "train"}
    keep["train"] = {k: v for k, v in resolved["train"].items() if k not in RESUMABLE_CHANGES}
    return keep


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """`kill PID` marks the run interrupted (like Ctrl-C) instead of leaving it 'running'."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
