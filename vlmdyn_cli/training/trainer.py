"""One epoch of training: the loop that consumes the order and records it.

Flow: resolve the run (schedule, checkpoint steps, DB row) -> build or load
the model -> tokenise every conversation once -> for each optimizer step,
collate this rank's micro-batches, forward/backward with a loss normalised
by the global batch's target tokens, step -> at checkpoint steps write the
checkpoint folder, then the manifest/metrics/checkpoint rows (one
transaction), then the resume state.

Works single-process (``vlmdyn train``) and under ``accelerate launch`` /
``torchrun`` (DDP; DeepSpeed/FSDP through an accelerate config): every rank
computes the same order and consumes a disjoint slice; rank 0 gathers what
all ranks consumed and writes it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.store.runs import Run, checkpoints, find_run, get_run
from vlmdyn_cli.training import runs as R
from vlmdyn_cli.training.schedule import checkpoint_steps, lr_multiplier, total_steps

FLUSH_EVERY = 200          # also write manifest/metrics rows every N steps
RESUME_DIR = "resume"


def _comparable(cfg: dict) -> dict:
    """The parts of a config that must not change between a run and its resume."""
    keep = {k: v for k, v in cfg.items() if k != "train"}
    keep["train"] = {k: v for k, v in cfg["train"].items()
                     if k not in ("threads", "num_workers", "report_to", "resume_every", "out_dir")}
    return keep


def train(db, cfg: dict, *, seed: int = 0, run_name: str | None = None, resume: bool = False,
          init_from: str | None = None, reporter: Reporter | None = None,
          collate_hook=None, stop_after_step: int | None = None) -> dict:
    """Train one epoch; returns a summary dict. See notes/models-api.md.

    ``collate_hook(batch)`` sees every collated batch (tests record it);
    ``stop_after_step`` raises KeyboardInterrupt after that step (a simulated kill).
    """
    import torch
    from accelerate import Accelerator

    from vlmdyn_cli.models.checkpoint import load_checkpoint, quiet_transformers, save_checkpoint
    from vlmdyn_cli.training import dataset as D
    from vlmdyn_cli.training.collate import Collator, ImageCache
    from vlmdyn_cli.training.order import epoch_order, micro_batches
    from vlmdyn_cli.training.speed import set_threads, tune_malloc

    reporter = reporter or NullReporter()
    _check_tracker(cfg["train"]["report_to"])
    quiet_transformers()
    tune_malloc()
    t_cfg, m_cfg = cfg["train"], cfg["model"]
    # cpu=True when there is no GPU: that is what lets torchrun/accelerate launch use gloo on CPUs
    # find_unused_parameters: a micro-batch of text-only conversations leaves the vision tower unused
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DistributedDataParallelKwargs

    # several train() calls in one process (the demo, tests) may differ in mixed precision: start from a
    # fresh accelerator state each time (the process group, if any, is kept)
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    acc = Accelerator(mixed_precision=t_cfg["mixed_precision"], cpu=not torch.cuda.is_available(),
                      kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    main, world, rank = acc.is_main_process, acc.num_processes, acc.process_index
    if acc.device.type == "cpu":
        set_threads(t_cfg["threads"], acc.num_processes if acc.num_processes > 1 else 1)
    if not main:
        reporter = NullReporter()

    # ---- what to train on, and the schedule (all checks before anything heavy) ----
    from vlmdyn_cli.models.registry import parse_model_id

    parse_model_id(m_cfg["id"])
    ds = D.resolve_dataset(db, cfg["data"]["dataset"])
    convs = D.load_conversations(db, ds)
    B = t_cfg["per_device_batch"] * t_cfg["grad_accum"] * world
    total = total_steps(len(convs), B)
    ck_cfg = cfg["checkpoints"]
    ck_steps = checkpoint_steps(ck_cfg["steps"], total, ck_cfg["include_step_0"], ck_cfg["final"])
    model_id = m_cfg["id"]
    name = run_name or R.default_run_name(ds["name"], model_id, seed)
    out_dir = Path(t_cfg["out_dir"]).resolve() / name
    resolved = {**cfg, "seed": seed, "world_size": world, "global_batch": B}

    run = find_run(db, name)
    start_step = 0
    resume_dir = out_dir / RESUME_DIR
    if run is not None:
        if run.status == "done":
            if resume:
                reporter.info(f"run {name} is already done ({run.total_steps} steps)")
                return _summary(db, get_run(db, name))
            raise BadInput(f"run '{name}' already exists and is done; choose another --run name or --seed")
        if not resume:
            raise BadInput(f"run '{name}' exists (status {run.status}); add --resume to continue it, "
                           "or choose another --run name")
        old = json.loads(run.config_json)
        if _comparable(old) != _comparable(resolved):
            raise BadInput(f"--resume: the config differs from the one run '{name}' started with "
                           "(model, data, batch, schedule and loss must match)")
        if (resume_dir / "trainer.json").exists():
            start_step = json.loads((resume_dir / "trainer.json").read_text())["step"]
        init_from = run.init_from
    elif init_from:
        R.find_checkpoint(db, init_from)  # fail early on a bad RUN[:STEP]

    # ---- the model ----
    torch.manual_seed(seed)
    if start_step > 0:
        model, processor, _ = load_checkpoint(resume_dir / "model")
        model.train()
    elif init_from:
        _, _, path = R.find_checkpoint(db, init_from)
        model, processor, _ = load_checkpoint(path)
        model.train()
    else:
        _precheck_memory(model_id, m_cfg, t_cfg, cfg["data"]["max_length"], acc.device.type)
        from vlmdyn_cli.models.registry import build_model

        texts = (D.conversation_text(c)[0] for c in convs) if model_id == "tiny" else None
        model, processor = build_model(model_id, {**m_cfg, "seed": seed}, texts=texts)
    tok = processor.tokenizer
    n_img = int(model.config.image_seq_length)
    if cfg["data"]["max_length"] < n_img + 8:
        raise BadInput(f"[data] max_length {cfg['data']['max_length']} leaves no room for text after the "
                       f"{n_img} image tokens")
    enc = D.encode_all(convs, tok, n_img, t_cfg["loss"], cfg["data"]["max_length"])
    if m_cfg["gradient_checkpointing"]:
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
        model.config.use_cache = False

    from vlmdyn_cli.models.parts import param_groups
    from vlmdyn_cli.training.memory import check_fits, estimate_bytes

    groups, counts = param_groups(model, t_cfg["lr"], cfg["parts"]["freeze"], cfg["parts"]["lr"],
                                  t_cfg["weight_decay"])
    tc = model.config.text_config
    longest = max(len(x) for x in enc.ids)
    check_fits(estimate_bytes(sum(p.numel() for p in model.parameters()), sum(counts.values()),
                              min(t_cfg["per_device_batch"], len(convs)), longest, tc.hidden_size,
                              tc.num_hidden_layers, tc.vocab_size,
                              2 if t_cfg["mixed_precision"] != "no" else 4),
               acc.device.type, f"per_device_batch {t_cfg['per_device_batch']} x {longest} tokens")
    for g in groups:
        g["base_lr"] = g["lr"]
    opt = torch.optim.AdamW(groups, lr=t_cfg["lr"], betas=(t_cfg["adam_beta1"], t_cfg["adam_beta2"]))
    from vlmdyn_cli.training.loss import LossModule, loss_sum as compute_loss

    llava = model
    model, opt = acc.prepare(LossModule(llava), opt)
    from accelerate.utils import DistributedType

    sharded = acc.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)
    if start_step > 0:
        if sharded:
            acc.load_state(str(resume_dir / "state"))
        else:
            opt.load_state_dict(torch.load(resume_dir / "optimizer.pt", map_location=acc.device, weights_only=True))

    # ---- the DB row ----
    if main:
        if run is None:
            run_id = R.create_run(db, name=name, dataset_id=ds["id"], seed=seed, model_id=model_id, cfg=resolved,
                                  out_dir=out_dir, total_steps=total, global_batch=B, checkpoint_steps=ck_steps,
                                  init_from=init_from)
        else:
            run_id = run.id
            R.forget_after(db, run_id, start_step)
        R.set_status(db, run_id, "running")
    acc.wait_for_everyone()
    run_id = get_run(db, name).id

    # ---- the order and what each step holds ----
    order = epoch_order([c.id for c in convs], seed)
    index_of = {c.id: i for i, c in enumerate(convs)}
    rows_in_order = np.asarray([index_of[int(c)] for c in order])
    n_targets = np.asarray([int((lab[1:] != D.IGNORE).sum()) for lab in enc.labels])[rows_in_order]
    n_tokens = np.asarray([len(x) for x in enc.ids])[rows_in_order]
    bounds = np.arange(0, len(order), B)
    step_targets = np.add.reduceat(n_targets, bounds)
    step_tokens = np.add.reduceat(n_tokens, bounds)
    step_items = np.diff(np.append(bounds, len(order)))

    collator = Collator(enc, order, [c.image for c in convs], tok.pad_token_id,
                        ImageCache(processor.image_processor, sum(1 for c in convs if c.image)))
    collator.index_of = index_of
    mbs = list(micro_batches(len(order), t_cfg["per_device_batch"], t_cfg["grad_accum"], world, rank,
                             start_step + 1))
    if t_cfg["num_workers"] > 0:
        from torch.utils.data import DataLoader

        batches = iter(DataLoader(mbs, batch_size=None, collate_fn=collator, num_workers=t_cfg["num_workers"],
                                  persistent_workers=False))
    else:
        batches = (collator(mb) for mb in mbs)

    tracker = _make_tracker(t_cfg["report_to"], name, resolved) if main else None
    ck_set = set(ck_steps)
    consumed: list[tuple[int, int, int]] = []
    metric_rows: list[tuple] = []
    params = [p for g in groups for p in g["params"]]
    unwrapped = llava

    def save_model_checkpoint(step: int, loss: float | None) -> None:
        state = acc.get_state_dict(model)
        path = out_dir / "checkpoints" / f"step-{step:06d}"
        if main:
            meta = {"step": step, "seed": seed, "run": name, "model_id": model_id, "total_steps": total,
                    "global_batch": B, "dataset": ds["name"], "init_from": init_from, "config": resolved}
            save_checkpoint(_Stateful(unwrapped, state), processor, path, meta)
        acc.wait_for_everyone()
        flush(checkpoint=(step, str(path)))
        if main:
            reporter.info(f"checkpoint {name} step {step}/{total} ({100 * step / total:.1f}% of the epoch)"
                          + (f" loss {loss:.4f}" if loss is not None else "")
                          + f" elapsed {time.monotonic() - t_start:.0f}s -> {path}")

    def flush(checkpoint=None) -> None:
        from accelerate.utils import gather_object

        rows = gather_object(consumed) if world > 1 else list(consumed)
        if main:
            R.write_progress(db, run_id, rows, metric_rows, checkpoint)
        consumed.clear()
        metric_rows.clear()

    def save_resume(step: int) -> None:
        """Model + optimizer + step in <run>/resume (renamed into place when complete)."""
        state = acc.get_state_dict(model)
        tmp = out_dir / (RESUME_DIR + ".partial")
        if main:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            save_checkpoint(_Stateful(unwrapped, state), processor, tmp / "model", {"step": step, "run": name})
        acc.wait_for_everyone()
        if sharded:
            acc.save_state(str(tmp / "state"))
        elif main:
            torch.save(opt.state_dict(), tmp / "optimizer.pt")
        acc.wait_for_everyone()
        if main:
            (tmp / "trainer.json").write_text(json.dumps({"step": step, "run": name}))
            if resume_dir.exists():
                shutil.rmtree(resume_dir)
            tmp.rename(resume_dir)
        acc.wait_for_everyone()

    t_start = time.monotonic()
    status = "interrupted"
    old_term = _sigterm_as_interrupt()
    try:
        if start_step == 0 and 0 in ck_set:
            save_model_checkpoint(0, None)
        model.train()
        loss_value = None
        with reporter.task(f"train {name}" + (f" from step {start_step}" if start_step else ""),
                           total=total - start_step, unit="steps") as task:
            for step in range(start_step + 1, total + 1):
                t0 = time.perf_counter()
                mult = lr_multiplier(step, total, t_cfg["warmup"], t_cfg["min_lr_ratio"])
                for g in opt.param_groups:
                    g["lr"] = g["base_lr"] * mult
                scale = world / max(int(step_targets[step - 1]), 1)
                loss_sum = torch.zeros((), device=acc.device)
                for m in range(t_cfg["grad_accum"]):
                    batch = next(batches)
                    assert batch["step"] == step and batch["micro"] == m, "order and loop out of step"
                    if collate_hook:
                        collate_hook(batch)
                    sync = contextlib.nullcontext() if m == t_cfg["grad_accum"] - 1 else acc.no_sync(model)
                    with sync:
                        with acc.autocast():
                            s = compute_loss(model, batch, acc.device)
                        acc.backward(s * (scale * batch["weight"]))
                    loss_sum += s.detach() * batch["weight"]
                    consumed.extend((c, step, p) for c, p in zip(batch["conversation_ids"], batch["positions"]))
                if t_cfg["max_grad_norm"] > 0:
                    acc.clip_grad_norm_(params, t_cfg["max_grad_norm"])
                opt.step()
                opt.zero_grad(set_to_none=True)
                if world > 1:
                    loss_sum = acc.reduce(loss_sum, reduction="sum")
                loss_value = float(loss_sum) / max(int(step_targets[step - 1]), 1)
                dt = max(time.perf_counter() - t0, 1e-9)
                lr_now = t_cfg["lr"] * mult
                sps, tps = step_items[step - 1] / dt, step_tokens[step - 1] / dt
                metric_rows.append((step, loss_value, lr_now, sps, tps, time.time()))
                if tracker:
                    tracker(step, {"loss": loss_value, "lr": lr_now, "samples_per_s": sps, "tokens_per_s": tps})
                task.advance(1, loss=f"{loss_value:.3f}", **{"samples/s": f"{sps:.0f}"})
                if step in ck_set:
                    save_model_checkpoint(step, loss_value)
                    if step < total:
                        save_resume(step)
                elif t_cfg["resume_every"] and step % t_cfg["resume_every"] == 0:
                    flush()
                    save_resume(step)
                elif step % FLUSH_EVERY == 0:
                    flush()
                if stop_after_step is not None and step >= stop_after_step:
                    raise KeyboardInterrupt
        flush()
        status = "done"
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        raise
    finally:
        _restore_sigterm(old_term)
        if main:
            elapsed = time.monotonic() - t_start
            done = db.execute("SELECT COUNT(*) FROM run_order WHERE run_id=?", [run_id]).fetchone()[0]
            fields = {"train_seconds": elapsed}
            if status == "done":
                fields.update(finished_at=_now(), samples_per_s=(len(order) - start_step * B) / max(elapsed, 1e-9))
                if resume_dir.exists():
                    shutil.rmtree(resume_dir)
            R.set_status(db, run_id, status, **fields)
            if status == "done":
                reporter.info(f"run {name} done: {total} steps, {done} conversations, {elapsed:.1f}s")
    return _summary(db, get_run(db, name))


def _sigterm_as_interrupt():
    """`kill PID` marks the run interrupted (like Ctrl-C) instead of leaving it 'running'."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _restore_sigterm(old) -> None:
    import signal

    if old is not None:
        signal.signal(signal.SIGTERM, old)


