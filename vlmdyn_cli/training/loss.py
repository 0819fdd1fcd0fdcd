"""The training objective: summed next-token cross-entropy over the labelled positions only.

``LossModule`` wraps a ``LlavaForConditionalGeneration`` so DDP/DeepSpeed see
one module whose forward returns the loss. The LM head runs only on the
positions that carry a label (answers, plus questions minus their fixed template
text under L2T: ``models/chat.py:split_fixed_text``, ``models/l2t_fixed_text.toml``), not on
every position as ``model(..., labels=...)`` would: on the tiny model that
is a sizeable part of the step. The sum (not the mean) is returned; the
trainer divides by the target-token count of the whole global batch.

The image features go into the ``<image>`` positions with an index copy (``with_image_features``),
the same placement as the model's own ``masked_scatter``; the backward of an index copy is an
index select, where the mask's is a masked select over the whole (batch, tokens, hidden) grid
(the slower of the two on the CPU profile of the tiny model: notes/training.md).
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
        inner = self.model.model
        embeds = inner.get_input_embeddings()(input_ids)
        if pixel_values is not None:
            embeds = with_image_features(inner, input_ids, embeds, pixel_values)
        out = inner(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False, **packed)
        hidden = out.last_hidden_state[:, :-1]
        target = labels[:, 1:]
        keep = target != IGNORE
        if not bool(keep.any()):
            return hidden.sum() * 0.0
        logits = self.model.lm_head(hidden[keep])
        return F.cross_entropy(logits.float(), target[keep], reduction="sum")


def with_image_features(llava_model, input_ids, embeds, pixel_values) -> torch.Tensor:
    """``embeds`` with the projected image features in the image-token positions (in order)."""
    feats = llava_model.get_image_features(pixel_values=pixel_values, return_dict=True).pooler_output
    feats = torch.cat(list(feats), dim=0).to(embeds.dtype)       # (images x tokens per image, hidden)
    where = (input_ids.reshape(-1) == llava_model.config.image_token_id).nonzero().squeeze(1)
    if where.numel() != feats.shape[0]:
        raise ValueError(f"{where.numel()} image tokens in the batch but {feats.shape[0]} image feature vectors")
    flat = embeds.reshape(-1, embeds.shape[-1])
    return flat.index_copy(0, where, feats).view_as(embeds)


def loss_sum(module, batch: dict, device) -> torch.Tensor:
    inputs = {k: batch[k] for k in MODEL_INPUTS if batch.get(k) is not None}
    return module(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()})
