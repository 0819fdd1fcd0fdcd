"""The training objective: summed next-token cross-entropy over the labelled positions only.

``LossModule`` wraps a ``LlavaForConditionalGeneration`` so DDP/DeepSpeed see
one module whose forward returns the loss. The LM head runs only on the
positions that carry a label (answers, plus questions minus their fixed template
text under L2T: ``models/chat.py:split_fixed_text``, ``models/l2t_fixed_text.toml``), not on
every position as ``model(..., labels=...)`` would: on the tiny model that
is a sizeable part of the step. The sum (not the mean) is returned; the
trainer divides by the target-token count of the whole global batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


# batch keys that are model inputs (the rest -- step, positions, ... -- is bookkeeping)
MODEL_INPUTS = ("input_ids", "attention_mask", "labels", "pixel_values", "position_ids", "packed_lengths")


class LossModule(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, labels, attention_mask=None, pixel_values=None, **packed):
        """``packed``: position_ids and the layout of a packed row (training/packing.py), if any."""
        out = self.model.model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values,
                               use_cache=False, **packed)
        hidden = out.last_hidden_state[:, :-1]
        target = labels[:, 1:]
        keep = target != IGNORE
        if not bool(keep.any()):
            return hidden.sum() * 0.0
        logits = self.model.lm_head(hidden[keep])
        return F.cross_entropy(logits.float(), target[keep], reduction="sum")


def loss_sum(module, batch: dict, device) -> torch.Tensor:
    inputs = {k: batch[k] for k in MODEL_INPUTS if batch.get(k) is not None}
    return module(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()})
