"""`composed:<vision id>+<llm id>`: a vision encoder + an LLM + a fresh MLP projector.

The Prismatic/LLaVA recipe with stock classes: the parts' weights are copied
into a ``LlavaForConditionalGeneration`` so the result saves and loads like
any LLaVA checkpoint. Vision encoders: SigLIP or CLIP (full model or vision
model); LLMs: any ``AutoModelForCausalLM`` whose base model is an ``AutoModel``.
"""

from __future__ import annotations

from vlmdyn_cli.errors import BadInput

# vision model_type -> (feature select strategy, extra tokens the tower adds, e.g. CLS)
_VISION_KINDS = {
    "siglip": ("full", 0), "siglip_vision_model": ("full", 0),
    "clip": ("default", 1), "clip_vision_model": ("default", 1),
}


def split_composed(spec: str) -> tuple[str, str]:
    if spec.count("+") != 1 or not all(spec.split("+")):
        raise BadInput(f"composed:{spec}: expected composed:<vision id>+<llm id>")
    vision, llm = spec.split("+")
    return vision, llm


def _load_vision(name: str):
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise BadInput(f"vision encoder '{name}': cannot read a config there ({exc})") from exc
    if config.model_type not in _VISION_KINDS:
        raise BadInput(f"vision encoder '{name}' is a '{config.model_type}' model; supported: "
                       + ", ".join(sorted(_VISION_KINDS)))
    full = AutoModel.from_pretrained(name)
    vision_config = getattr(config, "vision_config", config)
    state = full.state_dict()
    if hasattr(config, "vision_config"):          # a full SigLIP/CLIP model: keep its vision half
        state = {k.removeprefix("vision_model."): v for k, v in state.items() if k.startswith("vision_model.")}
    return vision_config, state, _VISION_KINDS[config.model_type]


def build_composed(spec: str, cfg: dict):
    import torch
    from transformers import (AutoImageProcessor, AutoModelForCausalLM, AutoTokenizer, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    from vlmdyn_cli.models.special import ensure_chat_tokens

    vision_id, llm_id = split_composed(spec)
    vision_config, vision_state, (strategy, extra) = _load_vision(vision_id)
    try:
        llm = AutoModelForCausalLM.from_pretrained(llm_id)
        tokenizer = AutoTokenizer.from_pretrained(llm_id)
    except (OSError, ValueError) as exc:
        raise BadInput(f"language model '{llm_id}': cannot load it ({exc})") from exc
    n_img = (vision_config.image_size // vision_config.patch_size) ** 2 + extra - (1 if strategy == "default" else 0)
    config = LlavaConfig(
        vision_config=vision_config.to_dict(), text_config=llm.config.to_dict(),
        image_token_index=0, image_seq_length=n_img, vision_feature_select_strategy=strategy,
        vision_feature_layer=int(cfg.get("vision_feature_layer", -2)), projector_hidden_act="gelu",
        tie_word_embeddings=bool(getattr(llm.config, "tie_word_embeddings", False)),
    )
    if "seed" in cfg:
        torch.manual_seed(int(cfg["seed"]))
    model = LlavaForConditionalGeneration(config)
    missing = model.model.vision_tower.load_state_dict(vision_state, strict=False)
    if missing.missing_keys:
        raise BadInput(f"vision encoder '{vision_id}': weights missing for {missing.missing_keys[:3]}...")
    base = llm.get_decoder() if hasattr(llm, "get_decoder") else llm.model
    model.model.language_model.load_state_dict(base.state_dict())
    model.lm_head.load_state_dict(llm.get_output_embeddings().state_dict())
    ensure_chat_tokens(model, tokenizer)
    image_processor = AutoImageProcessor.from_pretrained(vision_id)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               patch_size=vision_config.patch_size,
                               vision_feature_select_strategy=strategy, num_additional_image_tokens=extra)
    return model, processor
