"""The `tiny` preset: random-init SigLIP vision tower + Llama LM + MLP projector.

Everything is a stock transformers class (``LlavaForConditionalGeneration``
with a ``SiglipVisionConfig`` and a ``LlamaConfig``), so a trained tiny model
is an ordinary HF folder. The tokenizer is word-level, trained on the
dataset's own text (``models.tokenizer``); images are resized to
``image_size`` pixels and cut into ``(image_size / patch_size)^2`` patches,
one image token each.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable, Mapping

from vlmdyn_cli.errors import BadInput


@dataclass(frozen=True)
class TinySizes:
    """Sizes of the tiny model: the defaults are the default tiny model (examples/tiny.toml repeats them).

    The training config's [model] section extends this class, so these are also
    its keys (ignored by hf: and composed: models).
    """

    image_size: int = 64
    patch_size: int = 16             # (64 / 16)^2 = 16 image tokens
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 2
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    vision_intermediate: int = 128
    text_intermediate: int = 256
    vocab_size: int = 4000           # upper bound; the word vocabulary of the data decides

    @classmethod
    def from_config(cls, cfg: Mapping) -> "TinySizes":
        """The sizes named in a [model] section; other keys are ignored."""
        return cls(**{f.name: int(cfg.get(f.name, f.default)) for f in fields(cls)})

    @property
    def n_image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def tiny_configs(sizes: TinySizes, vocab_size: int, image_token_id: int, pad_id: int, eos_id: int):
    """The LlavaConfig for the tiny preset (no weights: usable on the meta device too)."""
    from transformers import LlamaConfig, LlavaConfig, SiglipVisionConfig

    s = sizes
    if s.image_size % s.patch_size:
        raise BadInput(f"[model] image_size {s.image_size} is not a multiple of patch_size {s.patch_size}")
    for hidden, heads in (("vision_hidden", "vision_heads"), ("text_hidden", "text_heads")):
        if getattr(s, hidden) % getattr(s, heads):
            raise BadInput(f"[model] {hidden} {getattr(s, hidden)} is not divisible by {heads} {getattr(s, heads)}")
    vision = SiglipVisionConfig(
        hidden_size=s.vision_hidden, intermediate_size=s.vision_intermediate,
        num_hidden_layers=s.vision_layers, num_attention_heads=s.vision_heads,
        image_size=s.image_size, patch_size=s.patch_size, num_channels=3,
        vision_use_head=False,    # LLaVA reads patch features; the pooling head would be dead weight
    )
    text = LlamaConfig(
        vocab_size=vocab_size, hidden_size=s.text_hidden, intermediate_size=s.text_intermediate,
        num_hidden_layers=s.text_layers, num_attention_heads=s.text_heads,
        num_key_value_heads=s.text_heads, max_position_embeddings=4096,
        pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=None, tie_word_embeddings=False,
    )
    return LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=image_token_id,
        image_seq_length=s.n_image_tokens, vision_feature_select_strategy="full", vision_feature_layer=-1,
        projector_hidden_act="gelu", tie_word_embeddings=False,
        pad_token_id=pad_id, eos_token_id=eos_id,
    )


def param_count(sizes: TinySizes) -> int:
    """Parameters of the tiny model at its largest vocabulary, counted on the meta device (no memory used)."""
    import torch
    from transformers import LlavaForConditionalGeneration

    with torch.device("meta"):
        model = LlavaForConditionalGeneration(tiny_configs(sizes, sizes.vocab_size, 3, 0, 2))
    return sum(p.numel() for p in model.parameters())


def image_processor_for(image_size: int):
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    return SiglipImageProcessorPil(size={"height": image_size, "width": image_size})


def build_tiny(cfg: Mapping, texts: Iterable[str] | None):
    """Build (model, processor); ``texts`` is the training text the vocabulary is learned from.

    ``cfg`` is the [model] section (sizes; other keys ignored) plus an optional ``seed``.
    """
    import torch
    from transformers import LlavaForConditionalGeneration, LlavaProcessor

    from vlmdyn_cli.models.tokenizer import build_word_tokenizer

    if texts is None:
        raise BadInput("the tiny model learns its vocabulary from the dataset: pass texts=...")
    sizes = TinySizes.from_config(cfg)
    tok = build_word_tokenizer(texts, vocab_size=sizes.vocab_size)
    config = tiny_configs(sizes, len(tok), tok.convert_tokens_to_ids(tok.image_token),
                          tok.pad_token_id, tok.eos_token_id)
    if "seed" in cfg:
        torch.manual_seed(int(cfg["seed"]))
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    processor = LlavaProcessor(image_processor=image_processor_for(sizes.image_size), tokenizer=tok,
                               patch_size=sizes.patch_size, vision_feature_select_strategy="full",
                               num_additional_image_tokens=0)
    return model, processor
