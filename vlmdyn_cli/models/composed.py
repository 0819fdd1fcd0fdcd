"""`composed:<vision id>[+<vision id>]+<llm id>`: pretrained vision tower(s) + a pretrained LLM + a fresh MLP projector.

The Prismatic/LLaVA recipe with stock classes: the parts are loaded from Hugging Face folders or
hub ids and put into a ``LlavaForConditionalGeneration`` (so the result saves and loads like any
LLaVA checkpoint); only the MLP projector is new (PyTorch's default init, as in Prismatic).

- One SigLIP or CLIP tower: the stock LLaVA layout (vLLM can serve it).
- Two towers, e.g. ``composed:facebook/dinov2-with-registers-large+google/siglip-so400m-patch14-384+meta-llama/Llama-2-7b-hf``:
  Prismatic's fused backbone (``models.fused``): both towers see the same image at the same
  resolution (the SigLIP processor's size; DINOv2 interpolates its position embeddings, as in
  Prismatic), their patch features are concatenated per patch. Their patch grids must agree.
- A DINOv2 tower alone also goes through the fused module (it drops DINOv2's CLS and register tokens).

Every part is checked before anything is built; a bad one is a ``BadInput`` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlmdyn_cli.errors import BadInput

# model_type of the folder's config -> (vision model class, non-patch tokens it puts first, fixed position grid)
_TOWERS: dict[str, tuple[str, object, bool]] = {
    "siglip": ("SiglipVisionModel", lambda c: 0, True),
    "siglip_vision_model": ("SiglipVisionModel", lambda c: 0, True),
    "clip": ("CLIPVisionModel", lambda c: 1, True),
    "clip_vision_model": ("CLIPVisionModel", lambda c: 1, True),
    "dinov2": ("Dinov2Model", lambda c: 1, False),
    "dinov2_with_registers": ("Dinov2WithRegistersModel", lambda c: 1 + int(c.num_register_tokens), False),
}
_STOCK = {"siglip", "siglip_vision_model", "clip", "clip_vision_model"}   # one of these alone: plain LLaVA


@dataclass
class Tower:
    name: str            # the id as given
    model_type: str
    model: object        # the loaded vision model
    processor: object    # its image processor
    prefix_tokens: int
    fixed_grid: bool

    @property
    def config(self):
        return self.model.config


def split_composed(spec: str) -> tuple[list[str], str]:
    parts = spec.split("+")
    if len(parts) not in (2, 3) or not all(parts):
        raise BadInput(f"composed:{spec}: expected composed:<vision id>+<llm id> or, for Prismatic's fused "
                       "tower, composed:<vision id>+<vision id>+<llm id>")
    return parts[:-1], parts[-1]


def _dtype(cfg: dict):
    from vlmdyn_cli.models.hf import _dtype as parse

    return parse(cfg.get("dtype", "float32"))


def load_tower(name: str, dtype) -> Tower:
    import transformers
    from transformers import AutoConfig, AutoImageProcessor

    try:
        config = AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise BadInput(f"vision tower '{name}': cannot read a model config there ({exc})") from exc
    if config.model_type not in _TOWERS:
        raise BadInput(f"vision tower '{name}' is a '{config.model_type}' model, not a vision tower; supported: "
                       + ", ".join(sorted(_TOWERS)))
    cls_name, prefix, fixed = _TOWERS[config.model_type]
    try:
        model = getattr(transformers, cls_name).from_pretrained(name, dtype=dtype)
    except Exception as exc:  # noqa: BLE001 - size mismatches, missing or corrupt weights: all "unusable part"
        raise BadInput(f"vision tower '{name}': its weights do not load into its config ({_first_line(exc)})") from exc
    try:
        processor = AutoImageProcessor.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise BadInput(f"vision tower '{name}': no image processor config there (preprocessor_config.json)") from exc
    return Tower(name, config.model_type, model, processor, prefix(model.config), fixed)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def load_llm(name: str, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        llm = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # noqa: BLE001 - a missing folder, an unknown architecture or mismatched weights
        raise BadInput(f"language model '{name}': cannot load it ({_first_line(exc)})") from exc
    return llm, tokenizer


def _image_size(tower: Tower) -> int:
    """The square side the processor gives (resize or centre crop), read by processing a blank image."""
    from PIL import Image

    pix = tower.processor(images=[Image.new("RGB", (37, 23))], return_tensors="pt")["pixel_values"]
    h, w = pix.shape[-2:]
    if h != w:
        raise BadInput(f"vision tower '{tower.name}': its processor gives {w}x{h} images; a square size is needed")
    return int(h)


def fuse(towers: list[Tower], feature_layer: int):
    """The fused module over ``towers``; refuses towers whose patch grids differ."""
    from vlmdyn_cli.models.fused import FusedVisionConfig, FusedVisionModel

    lead = next((t for t in towers if t.fixed_grid), towers[0])   # the processor and resolution of SigLIP/CLIP
    size = _image_size(lead)
    grids = []
    for t in towers:
        p = int(t.config.patch_size)
        if t.fixed_grid and int(t.config.image_size) != size:
            raise BadInput(f"vision tower '{t.name}' is made for {t.config.image_size} px images but the shared "
                           f"processor of '{lead.name}' gives {size} px; use towers of the same resolution")
        grids.append((t, p, size // p))
    if len({g for _, _, g in grids}) > 1:
        desc = "; ".join(f"'{t.name}': patch {p} -> {g}x{g}" for t, p, g in grids)
        raise BadInput(f"the vision towers give different patch grids at {size} px ({desc}); Prismatic fuses "
                       "towers patch by patch, so their grids must agree (use towers with the same patch size)")
    config = FusedVisionConfig(
        towers=[{"name": t.name, "config": t.config.to_dict(), "prefix_tokens": t.prefix_tokens,
                 "mean": list(map(float, t.processor.image_mean)), "std": list(map(float, t.processor.image_std))}
                for t in towers],
        feature_layer=feature_layer, image_size=size, patch_size=int(lead.config.patch_size),
        input_mean=list(map(float, lead.processor.image_mean)), input_std=list(map(float, lead.processor.image_std)))
    return FusedVisionModel(config, towers=[t.model for t in towers]), lead.processor, grids[0][2] ** 2


def build_composed(spec: str, cfg: dict):
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    from vlmdyn_cli.models.special import ensure_chat_tokens

    vision_ids, llm_id = split_composed(spec)
    dtype = _dtype(cfg)
    towers = [load_tower(v, dtype) for v in vision_ids]
    llm, tokenizer = load_llm(llm_id, dtype)
    layer = int(cfg.get("vision_feature_layer", -2))
    if len(towers) == 1 and towers[0].model_type in _STOCK:
        t = towers[0]
        vision, processor_images = t.model, t.processor
        strategy = "default" if t.prefix_tokens else "full"
        n_img = (int(t.config.image_size) // int(t.config.patch_size)) ** 2
        vision_config, feature_layer, extra = t.config, layer, t.prefix_tokens
    else:
        vision, processor_images, n_img = fuse(towers, layer)
        strategy, vision_config, feature_layer, extra = "full", vision.config, -1, 0
    config = LlavaConfig(
        vision_config=vision_config.to_dict(), text_config=llm.config.to_dict(),
        image_token_index=0, image_seq_length=n_img, vision_feature_select_strategy=strategy,
        vision_feature_layer=feature_layer, projector_hidden_act="gelu",
        tie_word_embeddings=bool(getattr(llm.config, "tie_word_embeddings", False)),
    )
    with torch.device("meta"):          # a shell only: every part is replaced by a real module below
        model = LlavaForConditionalGeneration(config)
    if "seed" in cfg:
        torch.manual_seed(int(cfg["seed"]))
    model.model.vision_tower = vision
    model.model.language_model = llm.get_decoder() if hasattr(llm, "get_decoder") else llm.model
    model.lm_head = llm.get_output_embeddings()
    model.model.multi_modal_projector = LlavaMultiModalProjector(config).to(dtype)
    left = [n for n, p in [*model.named_parameters(), *model.named_buffers()] if p.is_meta]
    if left:
        raise RuntimeError(f"composed model: parts left unbuilt: {left[:3]}")
    ensure_chat_tokens(model, tokenizer)
    processor = LlavaProcessor(image_processor=processor_images, tokenizer=tokenizer,
                               patch_size=int(vision_config.patch_size),
                               vision_feature_select_strategy=strategy, num_additional_image_tokens=extra)
    return model, processor
