"""Sequence packing (training/packing.py): same loss and gradients as padding, same order manifest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers_data import make_dataset
from vlmdyn_cli.training.collate import Collator, ImageCache
from vlmdyn_cli.training.config import load_config
from vlmdyn_cli.training.dataset import IGNORE
from vlmdyn_cli.training.loss import loss_sum
from vlmdyn_cli.training.order import micro_batches
from vlmdyn_cli.training.packing import PACKED_ATTENTION, pack_rows
from vlmdyn_cli.training.trainer import Trainer, train

torch.set_num_threads(1)


@pytest.fixture
def mixed_db(db, tmp_path):
    """Conversations of different lengths: three turns with an image, one short text-only turn."""
    make_dataset(db, tmp_path, n_conversations=20, turns=3, n_text_only=8)
    return db


def _manifest(db, run: str) -> list[tuple]:
    return db.execute("SELECT o.conversation_id, o.step, o.position FROM run_order o JOIN runs r ON r.id = o.run_id "
                      "WHERE r.name = ? ORDER BY o.step, o.position", [run]).fetchall()


def test_pack_rows_layout():
    ids = [np.array([5, 6, 7]), np.array([8, 9]), np.array([1, 2, 3, 4])]
    labels = [np.array([5, 6, 7]), np.array([IGNORE, 9]), np.array([1, IGNORE, 3, 4])]
    b = pack_rows(ids, labels, IGNORE)
    assert b["input_ids"].tolist() == [[5, 6, 7, 8, 9, 1, 2, 3, 4]]
    assert b["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2, 3]]
    # every conversation's first token is unlabelled: nothing learns to predict across a boundary
    assert b["labels"].tolist() == [[IGNORE, 6, 7, IGNORE, 9, IGNORE, IGNORE, 3, 4]]
    assert b["packed_lengths"] == (3, 2, 4)


def test_packed_loss_and_gradients_equal_padded(mixed_db, small_training):
    cfg = load_config(None, small_training(checkpoints={"steps": [], "final": False}))
    tr = Trainer(mixed_db, cfg, seed=0, run_name="p")
    tr.prepare()
    assert tr.packed and tr.llava.config.text_config._attn_implementation == PACKED_ATTENTION
    images = [c.image for c in tr.plan.convs]
    cache = ImageCache(tr.processor.image_processor, len(images))
    make = {pack: Collator(tr.encoded, tr.epoch, images, tr.processor.tokenizer.pad_token_id, cache, pack=pack)
            for pack in (False, True)}
    params = [p for p in tr.llava.parameters() if p.requires_grad]
    n_padding = 0
    for mb in list(micro_batches(len(tr.epoch.order), 4, 1, 1, 0))[:5]:
        out = {}
        for pack, collate in make.items():
            batch = collate(mb)
            tr.opt.zero_grad(set_to_none=True)
            loss = loss_sum(tr.wrapped, batch, torch.device("cpu"))
            loss.backward()
            out[pack] = (loss.item(), [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params])
            if not pack:
                n_padding += int((batch["attention_mask"] == 0).sum())
            else:
                assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
        (loss_pad, g_pad), (loss_pack, g_pack) = out[False], out[True]
        assert loss_pack == pytest.approx(loss_pad, rel=1e-5)
        for a, b in zip(g_pad, g_pack):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    assert n_padding > 0                      # the padded batches really had padding to leave out


def test_loss_module_equals_the_models_own_loss(mixed_db, small_training):
    """The loss module places the image features itself (index copy): same loss and vision-tower
    gradients as ``LlavaForConditionalGeneration(..., labels=...)``, which places them with its own mask."""
    cfg = load_config(None, small_training(train={"packing": False}, checkpoints={"steps": [], "final": False}))
    tr = Trainer(mixed_db, cfg, seed=0, run_name="m")
    tr.prepare()
    batch = next(b for b in tr.batches if b["pixel_values"] is not None and len(b["pixel_values"]) > 1)
    vision = [p for p in tr.llava.model.vision_tower.parameters()]
    out = []
    for ours in (True, False):
        tr.llava.zero_grad(set_to_none=True)
        if ours:
            loss = loss_sum(tr.wrapped, batch, torch.device("cpu"))
        else:
            n = int((batch["labels"][:, 1:] != IGNORE).sum())
            loss = n * tr.llava(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                pixel_values=batch["pixel_values"], labels=batch["labels"], use_cache=False).loss
        loss.backward()
        out.append((loss.item(), [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in vision]))
    assert out[0][0] == pytest.approx(out[1][0], rel=1e-5)
    assert any(bool(g.abs().sum() > 0) for g in out[1][1])     # the images did reach the loss
    for a, b in zip(out[0][1], out[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_packed_attention_with_grouped_key_value_heads():
    """The direct SDPA path repeats grouped key/value heads: each conversation's output equals
    transformers' SDPA attention on that conversation alone."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from vlmdyn_cli.training.packing import packed_attention

    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 2, True
    lengths = (5, 9, 3)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, sum(lengths), 8, generator=g)
    k, v = (torch.randn(1, 2, sum(lengths), 8, generator=g) for _ in range(2))
    out, _ = packed_attention(module, q, k, v, None, scaling=0.3, packed_lengths=lengths)
    assert out.shape == (1, sum(lengths), 4, 8)
    ref = torch.cat([sdpa_attention_forward(module, a, b, c, None, scaling=0.3)[0]
                     for a, b, c in zip(q.split(lengths, 2), k.split(lengths, 2), v.split(lengths, 2))], dim=1)
    torch.testing.assert_close(out, ref)