class _Stateful:
    """A model whose save_pretrained uses a given (possibly gathered) state dict."""

    def __init__(self, model, state):
        self.model, self.state = model, state

    def save_pretrained(self, path, **kw):
        state = {k.removeprefix("model."): v for k, v in self.state.items()}   # LossModule's own prefix
        self.model.save_pretrained(path, state_dict=state, **kw)


def _precheck_memory(model_id: str, m_cfg: dict, t_cfg: dict, max_length: int, device: str) -> None:
    """For the tiny preset: refuse impossible sizes before allocating anything."""
    if model_id != "tiny":
        return
    from vlmdyn_cli.models.tiny import tiny_configs
    from vlmdyn_cli.training.memory import check_fits, count_params_meta, estimate_bytes

    vocab = int(m_cfg["vocab_size"])
    config = tiny_configs(m_cfg, vocab, 3, 0, 2)
    n = count_params_meta(config)
    check_fits(estimate_bytes(n, n, t_cfg["per_device_batch"], min(max_length, 256), m_cfg["text_hidden"],
                              m_cfg["text_layers"], vocab), device, f"the tiny model ({n / 1e6:.0f}M parameters)")


def _check_tracker(kind: str) -> None:
    from vlmdyn_cli.errors import require

    if kind == "wandb":
        require("wandb", "pip install wandb", "--report-to wandb")
    elif kind == "tensorboard":
        require("tensorboard", "pip install tensorboard", "--report-to tensorboard")


def _make_tracker(kind: str, name: str, cfg: dict):
    from vlmdyn_cli.errors import require

    if kind == "wandb":
        wandb = require("wandb", "pip install wandb", "--report-to wandb")
        wb = wandb.init(project="vlmdyn", name=name, config=cfg)
        return lambda step, values: wb.log(values, step=step)
    if kind == "tensorboard":
        require("tensorboard", "pip install tensorboard", "--report-to tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(Path(cfg["train"]["out_dir"]) / name / "tensorboard"))

        def log(step, values):
            for k, v in values.items():
                writer.add_scalar(k, v, step)
        return log
    return None


def _now() -> str:
    from vlmdyn_cli.store.db import now

    return now()


def _summary(db, run: Run) -> dict:
    return {
        "run": run.name, "run_id": run.id, "status": run.status, "seed": run.seed,
        "model_id": run.model_id, "total_steps": run.total_steps, "global_batch": run.global_batch,
        "checkpoints": {str(k): v for k, v in checkpoints(db, run.id).items()},
        "train_seconds": run.train_seconds, "samples_per_s": run.samples_per_s,
    }
