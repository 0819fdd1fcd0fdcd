"""Sequence packing: a micro-batch's conversations end to end in one row, without padding.

Padded to its longest sequence, a micro-batch spends every per-token computation (the linear
layers, norms, rotary embeddings, MLPs) on padding too: 26 % of the positions on the synthetic
data at B = 8. Packed (``pack_rows``):

- ``position_ids`` restart at 0 for every conversation, so rotary embeddings see the positions
  of the padded layout;
- attention stays inside each conversation: the language model's attention implementation is
  ``vlmdyn_packed`` (registered with transformers' AttentionInterface; the layout comes through
  the model's keyword arguments, as flash-attention's ``cu_seq_lens`` do: ``packed_lengths``).
  It runs SDPA's causal kernel on each conversation's slice of the row: no position attends
  across conversations or to padding, and no N x N mask is built;
- the first token of every conversation carries no label, so no position is trained to predict
  the next conversation's first token (padded, nothing predicts a row's first token either).

So a packed micro-batch's loss and gradients are the padded micro-batch's up to float rounding
(tested). Image features fill the ``<image>`` positions in row order, i.e. in the conversations'
order, as padded. Only the language model's attention is switched (the vision tower keeps its
own); on a batch that is not packed ``vlmdyn_packed`` is plain SDPA with the model's mask, so
the model stays usable as it is, and saved configs do not record it (transformers keeps the
attention implementation out of config.json).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

PACKED_ATTENTION = "vlmdyn_packed"


def packed_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                     packed_lengths=None, **kwargs):
    """Causal attention inside each conversation of a packed row: (1, heads, N, d) -> (1, N, heads, d).

    One SDPA call per conversation on its slice of the row (``split``: its backward is one
    concatenation). Measured on the tiny model this beats gathering the conversations into one
    padded (conversations, heads, longest, d) block (the CPU kernel then computes the padding too),
    a block-diagonal mask over the row, and a hand-written softmax attention per conversation.
    torch's SDPA is called directly, not through transformers' wrapper (its checks and a copy per
    call); options the direct call does not cover (soft-capping, position bias) go through the wrapper.
    """
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    if packed_lengths is None:       # not a packed row: plain SDPA with the model's mask
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    if kwargs.get("sliding_window") is not None:
        raise ValueError(f"the {PACKED_ATTENTION} attention does not implement sliding windows")
    kwargs.pop("is_causal", None)
    split = (query.split(packed_lengths, 2), key.split(packed_lengths, 2), value.split(packed_lengths, 2))
    if any(kwargs.get(k) for k in ("softcap", "position_bias", "output_attentions")):
        outs = [sdpa_attention_forward(module, q, k, v, None, dropout=dropout, scaling=scaling, is_causal=True,
                                       **kwargs)[0] for q, k, v in zip(*split)]
        return torch.cat(outs, dim=1), None
    groups = getattr(module, "num_key_value_groups", 1)   # grouped-query attention: repeat the key/value heads
    sdpa = torch.nn.functional.scaled_dot_product_attention
    outs = [sdpa(q, repeat_kv(k, groups), repeat_kv(v, groups), dropout_p=dropout, is_causal=True, scale=scaling)
            for q, k, v in zip(*split)]
    return torch.cat(outs, dim=2).transpose(1, 2), None


def _mask(**kwargs):
    """The mask builder for ``vlmdyn_packed``: none for a packed row (the attention keeps to each
    conversation), SDPA's for anything else (e.g. a padded batch run through the same model)."""
    from transformers.masking_utils import sdpa_mask

    return None if kwargs.get("attention_mask") is None else sdpa_mask(**kwargs)


def register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(PACKED_ATTENTION, packed_attention)
    AttentionMaskInterface.register(PACKED_ATTENTION, _mask)


def use_packed_attention(model) -> bool:
    """Switch the language model of a LLaVA model to packed attention; False when the model cannot
    (no AttentionInterface support, or sliding-window attention, which the packed function does not do)."""
    text = model.config.text_config
    if getattr(text, "use_sliding_window", True) and getattr(text, "sliding_window", None):
        return False
    register()
    with contextlib.suppress(ValueError, ImportError):
        model.set_attn_implementation({"text_config": PACKED_ATTENTION})
    return model.config.text_config._attn_implementation == PACKED_ATTENTION


def pack_rows(ids: list[np.ndarray], labels: list[np.ndarray], ignore: int) -> dict:
    """Conversations end to end in one row: input_ids, labels, position_ids (1, N) and their lengths."""
    lengths = [len(x) for x in ids]
    flat_ids = np.concatenate(ids).astype(np.int64)[None]
    flat_labels = np.concatenate(labels).astype(np.int64)
    starts = np.cumsum([0] + lengths[:-1])
    flat_labels[starts] = ignore
    positions = np.concatenate([np.arange(n) for n in lengths])[None]
    return {"input_ids": torch.from_numpy(flat_ids), "labels": torch.from_numpy(flat_labels[None]),
            "position_ids": torch.from_numpy(positions), "packed_lengths": tuple(lengths)}
