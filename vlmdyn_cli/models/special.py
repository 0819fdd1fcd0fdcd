"""Make sure a tokenizer has the tokens the chat template needs (`<image>`, `</s>`, a pad)."""

from __future__ import annotations

from vlmdyn_cli.models.chat import EOS, IMAGE_TOKEN


def ensure_chat_tokens(model, tokenizer) -> bool:
    """Add missing special tokens and resize the model's embeddings; returns True if it changed."""
    added = []
    vocab = tokenizer.get_vocab()
    if IMAGE_TOKEN not in vocab:
        added.append(IMAGE_TOKEN)
    if EOS not in vocab:
        added.append(EOS)
    if added:
        tokenizer.add_special_tokens({"additional_special_tokens": added}, replace_extra_special_tokens=False)
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": "<pad>"})
        added.append("<pad>")
    if added:
        model.resize_token_embeddings(len(tokenizer))
    eos_id = tokenizer.convert_tokens_to_ids(EOS)
    model.config.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    eos = model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    if eos_id not in eos:
        eos.append(eos_id)
    model.generation_config.eos_token_id = eos if len(eos) > 1 else eos[0]
    return bool(added)
