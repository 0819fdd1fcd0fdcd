"""The one-epoch schedule: batch arithmetic, checkpoint steps, learning rate.

    global batch B = per_device_batch x grad_accum x world_size
    total steps    = ceil(kept conversations / B)
    lr(step)       = linear warm-up over round(warmup x total) steps, then cosine to min_lr_ratio x lr
"""

from __future__ import annotations

import math

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.training.config import PAPER_PATTERN, PAPER_TOTAL


def total_steps(n_items: int, global_batch: int) -> int:
    if n_items <= 0:
        raise BadInput("the dataset has no kept conversations to train on")
    return math.ceil(n_items / global_batch)


def checkpoint_steps(spec, total: int, include_step_0: bool = False, final: bool = True) -> list[int]:
    """Resolve the [checkpoints] section into a sorted list of optimizer steps.

    ``spec`` is "paper" (the 51/357/765/1275/2550/3825-of-5120 pattern scaled to
    ``total``: scaled steps that collide in a short run are merged) or a list
    of ints (steps) and floats (fractions of the epoch, 0 < f <= 1) that must
    resolve to strictly increasing steps inside 1..total.
    """
    if spec == "paper":
        steps = sorted({max(1, min(total, round(s * total / PAPER_TOTAL))) for s in PAPER_PATTERN})
    else:
        steps = []
        for i, s in enumerate(spec):
            if isinstance(s, float):
                if not 0 < s <= 1:
                    raise BadInput(f"[checkpoints] steps[{i}] = {s}: a fraction must be in (0, 1]")
                step = max(1, round(s * total))
            else:
                step = s
            if step == 0 and isinstance(s, int):
                include_step_0 = True
                continue
            if not 1 <= step <= total:
                raise BadInput(f"[checkpoints] steps[{i}] = {s} is outside the epoch (1..{total} steps)")
            if steps and step == steps[-1]:
                raise BadInput(f"[checkpoints] steps[{i}] = {s} duplicates step {step}")
            if steps and step < steps[-1]:
                raise BadInput(f"[checkpoints] steps[{i}] = {s} (step {step}) is not after step {steps[-1]}: "
                               "list checkpoint steps in increasing order")
            steps.append(step)
    if final and (not steps or steps[-1] != total):
        steps.append(total)
    return ([0] if include_step_0 else []) + steps


def parse_steps_option(text: str) -> list:
    """'51,357,0.5' -> [51, 357, 0.5] (ints are steps, numbers with a '.' are fractions)."""
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            out.append(float(part) if "." in part else int(part))
        except ValueError:
            raise BadInput(f"--checkpoints: '{part}' is not a step or a fraction") from None
    return out


def lr_multiplier(step: int, total: int, warmup: float, min_ratio: float = 0.0) -> float:
    """LR factor for optimizer step ``step`` (1-based)."""
    n_warm = round(warmup * total)
    if n_warm > 0 and step <= n_warm:
        return step / n_warm
    span = max(total - n_warm, 1)
    progress = min(max((step - n_warm - 1) / span, 0.0), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
