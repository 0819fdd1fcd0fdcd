"""Generation backends by id (DESIGN.md convention 4): ``hf`` (default) and ``vllm``.

``get_backend("hf", device="cpu")`` returns a ``GenBackend``; an unknown id
fails listing the valid ones. Backends import their heavy dependencies
lazily, and an optional one that is missing says what to install.
"""

from __future__ import annotations

import importlib

from vlmdyn_cli.errors import BadInput, did_you_mean
from vlmdyn_cli.inference.backends.base import GenBackend

# id -> ("module:Class", description)
BACKENDS: dict[str, tuple[str, str]] = {
    "hf": ("vlmdyn_cli.inference.backends.hf:HFBackend",
           "transformers generate, batched with left padding and KV cache; CPU or GPU; every model "
           "the training registry builds"),
    "vllm": ("vlmdyn_cli.inference.backends.vllm:VLLMBackend",
             "vLLM offline engine on a CUDA GPU, same checkpoint folders (pip install 'vlmdyn[vllm]')"),
}


def register(name: str, target: str, description: str) -> None:
    """Add a backend (tests and plug-ins); ``target`` is "module:Class"."""
    BACKENDS[name] = (target, description)


def get_backend(name: str, **options) -> GenBackend:
    if name not in BACKENDS:
        listing = "; ".join(f"{k}: {d}" for k, (_, d) in BACKENDS.items())
        raise BadInput(f"unknown backend '{name}'{did_you_mean(name, BACKENDS)}. Valid backends: {listing}")
    module, _, cls = BACKENDS[name][0].partition(":")
    return getattr(importlib.import_module(module), cls)(**options)
