"""Model registry (DESIGN.md convention 4): ids, not if-chains.

    tiny                         random-init small LLaVA, vocabulary from the data
    hf:<folder or hub id>        an existing LLaVA-family model
    composed:<vision>+<llm>      vision encoder + LLM + fresh MLP projector

``build_model(model_id, cfg, texts=...) -> (model, processor)``; every model
is a transformers ``LlavaForConditionalGeneration`` and every processor a
``LlavaProcessor``, so checkpoints are ordinary HF folders.

What differs between families is said once, on the family: how to build it,
whether its size is known before building (the trainer's memory pre-check),
and which config defaults it does not take (``config_defaults``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from vlmdyn_cli.errors import BadInput, did_you_mean


@dataclass(frozen=True)
class ModelSize:
    """What the memory estimate needs to know about a model."""

    n_params: int
    hidden: int
    layers: int
    vocab: int


@dataclass(frozen=True)
class ModelFamily:
    prefix: str
    description: str
    build: Callable          # (arg, [model] section dict, training texts) -> (model, processor)
    # (arg, [model] section dict) -> ModelSize, for families whose size is known without loading anything
    size_before_build: Callable | None = None
    # config values this family takes instead of the built-in (tiny-tuned) defaults, unless the config sets them
    config_defaults: dict = field(default_factory=dict)
    takes_arg: bool = True


_FAMILIES: dict[str, ModelFamily] = {}


def register(family: ModelFamily) -> ModelFamily:
    _FAMILIES[family.prefix] = family
    return family


def _build_tiny(arg: str, cfg: dict, texts):
    from vlmdyn_cli.models.tiny import build_tiny

    return build_tiny(cfg, texts)


def _tiny_size(arg: str, cfg: dict) -> ModelSize:
    from vlmdyn_cli.models.tiny import TinySizes, param_count

    sizes = TinySizes.from_config(cfg)
    return ModelSize(param_count(sizes), sizes.text_hidden, sizes.text_layers, sizes.vocab_size)


def _build_hf(arg: str, cfg: dict, texts):
    from vlmdyn_cli.models.hf import load_hf_llava

    if not arg:
        raise BadInput("model id 'hf:' needs a folder or hub id, e.g. hf:llava-hf/llava-1.5-7b-hf")
    return load_hf_llava(arg, cfg)


def _build_composed(arg: str, cfg: dict, texts):
    from vlmdyn_cli.models.composed import build_composed

    return build_composed(arg, cfg)


# the default per-part learning rates are tuned for the random-init tiny preset only
_NO_TINY_PART_LR = {"parts": {"lr": {}}}

register(ModelFamily("tiny", "random-init SigLIP + Llama tiny LLaVA; word vocabulary learned from the data",
                     _build_tiny, size_before_build=_tiny_size, takes_arg=False))
register(ModelFamily("hf", "hf:<local folder or hub id> of a LLaVA-family model, e.g. hf:llava-hf/llava-1.5-7b-hf",
                     _build_hf, config_defaults=_NO_TINY_PART_LR))
register(ModelFamily("composed", "composed:<vision id>+<llm id>, e.g. "
                     "composed:google/siglip-so400m-patch14-384+lmsys/vicuna-7b-v1.5",
                     _build_composed, config_defaults=_NO_TINY_PART_LR))


def resolve(model_id: str) -> tuple[ModelFamily, str]:
    """Split an id into (family, argument); unknown -> BadInput listing the valid ids."""
    prefix, _, arg = model_id.partition(":")
    family = _FAMILIES.get(prefix)
    if family is None:
        listing = "; ".join(f"{f.prefix}: {f.description}" for f in _FAMILIES.values())
        raise BadInput(f"unknown model id '{model_id}'{did_you_mean(prefix, _FAMILIES)}. Valid ids: {listing}")
    if arg and not family.takes_arg:
        raise BadInput(f"model id '{model_id}': the {prefix} preset takes no argument (sizes go in [model])")
    return family, arg


def build_model(model_id: str, cfg: dict | None = None, texts: Iterable[str] | None = None):
    """Build (model, processor) for a registry id. ``cfg`` is the [model] config section."""
    family, arg = resolve(model_id)
    return family.build(arg, dict(cfg or {}), texts)


def size_before_build(model_id: str, cfg: dict) -> ModelSize | None:
    """The model's size without building it, where the family can tell (None otherwise)."""
    family, arg = resolve(model_id)
    return family.size_before_build(arg, cfg) if family.size_before_build else None
