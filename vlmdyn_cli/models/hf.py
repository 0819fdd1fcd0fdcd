"""`hf:<folder or hub id>`: an existing LLaVA-family model (e.g. llava-hf/llava-1.5-7b-hf)."""

from __future__ import annotations

from vlmdyn_cli.errors import BadInput


def load_hf_llava(name: str, cfg: dict):
    """Load (model, processor) with transformers' Llava classes from a folder or a hub id."""
    from transformers import AutoConfig, AutoProcessor, LlavaForConditionalGeneration

    import vlmdyn_cli.models.fused  # noqa: F401 - registers the fused vision tower of composed: checkpoints
    from vlmdyn_cli.models.special import ensure_chat_tokens

    try:
        config = AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise BadInput(f"hf:{name}: cannot read a model config there ({exc})") from exc
    if config.model_type != "llava":
        raise BadInput(f"hf:{name} is a '{config.model_type}' model, not a LLaVA model "
                       "(use composed:<vision>+<llm> to build one from parts)")
    dtype = _dtype(cfg.get("dtype", "float32"))
    model = LlavaForConditionalGeneration.from_pretrained(name, dtype=dtype)
    processor = AutoProcessor.from_pretrained(name)
    ensure_chat_tokens(model, processor.tokenizer)
    return model, processor


def _dtype(name: str):
    import torch

    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in table:
        raise BadInput(f"[model] dtype '{name}' is not one of {', '.join(table)}")
    return table[name]
