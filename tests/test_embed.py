"""The MiniLM sentence-embedding features (judging/embed.py), on the real all-MiniLM-L6-v2 weights
that the `embed` extra installs (part of the test extras)."""

from __future__ import annotations

import numpy as np
import pytest

from vlmdyn_cli.judging import embed as E
from vlmdyn_cli.judging.backends.base import Item
from vlmdyn_cli.judging.references import encode


def test_embeddings_are_unit_length_and_the_cache_changes_nothing():
    texts = ["the United States", "Paris", "a short answer about the capital of France", "Paris"]
    E._cache.clear()
    first = E.embed(texts)
    assert first.shape == (4, 384)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(first[1], first[3])                 # a repeated text: one embedding
    assert set(E._cache) == set(texts)                       # each distinct text embedded once, kept
    again = E.embed(list(reversed(texts)))                   # from the cache, in the order asked
    assert np.array_equal(again, first[::-1])
    E._cache.clear()
    alone = E.embed(["Paris"])                               # embedded with other texts or alone: same
    assert np.allclose(alone[0], first[1], atol=1e-5)


def test_similarity_reads_meaning_not_letters():
    items = [Item("a", "which country is new york in", encode(["United States"]), "the USA"),
             Item("b", "which country is new york in", encode(["United States"]), "bananas"),
             Item("c", "who wrote hamlet", encode(["Marlowe", "William Shakespeare"]), "Shakespeare")]
    f = E.similarity_features(items)
    assert f["a"]["minilm-cos"] > f["b"]["minilm-cos"] + 0.3
    assert f["a"]["minilm-qcos"] > f["b"]["minilm-qcos"]
    # best over the references: "Shakespeare" is scored against "William Shakespeare", not "Marlowe"
    assert f["c"]["minilm-cos"] == pytest.approx(float(E.embed(["William Shakespeare"])[0] @ E.embed(["Shakespeare"])[0]),
                                                 abs=1e-5)