def test_packed_model_on_a_padded_batch_is_plain_sdpa(mixed_db, small_training):
    """Outside a packed row the packed implementation is SDPA with the model's padding mask."""
    cfg = load_config(None, small_training(train={"packing": False}, checkpoints={"steps": [], "final": False}))
    tr = Trainer(mixed_db, cfg, seed=0, run_name="q")
    tr.prepare()
    assert not tr.packed and tr.llava.config.text_config._attn_implementation == "sdpa"
    batch = next(b for b in tr.batches if (b["attention_mask"] == 0).any())
    with torch.no_grad():
        plain = loss_sum(tr.wrapped, batch, torch.device("cpu")).item()
        from vlmdyn_cli.training.packing import use_packed_attention

        assert use_packed_attention(tr.llava)
        switched = loss_sum(tr.wrapped, batch, torch.device("cpu")).item()
    assert switched == pytest.approx(plain, rel=1e-6)


def test_packed_training_keeps_the_manifest_and_the_loss_curve(mixed_db, small_training):
    runs = {}
    for pack in (False, True):
        cfg = load_config(None, small_training(train={"packing": pack}, checkpoints={"steps": [], "final": True}))
        s = train(mixed_db, cfg, seed=3, run_name=f"pack-{pack}")
        losses = [r[0] for r in mixed_db.execute("SELECT loss FROM metrics WHERE run_id=? ORDER BY step",
                                                 [s["run_id"]])]
        runs[pack] = (s, losses)
    (s_pad, l_pad), (s_pack, l_pack) = runs[False], runs[True]
    assert s_pad["total_steps"] == s_pack["total_steps"] == 7
    manifest = _manifest(mixed_db, "pack-True")
    assert manifest == _manifest(mixed_db, "pack-False")           # conversation -> (step, position) unchanged
    assert len({c for c, _, _ in manifest}) == len(manifest) == 28  # each conversation exactly once
    np.testing.assert_allclose(l_pack, l_pad, rtol=2e-3)
    assert l_pack[-1] < l_pack[0]


def test_sliding_window_models_stay_padded(mixed_db, small_training):
    cfg = load_config(None, small_training(train={"packing": False}, checkpoints={"steps": [], "final": False}))
    tr = Trainer(mixed_db, cfg, seed=0, run_name="w")
    tr.prepare()
    from vlmdyn_cli.training.packing import use_packed_attention

    tr.llava.config.text_config.sliding_window = 8
    assert not use_packed_attention(tr.llava)
    assert tr.llava.config.text_config._attn_implementation == "sdpa"
    tr.llava.config.text_config.sliding_window = None
    assert use_packed_attention(tr.llava)
