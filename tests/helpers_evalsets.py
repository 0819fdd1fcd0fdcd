"""Fixture helper: a small experiment written through the pipeline's writers (no training needed).

``make_experiment`` writes (``vlmdyn_cli.testing.factories``) a dataset with re-used images, text-only and
dropped conversations, categorised QA pairs, a run, its order manifest and its
checkpoint rows. Everything the evalsets code reads comes from these rows, so
tests can compute the expected sets independently from ``Experiment.manifest``.

For inference tests, ``write_images`` makes the PNG files the rows point at and
``save_tiny_checkpoints`` saves real tiny LLaVA checkpoints (model registry +
``save_checkpoint``) and records them in ``checkpoints``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from vlmdyn_cli.testing import factories as f

CATEGORIES = ("Bounding", "Complex", "Object", "OCR", "Spatial")
STAMP = "2026-01-01"   # every timestamp of these fixtures


@dataclass
class Experiment:
    dataset_id: int
    run_id: int
    run_name: str
    total_steps: int
    checkpoint_steps: list[int]
    manifest: list[tuple[int, int, int]]          # (conversation_id, step, position)
    conv_image: dict[int, int | None]              # conversation -> image id (None: text-only)
    conv_qas: dict[int, list[int]] = field(default_factory=dict)   # conversation -> qa ids by turn
    held_out: list[int] = field(default_factory=list)             # kept, never trained


def add_dataset(db, name="ds", *, n_conv=160, n_images=80, seed=0, text_only_every=8,
                dropped_every=13, max_turns=4, image_root=None, repeat_pairs=True):
    """Write a dataset; returns (dataset_id, conv_image, conv_qas, kept conversation ids)."""
    rng = random.Random(seed)
    with f.fixed_now(STAMP), f.immediate(db):
        ds = f.dataset(db, name, image_root=image_root)
        image_ids = [f.image(db, f"{name}-img-{i}", f"img{i}.png", 32, 32) for i in range(n_images)]
        conv_image, conv_qas, kept_ids = {}, {}, []
        for idx in range(n_conv):
            text_only = idx % text_only_every == text_only_every - 1
            img = None if text_only else image_ids[rng.randrange(n_images)]
            kept = 0 if idx % dropped_every == dropped_every - 1 else 1
            turns = []
            for t in range(rng.randint(1, max_turns)):
                # Some questions repeat verbatim on the same image, so `pair` dedup has work to do.
                n = rng.randrange(6) if repeat_pairs else idx * 10 + t
                q = f"question {n} about thing {t}" + " in the picture" * (n % 3)   # varied lengths
                turns.append(f.qa(q, f"answer {n}", category=CATEGORIES[rng.randrange(len(CATEGORIES))]))
            cid, qas = f.conversation(db, ds, idx, turns, source_id=f"c{idx}", source="synth", image_id=img,
                                      image_path=None if img is None else f"img{image_ids.index(img)}.png",
                                      kept=kept)
            conv_image[cid] = img
            conv_qas[cid] = qas
            if kept:
                kept_ids.append(cid)
    return ds, conv_image, conv_qas, kept_ids


def add_run(db, dataset_id, kept_ids, *, name="r1", batch=4, seed=0, held_out=0,
            checkpoint_steps=None, out_dir="/tmp/none", checkpoint_paths=None):
    """A run whose manifest shuffles the kept conversations (minus ``held_out``) into steps."""
    rng = random.Random(seed + 1)
    order = list(kept_ids)
    rng.shuffle(order)
    held = order[len(order) - held_out:] if held_out else []
    order = order[: len(order) - held_out]
    total_steps = (len(order) + batch - 1) // batch
    if checkpoint_steps is None:
        checkpoint_steps = sorted({0, *(max(1, round(total_steps * f)) for f in
                                       (0.1, 0.25, 0.5, 0.75)), total_steps})
    manifest = [(cid, i // batch + 1, i % batch) for i, cid in enumerate(order)]
    paths = checkpoint_paths or {}
    with f.fixed_now(STAMP):
        run_id = f.run(db, name, dataset_id, seed=seed, out_dir=out_dir, total_steps=total_steps,
                       global_batch=batch, checkpoint_steps=checkpoint_steps, order=manifest,
                       checkpoints={k: paths.get(k, f"{out_dir}/step-{k}") for k in checkpoint_steps})
    return run_id, total_steps, checkpoint_steps, manifest, held


def make_experiment(db, *, name="r1", dataset="ds", batch=4, held_out=0, checkpoint_steps=None,
                    seed=0, **dataset_kw) -> Experiment:
    ds, conv_image, conv_qas, kept = add_dataset(db, dataset, seed=seed, **dataset_kw)
    run_id, total, steps, manifest, held = add_run(
        db, ds, kept, name=name, batch=batch, seed=seed, held_out=held_out,
        checkpoint_steps=checkpoint_steps)
    return Experiment(ds, run_id, name, total, steps, manifest, conv_image, conv_qas, held)


def expected_seen(exp: Experiment, k: int, n: int) -> list[int]:
    """Seen@k computed from the manifest in Python: most recent first, turns in order."""
    trained = sorted((m for m in exp.manifest if m[1] <= k), key=lambda m: (-m[1], -m[2]))
    out = []
    for cid, _, _ in trained:
        out.extend(exp.conv_qas[cid])
    return out[:n]


def trained_images(exp: Experiment, last: int) -> set[int]:
    return {exp.conv_image[c] for c, s, _ in exp.manifest if s <= last and exp.conv_image[c] is not None}


# --- real images and real tiny checkpoints (for inference tests) -------------------------------

def write_images(folder, n: int, size: int = 32, seed: int = 0) -> None:
    """n small PNGs img0.png ... (random colour blocks) matching add_dataset's image paths."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        arr = np.zeros((size, size, 3), dtype=np.uint8)
        arr[:] = rng.integers(0, 255, 3)
        x, y = rng.integers(0, size // 2, 2)
        arr[y:y + size // 2, x:x + size // 2] = rng.integers(0, 255, 3)
        Image.fromarray(arr).save(folder / f"img{i}.png")


def training_texts(db, dataset_id: int) -> list[str]:
    """The chat-rendered training text of a dataset (what the tiny tokenizer learns words from)."""
    from vlmdyn_cli.models.chat import render_conversation

    rows = db.execute("SELECT question, answer, image_id FROM qa_pairs WHERE dataset_id = ?", [dataset_id])
    return ["".join(seg for seg, _ in render_conversation([(q, a)], img is not None)) for q, a, img in rows]


def save_tiny_checkpoints(db, run_id: int, dataset_id: int, folder, steps, seed: int = 0) -> dict[int, str]:
    """One real tiny LLaVA checkpoint folder per step, recorded in the DB.

    All steps share the tokenizer and processor (vocabulary learned from the
    dataset); each gets its own random init (seed + step), so checkpoints answer
    differently. Random-init tiny models already give varied greedy answers
    (the image and the question change them), which the batching tests need.
    """
    import torch
    from transformers import LlavaForConditionalGeneration

    from vlmdyn_cli.models.checkpoint import save_checkpoint
    from vlmdyn_cli.models.registry import build_model

    model, processor = build_model("tiny", {"seed": seed}, texts=training_texts(db, dataset_id))
    paths = {}
    for k in sorted(steps):
        torch.manual_seed(seed + k)
        m = LlavaForConditionalGeneration(model.config)
        m.generation_config = model.generation_config
        path = folder / f"step-{k:06d}"
        save_checkpoint(m, processor, path, {"step": k, "seed": seed, "model_id": "tiny"})
        paths[k] = str(path)
    with f.fixed_now(STAMP), f.immediate(db):
        db.conn.execute("DELETE FROM checkpoints WHERE run_id = ?", [run_id])
        for k, p in paths.items():
            f.checkpoint(db, run_id, k, p)
    return paths


def build_infer_template(root, *, seen: int = 6, unseen: int = 6, dedup=("image", "none")):
    """An experiment database at root/exp.db with PNG images, a run, real tiny checkpoints for every
    scheduled step and built sets (what inference tests copy); returns its path."""
    import torch

    from vlmdyn_cli.evalsets import build
    from vlmdyn_cli.store import open_db
    from vlmdyn_cli.store.runs import get_run

    torch.set_num_threads(1)
    write_images(root / "images", 30)
    db = open_db(root / "exp.db")
    ds, _, _, kept = add_dataset(db, "ds", n_conv=60, n_images=30, image_root=str(root / "images"),
                                 text_only_every=4)
    run_id, _, steps, _, _ = add_run(db, ds, kept, batch=4, out_dir=str(root))
    save_tiny_checkpoints(db, run_id, ds, root / "ckpt", steps)
    run = get_run(db, "r1")
    build.build(db, run, build.plan(run, run.eval_steps, seen, unseen, list(dedup), None, 0))
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return root / "exp.db"
