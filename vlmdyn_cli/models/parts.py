"""The parts of a LLaVA model, for freezing and per-part learning rates.

    vision      model.vision_tower.*
    projector   model.multi_modal_projector.*
    embeddings  model.language_model.embed_tokens.* (the token embeddings, inside the LLM)
    llm         the rest of model.language_model.*, lm_head.*

The token embeddings are part of the LLM: freezing ``llm`` freezes them too, and they take
the LLM's learning rate unless ``embeddings`` has its own. Their own rate matters for
memorisation: a word that names one picture moves only its own embedding row, and only
when that picture is trained on.
"""

from __future__ import annotations

from vlmdyn_cli.errors import BadInput, did_you_mean

PARTS = ("vision", "projector", "embeddings", "llm")
_PREFIXES = {   # first match wins: embeddings before the rest of the LLM
    "vision": ("model.vision_tower.",),
    "projector": ("model.multi_modal_projector.",),
    "embeddings": ("model.language_model.embed_tokens.",),
    "llm": ("model.language_model.", "lm_head."),
}
_INSIDE = {"embeddings": "llm"}     # a part that follows its container's freeze and rate


def part_of(param_name: str) -> str:
    name = param_name.removeprefix("module.")
    for part, prefixes in _PREFIXES.items():
        if name.startswith(prefixes):
            return part
    raise ValueError(f"parameter {param_name} belongs to no known part")


def check_part(name: str, where: str) -> None:
    if name not in PARTS:
        raise BadInput(f"{where}: unknown part '{name}'{did_you_mean(name, PARTS)}; parts are {', '.join(PARTS)}")


def param_groups(model, base_lr: float, freeze: list[str], part_lr: dict[str, float], weight_decay: float):
    """Freeze parts (requires_grad False) and build optimizer groups with per-part LRs.

    Returns (groups, counts) where counts maps part -> number of trainable parameters.
    """
    for p in freeze:
        check_part(p, "[parts] freeze")
    for p in part_lr:
        check_part(p, "[parts.lr]")
    buckets: dict[tuple[str, bool], list] = {}
    counts = {p: 0 for p in PARTS}
    for name, param in model.named_parameters():
        part = part_of(name)
        if part in freeze or _INSIDE.get(part) in freeze:
            param.requires_grad_(False)
            continue
        param.requires_grad_(True)
        counts[part] += param.numel()
        decay = param.ndim >= 2
        buckets.setdefault((part, decay), []).append(param)
    groups = []
    for (part, decay), params in buckets.items():
        lr = part_lr.get(part, part_lr.get(_INSIDE.get(part, part), base_lr))
        groups.append({"params": params, "lr": float(lr),
                       "weight_decay": weight_decay if decay else 0.0, "part": part})
    if not groups:
        raise BadInput("[parts] freeze leaves nothing to train")
    return groups, counts
