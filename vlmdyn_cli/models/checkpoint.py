"""Checkpoints are plain HF model folders plus one small JSON of vlmdyn facts.

    <path>/config.json, model.safetensors     the LlavaForConditionalGeneration
    <path>/processor + tokenizer files         AutoProcessor.from_pretrained(path)
    <path>/vlmdyn.json                         {"step", "seed", "run", "config", ...}

A folder is written under a temporary name and renamed when complete, so a
kill never leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from vlmdyn_cli.errors import BadInput

META_FILE = "vlmdyn.json"


def save_checkpoint(model, processor, path: str | os.PathLike, meta: dict) -> Path:
    """Write model + processor + meta to ``path`` (replacing it atomically)."""
    quiet_transformers()
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model = getattr(model, "module", model)
    model.save_pretrained(tmp, safe_serialization=True)
    processor.save_pretrained(tmp)
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    if path.exists():
        old = path.with_name(path.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old)
    else:
        tmp.rename(path)
    return path


def quiet_transformers() -> None:
    """No per-shard progress bars from transformers: our Reporter owns the terminal."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def read_meta(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_dir():
        raise BadInput(f"checkpoint folder {p} does not exist")
    meta_file = p / META_FILE
    if not (p / "config.json").exists():
        raise BadInput(f"{p} is not a model checkpoint (no config.json)")
    if not meta_file.exists():
        return {}
    try:
        return json.loads(meta_file.read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"{meta_file} is corrupt: {exc}") from exc


def load_checkpoint(path: str | os.PathLike, device: str = "cpu", dtype=None):
    """Load (model, processor, meta) from a checkpoint folder; BadInput if missing or corrupt."""
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    import vlmdyn_cli.models.fused  # noqa: F401 - registers the fused vision tower (composed: DINOv2 + SigLIP)

    meta = read_meta(path)
    quiet_transformers()
    try:
        model = LlavaForConditionalGeneration.from_pretrained(path, dtype=dtype or torch.float32)
        processor = AutoProcessor.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - safetensors/json/config errors all mean "unusable folder"
        raise BadInput(f"checkpoint {path} cannot be loaded: {exc}") from exc
    model.to(device)
    model.eval()
    return model, processor, meta
