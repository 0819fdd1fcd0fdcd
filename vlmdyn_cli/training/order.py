"""The data order: a deterministic function of (seed, dataset), sliced into steps and micro-batches.

The epoch order is a seeded permutation of the kept conversation ids. A run of a
fixed number of steps (``[train] steps``, e.g. Vision-Flan's stage 2: 128 steps over
1,000 examples) cuts that order short, or continues it with further passes, each a
new permutation (seeded by (seed, pass)); the first pass is always the epoch order.
The manifest records when a conversation was *first* trained (``runs.write_progress``).
Optimizer step s (1-based) consumes positions ``[(s-1)B, sB)`` of it; inside
that global batch, micro-step m of rank r takes positions
``[(m*world + r)*b, (m*world + r + 1)*b)`` (b = per-device batch). Ranks
therefore see disjoint shards, and a resumed run regenerates exactly the
same slices. What was *actually* consumed is recorded by the collator
(``collate.Collator``) and written to ``run_order`` by the trainer.

``EpochPlan`` adds what every step holds (conversations, tokens, target
tokens), which every rank computes from the pre-tokenised data: the loss is
normalised by the global batch's target tokens without any communication.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlmdyn_cli.training.dataset import IGNORE, Conversation, Encoded


def epoch_order(conversation_ids: list[int], seed: int, n_positions: int = 0) -> np.ndarray:
    """The training order: one epoch, or exactly ``n_positions`` items (passes after the first reshuffled)."""
    ids = np.asarray(sorted(conversation_ids), dtype=np.int64)
    order = ids[np.random.default_rng(seed).permutation(len(ids))]
    if not n_positions:
        return order
    passes = [order]
    while sum(len(p) for p in passes) < n_positions:
        passes.append(ids[np.random.default_rng([seed, len(passes)]).permutation(len(ids))])
    return np.concatenate(passes)[:n_positions]


@dataclass(frozen=True)
class EpochPlan:
    order: np.ndarray            # conversation ids in training order
    row_of: dict[int, int]       # conversation id -> row of the encoded data
    items: np.ndarray            # per step (index step - 1): conversations,
    tokens: np.ndarray           # ... tokens,
    targets: np.ndarray          # ... and labelled (target) tokens in the global batch

    @property
    def total_steps(self) -> int:
        return len(self.items)


def plan_epoch(convs: list[Conversation], encoded: Encoded, seed: int, global_batch: int,
               steps: int = 0) -> EpochPlan:
    """The plan of one epoch, or of exactly ``steps`` optimizer steps when ``steps`` > 0."""
    order = epoch_order([c.id for c in convs], seed, steps * global_batch)
    row_of = {c.id: i for i, c in enumerate(convs)}
    rows = np.asarray([row_of[int(c)] for c in order])
    n_targets = np.asarray([int((lab[1:] != IGNORE).sum()) for lab in encoded.labels])[rows]
    n_tokens = np.asarray([len(x) for x in encoded.ids])[rows]
    bounds = np.arange(0, len(order), global_batch)
    return EpochPlan(order, row_of, items=np.diff(np.append(bounds, len(order))),
                     tokens=np.add.reduceat(n_tokens, bounds), targets=np.add.reduceat(n_targets, bounds))


@dataclass(frozen=True)
class MicroBatch:
    step: int
    micro: int
    positions: tuple[int, ...]   # positions inside the global batch of this step
    indices: tuple[int, ...]     # indices into the epoch order


def micro_batches(n_items: int, per_device: int, grad_accum: int, world: int, rank: int, start_step: int = 1):
    """This rank's micro-batches from ``start_step`` to the end of the epoch (possibly empty at the end)."""
    B = per_device * grad_accum * world
    for step in range(start_step, -(-n_items // B) + 1):
        base = (step - 1) * B
        for m in range(grad_accum):
            lo = (m * world + rank) * per_device
            pos = tuple(p for p in range(lo, lo + per_device) if base + p < n_items)
            yield MicroBatch(step, m, pos, tuple(base + p for p in pos))
