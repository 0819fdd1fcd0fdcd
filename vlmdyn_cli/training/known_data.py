"""Starting models known to have been trained on the data they are given (a data table, not an if-chain).

Learning dynamics need data the model has not seen: a model already instruction-tuned on
LLaVA-665k has seen every "unseen" example, so the seen/unseen comparison measures nothing.
``vlmdyn train`` calls ``warn_if_trained_on`` before training; it warns (on stderr, whatever
``--json``/``--quiet`` say) when a part of the starting model matches ``KNOWN_TRAINING`` and the
dataset matches that entry's dataset signature in ``DATASETS``. It never stops the run: fine-tuning
such a model can be what a user wants, just not for this measurement.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DatasetSignature:
    names: tuple[str, ...]           # glob patterns over the dataset's name and source file name (lower case)
    folders: frozenset[str]          # its image folders (conversations.source) ...
    min_folders: int                 # ... of which at least this many must be present


@dataclass(frozen=True)
class KnownTraining:
    models: tuple[str, ...]          # glob patterns over a model id part (lower case: hub id or folder path)
    dataset: str                     # a key of DATASETS
    how: str                         # what the model was trained on, in a few words


DATASETS: dict[str, DatasetSignature] = {
    "LLaVA-665k": DatasetSignature(
        names=("*llava_v1_5_mix665k*", "*mix665k*", "*llava*665k*"),
        folders=frozenset({"coco", "gqa", "ocr_vqa", "textvqa", "vg"}), min_folders=4),
}

KNOWN_TRAINING: tuple[KnownTraining, ...] = (
    KnownTraining(("*llava-1.5*", "*llava-v1.5*", "*llava_v1.5*", "*llava-v1_5*"), "LLaVA-665k",
                  "LLaVA-1.5 checkpoints were instruction-tuned on exactly this mix (llava_v1_5_mix665k)"),
    KnownTraining(("*llava-v1.6*", "*llava-1.6*", "*llava-next*"), "LLaVA-665k",
                  "LLaVA-1.6 (NeXT) checkpoints were instruction-tuned on a mix that contains most of it"),
    KnownTraining(("*prismatic-vlms*", "*prismatic_vlms*"), "LLaVA-665k",
                  "Prismatic VLM checkpoints were trained on the LLaVA-1.5 mix"),
    KnownTraining(("*vicuna*v1.5*",), "LLaVA-665k",
                  "Vicuna v1.5 was fine-tuned on ShareGPT conversations; the mix's ~40k text-only conversations "
                  "are ShareGPT too, so those may be seen (the image data is not)"),
)


def model_parts(model_id: str) -> list[str]:
    """The ids a registry model id is made of (``composed:a+b+c`` -> [a, b, c])."""
    prefix, _, arg = model_id.partition(":")
    return [p for p in arg.split("+") if p] if prefix == "composed" else [arg or prefix]


def matches_dataset(sig: DatasetSignature, names: list[str], folders: set[str]) -> bool:
    low = [n.lower() for n in names if n]
    if any(fnmatch.fnmatch(n, pat) for n in low for pat in sig.names):
        return True
    return len(sig.folders & {f.lower() for f in folders}) >= sig.min_folders


def findings(model_id: str, dataset_names: list[str], folders: set[str]) -> list[tuple[str, str, KnownTraining]]:
    """(model part, dataset key, entry) for every known-training match."""
    out = []
    for part in model_parts(model_id):
        low = part.lower()
        for entry in KNOWN_TRAINING:
            if any(fnmatch.fnmatch(low, pat) for pat in entry.models) and \
                    matches_dataset(DATASETS[entry.dataset], dataset_names, folders):
                out.append((part, entry.dataset, entry))
    return out


def warn_if_trained_on(db, cfg, stream=None) -> list[str]:
    """Print a loud warning for each known match of the config's model and dataset; returns the messages.

    ``cfg``: the training config (``training.config.TrainConfig``)."""
    from vlmdyn_cli.errors import BadInput
    from vlmdyn_cli.training.dataset import resolve_datasets

    if os.environ.get("RANK", "0") != "0":   # under accelerate/torchrun: once, from rank 0
        return []
    try:
        mix = resolve_datasets(db, cfg.data.dataset)
    except BadInput:
        return []   # the trainer reports a missing or ambiguous dataset itself
    messages = []
    for ds in mix:
        row = db.execute("SELECT source_path FROM datasets WHERE id = ?", [ds["id"]]).fetchone()
        names = [ds["name"], Path(row[0]).name if row and row[0] else ""]
        folders = {r[0] for r in db.execute("SELECT DISTINCT source FROM conversations WHERE dataset_id = ?",
                                            [ds["id"]])}
        messages += [f"WARNING: the starting model part '{part}' is known to have been trained on {key}, and "
                     f"dataset '{ds['name']}' is {key}: {entry.how}. Examples it has already seen are not unseen, "
                     f"so the seen/unseen comparison is not measured. For the paper's setting start from parts "
                     f"that have not seen it (examples/paper-prism-7b.toml)."
                     for part, key, entry in findings(cfg.model.id, names, folders)]
    for m in messages:
        print(m, file=stream or sys.stderr, flush=True)
    return messages
