"""Turn micro-batches into model inputs, and say exactly which conversations went in.

The returned batch carries ``conversation_ids``, ``positions`` and ``step``
next to the tensors: the trainer writes the order manifest from these, i.e.
from what was actually collated, not from a re-computation. ``Collator`` is
the one piece to replace for another batching scheme: ``rank_batches`` and the
trainer only need a callable MicroBatch -> batch dict. It pads each micro-batch
to its longest sequence, or packs it into one row without padding
(``training/packing.py``); the model inputs are whatever keys ``loss.loss_sum`` passes on.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from vlmdyn_cli.training.dataset import IGNORE, Encoded
from vlmdyn_cli.training.order import EpochPlan, MicroBatch, micro_batches
from vlmdyn_cli.training.packing import pack_rows


class ImageCache:
    """Pixel tensors per image path; kept in memory when the whole set fits the budget."""

    def __init__(self, image_processor, n_images: int, budget_bytes: int = 2 << 30):
        self.proc = image_processor
        self.cache: dict[str, torch.Tensor] = {}
        size = getattr(image_processor, "size", None) or {}
        h = size.get("height") or size.get("shortest_edge") or 336
        w = size.get("width") or size.get("shortest_edge") or 336
        self.keep = n_images * 3 * h * w * 4 <= budget_bytes

    def get(self, paths: list[str]) -> torch.Tensor:
        from vlmdyn_cli.data.images import open_checked

        todo = [p for p in dict.fromkeys(paths) if p not in self.cache]
        fresh = {}
        if todo:
            imgs = []
            for p in todo:
                with open_checked(p, f"image {p}") as im:
                    imgs.append(im.convert("RGB"))
            pix = self.proc(images=imgs, return_tensors="pt")["pixel_values"]
            fresh = dict(zip(todo, pix))
            if self.keep:
                self.cache.update(fresh)
        return torch.stack([self.cache.get(p, fresh.get(p)) for p in paths])


class Collator:
    """One batch per micro-batch: padded to its longest sequence, or packed into one row (``pack``)."""

    def __init__(self, encoded: Encoded, plan: EpochPlan, images: list[str | None], pad_id: int,
                 image_cache: ImageCache, pack: bool = False):
        self.enc, self.plan, self.images = encoded, plan, images
        self.pad_id, self.image_cache, self.pack = pad_id, image_cache, pack

    def __call__(self, mb: MicroBatch) -> dict:
        conv_ids = [int(self.plan.order[i]) for i in mb.indices]
        rows = [self.plan.row_of[c] for c in conv_ids]
        empty = not rows
        if empty:                      # a rank with nothing left in the last step: a weight-0 dummy
            rows = [self.plan.row_of[int(self.plan.order[0])]]
        ids, labels = [self.enc.ids[r] for r in rows], [self.enc.labels[r] for r in rows]
        tensors = pack_rows(ids, labels, IGNORE) if self.pack else self.padded(ids, labels)
        paths = [self.images[r] for r in rows if self.images[r]]
        return {
            **tensors,
            "pixel_values": self.image_cache.get(paths) if paths else None,
            "step": mb.step, "micro": mb.micro, "weight": 0.0 if empty else 1.0,
            "conversation_ids": conv_ids, "positions": list(mb.positions),
        }

    def padded(self, ids: list[np.ndarray], labels: list[np.ndarray]) -> dict:
        n = max(len(x) for x in ids)
        out_ids = np.full((len(ids), n), self.pad_id, dtype=np.int64)
        out_labels = np.full((len(ids), n), IGNORE, dtype=np.int64)
        mask = np.zeros((len(ids), n), dtype=np.int64)
        for j, (x, y) in enumerate(zip(ids, labels)):
            out_ids[j, :len(x)], out_labels[j, :len(x)], mask[j, :len(x)] = x, y, 1
        return {"input_ids": torch.from_numpy(out_ids), "attention_mask": torch.from_numpy(mask),
                "labels": torch.from_numpy(out_labels)}


def rank_batches(plan: EpochPlan, collate: Callable[[MicroBatch], dict], *, per_device: int, grad_accum: int,
                 world: int, rank: int, start_step: int, num_workers: int = 0) -> Iterator[dict]:
    """This rank's collated micro-batches from ``start_step`` on (DataLoader workers when num_workers > 0)."""
    mbs = list(micro_batches(len(plan.order), per_device, grad_accum, world, rank, start_step))
    if num_workers > 0:
        from torch.utils.data import DataLoader

        return iter(DataLoader(mbs, batch_size=None, collate_fn=collate, num_workers=num_workers,
                               persistent_workers=False))
    return (collate(mb) for mb in mbs)
