"""The data order: a deterministic function of (seed, dataset), sliced into micro-batches.

The epoch order is a seeded permutation of the kept conversation ids.
Optimizer step s (1-based) consumes positions ``[(s-1)B, sB)`` of it; inside
that global batch, micro-step m of rank r takes positions
``[(m*world + r)*b, (m*world + r + 1)*b)`` (b = per-device batch). Ranks
therefore see disjoint shards, and a resumed run regenerates exactly the
same slices. What was *actually* consumed is recorded by the collator
(``collate.Collator``) and written to ``run_order`` by the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def epoch_order(conversation_ids: list[int], seed: int) -> np.ndarray:
    ids = np.asarray(sorted(conversation_ids), dtype=np.int64)
    return ids[np.random.default_rng(seed).permutation(len(ids))]


@dataclass(frozen=True)
class MicroBatch:
    step: int
    micro: int
    positions: tuple[int, ...]   # positions inside the global batch of this step
    indices: tuple[int, ...]     # indices into the epoch order


def micro_batches(n_items: int, per_device: int, grad_accum: int, world: int, rank: int,
                  start_step: int = 1, end_step: int | None = None):
    """This rank's micro-batches for steps start_step..end_step (possibly empty at the epoch's end)."""
    B = per_device * grad_accum * world
    last = -(-n_items // B)
    end_step = last if end_step is None else min(end_step, last)
    for step in range(start_step, end_step + 1):
        base = (step - 1) * B
        for m in range(grad_accum):
            lo = (m * world + rank) * per_device
            pos = tuple(p for p in range(lo, lo + per_device) if base + p < n_items)
            yield MicroBatch(step, m, pos, tuple(base + p for p in pos))
