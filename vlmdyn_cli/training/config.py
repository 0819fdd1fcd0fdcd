"""Training configuration: a TOML file with [model], [data], [train], [checkpoints], [parts].

``DEFAULTS`` is the built-in tiny configuration; ``examples/tiny.toml`` is the
same thing written out (a test keeps them identical). A config file only
needs the keys it changes; unknown sections or keys are an error with a
did-you-mean, so a typo never silently trains the wrong thing.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

from vlmdyn_cli.errors import BadInput, did_you_mean
from vlmdyn_cli.models.tiny import TINY_DEFAULTS

PAPER_PATTERN = (51, 357, 765, 1275, 2550, 3825)   # of 5120 steps (METHOD.md 1)
PAPER_TOTAL = 5120

DEFAULTS: dict = {
    "model": {
        "id": "tiny",
        **TINY_DEFAULTS,        # tiny sizes (ignored by hf: and composed: models)
        # all models
        "dtype": "float32",
        "vision_feature_layer": -2,      # composed: which vision layer feeds the projector
        "gradient_checkpointing": False,
    },
    "data": {
        "dataset": "",                    # dataset name; "" = the only dataset in the database
        "max_length": 512,                # tokens per conversation (image tokens included); longer ones are cut
    },
    "train": {
        "per_device_batch": 8,
        "grad_accum": 1,
        "lr": 1e-3,
        "warmup": 0.03,                   # fraction of the epoch
        "min_lr_ratio": 0.0,              # cosine floor, as a fraction of lr
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "adam_beta1": 0.9,
        "adam_beta2": 0.999,
        "loss": "answer",                 # answer | instruction+answer (L2T)
        "mixed_precision": "no",          # no | bf16 | fp16
        "threads": 1,                     # torch CPU threads (0 = all cores); 1 is fastest for tiny on a busy CPU
        "num_workers": 0,                 # DataLoader workers
        "out_dir": "runs",                # checkpoints go to <out_dir>/<run>/checkpoints/step-NNNNNN
        "report_to": "none",              # none | wandb | tensorboard
        "resume_every": 0,                # also save the resume state every N steps (0: at checkpoints only)
    },
    "checkpoints": {
        "steps": "paper",                 # "paper" or a list of steps (ints) / fractions of the epoch (floats)
        "include_step_0": False,          # also save the untrained model as step 0
        "final": True,                    # also save the last step of the epoch
    },
    "parts": {
        "freeze": [],                     # any of vision, projector, llm
        "lr": {"vision": 3e-3, "projector": 3e-3},   # per-part LRs (others use train.lr); tiny only unless set
    },
}

LOSS_CHOICES = ("answer", "instruction+answer")
MIXED_CHOICES = ("no", "bf16", "fp16")
REPORT_CHOICES = ("none", "wandb", "tensorboard")


def _toml():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib


def read_toml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"config file {p} does not exist")
    try:
        return _toml().loads(p.read_text())
    except Exception as exc:  # tomllib.TOMLDecodeError
        raise BadInput(f"{p}: not valid TOML: {exc}") from exc


def merge(base: dict, override: dict, where: str = "") -> dict:
    """Deep-merge ``override`` into a copy of ``base``; unknown keys -> BadInput with a did-you-mean."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        name = f"{where}.{key}" if where else key
        if key not in base:
            raise BadInput(f"config: unknown {'key' if where else 'section'} '{name}'{did_you_mean(key, base)}; "
                           f"known: {', '.join(base)}")
        if isinstance(base[key], dict) and key != "lr":
            if not isinstance(value, dict):
                raise BadInput(f"config: '{name}' must be a table ([{name}])")
            out[key] = merge(base[key], value, name)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """The resolved config: DEFAULTS <- file <- overrides (same nesting); validated."""
    cfg = copy.deepcopy(DEFAULTS)
    layers = [read_toml(path) if path else {}, overrides or {}]
    for layer in layers:
        if layer:
            cfg = merge(cfg, layer)
    if cfg["model"]["id"] != "tiny" and not any("lr" in layer.get("parts", {}) for layer in layers):
        # the default per-part LRs are tuned for the random-init tiny preset only
        cfg["parts"]["lr"] = {}
    validate(cfg)
    return cfg


def _positive_int(cfg: dict, sec: str, key: str, minimum: int = 1) -> None:
    v = cfg[sec][key]
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise BadInput(f"config: [{sec}] {key} must be an integer >= {minimum}, got {v!r}")


def validate(cfg: dict) -> None:
    t = cfg["train"]
    for key in ("per_device_batch", "grad_accum"):
        _positive_int(cfg, "train", key)
    _positive_int(cfg, "data", "max_length", 8)
    for key in ("threads", "num_workers", "resume_every"):
        _positive_int(cfg, "train", key, 0)
    for key in ("lr", "warmup", "min_lr_ratio", "weight_decay", "max_grad_norm"):
        if not isinstance(t[key], (int, float)) or isinstance(t[key], bool) or t[key] < 0:
            raise BadInput(f"config: [train] {key} must be a number >= 0, got {t[key]!r}")
    if not 0 <= t["warmup"] < 1:
        raise BadInput(f"config: [train] warmup is a fraction of the epoch in [0, 1), got {t['warmup']}")
    for key, choices in (("loss", LOSS_CHOICES), ("mixed_precision", MIXED_CHOICES), ("report_to", REPORT_CHOICES)):
        if t[key] not in choices:
            raise BadInput(f"config: [train] {key} = '{t[key]}' is not one of {', '.join(choices)}"
                           f"{did_you_mean(str(t[key]), choices)}")
    steps = cfg["checkpoints"]["steps"]
    if steps != "paper" and not (isinstance(steps, list) and all(
            isinstance(s, (int, float)) and not isinstance(s, bool) for s in steps)):
        raise BadInput(f"config: [checkpoints] steps must be \"paper\" or a list of numbers, got {steps!r}")
    from vlmdyn_cli.models.parts import check_part

    for p in cfg["parts"]["freeze"]:
        check_part(p, "config: [parts] freeze")
    for p, v in cfg["parts"]["lr"].items():
        check_part(p, "config: [parts.lr]")
        if not isinstance(v, (int, float)) or v < 0:
            raise BadInput(f"config: [parts.lr] {p} must be a number >= 0, got {v!r}")


def to_toml(cfg: dict) -> str:
    """Render a config as TOML (simple values only: what DEFAULTS holds)."""
    import json

    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + "}"
        raise TypeError(type(v))

    lines = []
    for sec, body in cfg.items():
        lines.append(f"[{sec}]")
        lines += [f"{k} = {val(v)}" for k, v in body.items()]
        lines.append("")
    return "\n".join(lines)
