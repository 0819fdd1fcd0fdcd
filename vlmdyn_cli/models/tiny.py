"""The `tiny` preset: random-init SigLIP vision tower + Llama LM + MLP projector.

Everything is a stock transformers class (``LlavaForConditionalGeneration``
with a ``SiglipVisionConfig`` and a ``LlamaConfig``), so a trained tiny model
is an ordinary HF folder. The tokenizer is word-level, trained on the
dataset's own text (``models.tokenizer``); images are resized to
``image_size`` pixels and cut into ``(image_size / patch_size)^2`` patches,
one image token each.
"""

from __future__ import annotations

from typing import Iterable

from vlmdyn_cli.errors import BadInput

# Sizes of the default tiny model (examples/tiny.toml repeats them).
TINY_DEFAULTS: dict = {
    "image_size": 64,
    "patch_size": 16,         # (64 / 16)^2 = 16 image tokens
    "vision_hidden": 64,
    "vision_layers": 2,
    "vision_heads": 2,
    "text_hidden": 128,
    "text_layers": 2,
    "text_heads": 4,
    "vision_intermediate": 128,
    "text_intermediate": 256,
    "vocab_size": 4000,       # upper bound; the word vocabulary of the data decides
}


def tiny_configs(cfg: dict, vocab_size: int, image_token_id: int, pad_id: int, eos_id: int):
    """The LlavaConfig for the tiny preset (no weights: usable on the meta device too)."""
    from transformers import LlamaConfig, LlavaConfig, SiglipVisionConfig

    c = {**TINY_DEFAULTS, **{k: v for k, v in cfg.items() if k in TINY_DEFAULTS}}
    if c["image_size"] % c["patch_size"]:
        raise BadInput(f"[model] image_size {c['image_size']} is not a multiple of patch_size {c['patch_size']}")
    for k in ("vision_hidden", "text_hidden"):
        heads = c[k.replace("hidden", "heads")]
        if c[k] % heads:
            raise BadInput(f"[model] {k} {c[k]} is not divisible by {k.replace('hidden', 'heads')} {heads}")
    vision = SiglipVisionConfig(
        hidden_size=c["vision_hidden"], intermediate_size=c["vision_intermediate"],
        num_hidden_layers=c["vision_layers"], num_attention_heads=c["vision_heads"],
        image_size=c["image_size"], patch_size=c["patch_size"], num_channels=3,
        vision_use_head=False,    # LLaVA reads patch features; the pooling head would be dead weight
    )
    text = LlamaConfig(
        vocab_size=vocab_size, hidden_size=c["text_hidden"], intermediate_size=c["text_intermediate"],
        num_hidden_layers=c["text_layers"], num_attention_heads=c["text_heads"],
        num_key_value_heads=c["text_heads"], max_position_embeddings=4096,
        pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=None, tie_word_embeddings=False,
    )
    n_img = (c["image_size"] // c["patch_size"]) ** 2
    return LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=image_token_id,
        image_seq_length=n_img, vision_feature_select_strategy="full", vision_feature_layer=-1,
        projector_hidden_act="gelu", tie_word_embeddings=False,
        pad_token_id=pad_id, eos_token_id=eos_id,
    )


def image_processor_for(image_size: int):
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    return SiglipImageProcessorPil(size={"height": image_size, "width": image_size})


def build_tiny(cfg: dict, texts: Iterable[str] | None):
    """Build (model, processor); ``texts`` is the training text the vocabulary is learned from."""
    import torch
    from transformers import LlavaForConditionalGeneration, LlavaProcessor

    from vlmdyn_cli.models.tokenizer import build_word_tokenizer

    if texts is None:
        raise BadInput("the tiny model learns its vocabulary from the dataset: pass texts=...")
    c = {**TINY_DEFAULTS, **cfg}
    tok = build_word_tokenizer(texts, vocab_size=int(c["vocab_size"]))
    config = tiny_configs(c, len(tok), tok.convert_tokens_to_ids(tok.image_token),
                          tok.pad_token_id, tok.eos_token_id)
    if "seed" in cfg:
        torch.manual_seed(int(cfg["seed"]))
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    processor = LlavaProcessor(image_processor=image_processor_for(int(c["image_size"])), tokenizer=tok,
                               patch_size=int(c["patch_size"]), vision_feature_select_strategy="full",
                               num_additional_image_tokens=0)
    return model, processor
