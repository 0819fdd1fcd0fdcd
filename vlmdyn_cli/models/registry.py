"""Model registry (DESIGN.md convention 4): ids, not if-chains.

    tiny                         random-init small LLaVA, vocabulary from the data
    hf:<folder or hub id>        an existing LLaVA-family model
    composed:<vision>+<llm>      vision encoder + LLM + fresh MLP projector

``build_model(model_id, cfg, texts=...) -> (model, processor)``; every model
is a transformers ``LlavaForConditionalGeneration`` and every processor a
``LlavaProcessor``, so checkpoints are ordinary HF folders.
"""

from __future__ import annotations

from typing import Callable, Iterable

from vlmdyn_cli.errors import BadInput, did_you_mean

# prefix (or exact id) -> (builder(arg, cfg, texts), description)
_BUILDERS: dict[str, tuple[Callable, str]] = {}


def register(prefix: str, description: str):
    def deco(fn):
        _BUILDERS[prefix] = (fn, description)
        return fn
    return deco


@register("tiny", "random-init SigLIP + Llama tiny LLaVA; word vocabulary learned from the data")
def _tiny(arg: str, cfg: dict, texts):
    from vlmdyn_cli.models.tiny import build_tiny

    if arg:
        raise BadInput(f"model id 'tiny:{arg}': the tiny preset takes no argument (sizes go in [model])")
    return build_tiny(cfg, texts)


@register("hf", "hf:<local folder or hub id> of a LLaVA-family model, e.g. hf:llava-hf/llava-1.5-7b-hf")
def _hf(arg: str, cfg: dict, texts):
    from vlmdyn_cli.models.hf import load_hf_llava

    if not arg:
        raise BadInput("model id 'hf:' needs a folder or hub id, e.g. hf:llava-hf/llava-1.5-7b-hf")
    return load_hf_llava(arg, cfg)


@register("composed", "composed:<vision id>+<llm id>, e.g. composed:google/siglip-so400m-patch14-384+lmsys/vicuna-7b-v1.5")
def _composed(arg: str, cfg: dict, texts):
    from vlmdyn_cli.models.composed import build_composed

    return build_composed(arg, cfg)


def valid_ids() -> list[str]:
    return [p if p == "tiny" else f"{p}:<...>" for p in _BUILDERS]


def parse_model_id(model_id: str) -> tuple[str, str]:
    """Split an id into (registered prefix, argument); unknown -> BadInput listing the valid ids."""
    prefix, _, arg = model_id.partition(":")
    if prefix not in _BUILDERS:
        listing = "; ".join(f"{k}: {d}" for k, (_, d) in _BUILDERS.items())
        raise BadInput(f"unknown model id '{model_id}'{did_you_mean(prefix, _BUILDERS)}. Valid ids: {listing}")
    return prefix, arg


def build_model(model_id: str, cfg: dict | None = None, texts: Iterable[str] | None = None):
    """Build (model, processor) for a registry id. ``cfg`` is the [model] config section."""
    prefix, arg = parse_model_id(model_id)
    model, processor = _BUILDERS[prefix][0](arg, dict(cfg or {}), texts)
    return model, processor


def describe() -> list[dict]:
    return [{"id": valid_ids()[i], "description": d} for i, (_, d) in enumerate(_BUILDERS.values())]
