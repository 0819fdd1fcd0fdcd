"""The paper's real-scale recipe in miniature: Prismatic's fused DINOv2 + SigLIP tower + a Llama LM from
saved Hugging Face folders, a fresh MLP projector, trained through `vlmdyn train`; bad parts; the
known-training-data warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers_data import make_dataset
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.models import chat
from vlmdyn_cli.models.registry import build_model

torch.set_num_threads(1)
WORDS = ["What colour is the square?", "What colour is the circle?", "What shape is shown?",
         "red", "green", "blue", "yellow", "square", "circle", "What is 1 plus 2?", "3 4 5 6 7 8"]


def _save_parts(root: Path, siglip_patch: int = 4) -> dict[str, Path]:
    """Tiny random DINOv2-with-registers, SigLIP and Llama models saved as if downloaded from the hub."""
    from transformers import (Dinov2WithRegistersConfig, Dinov2WithRegistersModel, LlamaConfig, LlamaForCausalLM,
                              SiglipVisionConfig, SiglipVisionModel)
    from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    from vlmdyn_cli.models.tokenizer import build_word_tokenizer

    torch.manual_seed(0)
    kw = dict(intermediate_size=48, num_hidden_layers=2, num_attention_heads=2)
    paths = {k: root / k for k in ("dino", "siglip", "llama")}
    # DINOv2 is made for 32 px here and runs at SigLIP's 16 px (interpolated positions), as in Prismatic
    Dinov2WithRegistersModel(Dinov2WithRegistersConfig(hidden_size=24, image_size=32, patch_size=4,
                                                       num_register_tokens=4, **kw)).save_pretrained(paths["dino"])
    BitImageProcessorPil(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16},
                         image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(paths["dino"])
    SiglipVisionModel(SiglipVisionConfig(hidden_size=32, image_size=16, patch_size=siglip_patch, **kw)) \
        .save_pretrained(paths["siglip"])
    SiglipImageProcessorPil(size={"height": 16, "width": 16}).save_pretrained(paths["siglip"])
    texts = ["".join(s for s, _ in chat.render_conversation([(w, w)], True)) for w in WORDS]
    tok = build_word_tokenizer(texts)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=2)).save_pretrained(paths["llama"])
    tok.save_pretrained(paths["llama"])
    return paths


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return _save_parts(tmp_path_factory.mktemp("parts"))


def _fused_id(p: dict) -> str:
    return f"composed:{p['dino']}+{p['siglip']}+{p['llama']}"


def test_fused_tower_concatenates_both_towers_patch_features(parts):
    """Both towers on the same image, each in its own normalisation, second-to-last layer, patches only."""
    from PIL import Image
    from transformers import AutoImageProcessor, Dinov2WithRegistersModel, SiglipVisionModel

    model, proc = build_model(_fused_id(parts), {"seed": 0})
    model.eval()
    tower = model.model.vision_tower
    assert type(tower).__name__ == "FusedVisionModel"
    assert {"Dinov2WithRegistersLayer", "SiglipEncoderLayer", "LlamaDecoderLayer"} <= model._no_split_modules  # FSDP wrap
    assert model.config.image_seq_length == 16                     # (16 px / 4 px)^2, CLS and registers dropped
    assert model.model.multi_modal_projector.linear_1.in_features == 24 + 32
    assert model.model.multi_modal_projector.linear_2.out_features == 32

    img = Image.new("RGB", (16, 16), (200, 40, 90))               # square: both processors give the same pixels
    pix = proc.image_processor(images=[img], return_tensors="pt")["pixel_values"]
    dino = Dinov2WithRegistersModel.from_pretrained(parts["dino"]).eval()
    sig = SiglipVisionModel.from_pretrained(parts["siglip"]).eval()
    with torch.no_grad():
        want_d = dino(AutoImageProcessor.from_pretrained(parts["dino"])(images=[img], return_tensors="pt")[
            "pixel_values"], output_hidden_states=True).hidden_states[-2][:, 5:]      # 1 CLS + 4 registers dropped
        want_s = sig(pix, output_hidden_states=True).hidden_states[-2]
        got = tower(pix).last_hidden_state
    assert got.shape == (1, 16, 56)
    assert torch.allclose(got, torch.cat([want_d, want_s], dim=-1), atol=1e-4)
    # the pretrained weights are the parts' own; the projector is fresh
    assert torch.equal(tower.towers[0].embeddings.patch_embeddings.projection.weight,
                       dino.embeddings.patch_embeddings.projection.weight)


def test_fused_model_round_trips_as_a_checkpoint(parts, tmp_path):
    from PIL import Image

    from vlmdyn_cli.models.checkpoint import load_checkpoint, save_checkpoint

    model, proc = build_model(_fused_id(parts), {"seed": 0})
    model.eval()
    enc = proc(text=chat.prompt_for("What colour is the square?", True), images=[Image.new("RGB", (30, 20), "red")],
               return_tensors="pt")
    assert int((enc["input_ids"] == model.config.image_token_id).sum()) == 16
    with torch.no_grad():
        out = model(**enc).logits
    save_checkpoint(model, proc, tmp_path / "ck", {"step": 0})
    m2, p2, _ = load_checkpoint(tmp_path / "ck")
    with torch.no_grad():
        again = m2(**p2(text=chat.prompt_for("What colour is the square?", True),
                        images=[Image.new("RGB", (30, 20), "red")], return_tensors="pt")).logits
    assert torch.allclose(again, out, atol=1e-5)


def _config(tmp_path: Path, model_id: str, steps="[2]") -> Path:
    cfg = tmp_path / "paper-mini.toml"
    cfg.write_text(f'[model]\nid = "{model_id}"\nvision_feature_layer = -2\ngradient_checkpointing = true\n'
                   f'[train]\nper_device_batch = 4\nlr = 3e-3\nwarmup = 0.1\nweight_decay = 0.1\nout_dir = "{tmp_path / "runs"}"\n'
                   f'[checkpoints]\nsteps = {steps}\n'
                   f'[parts]\nfreeze = ["vision"]\n[parts.lr]\nprojector = 1e-2\n')
    return cfg


def test_train_the_fused_composed_model_through_the_cli(cli, db, db_path, tmp_path, parts, capsys):
    make_dataset(db, tmp_path, n_conversations=32, turns=2, n_text_only=4)
    r = cli("train", _config(tmp_path, _fused_id(parts)), "--db", db_path, "--seed", "0", "--run", "fused", "--json")
    assert r.code == 0, r.err
    s = json.loads(r.out)
    assert s["status"] == "done" and s["total_steps"] == 9
    losses = [row[0] for row in db.execute(
        "SELECT m.loss FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.name = 'fused' ORDER BY m.step")]
    with capsys.disabled():
        print(f"\nfused DINOv2+SigLIP+Llama, 9 steps of batch 4: loss {' '.join(f'{x:.3f}' for x in losses)}")
    assert len(losses) == 9 and all(x == x for x in losses)        # finite
    assert sum(losses[-3:]) < sum(losses[:3])                       # it learns
    assert "WARNING" not in r.err                                   # parts that never saw the data
    from vlmdyn_cli.models.checkpoint import load_checkpoint

    model, _, meta = load_checkpoint(s["checkpoints"]["2"])
    assert type(model.model.vision_tower).__name__ == "FusedVisionModel" and meta["step"] == 2
    # the frozen towers are untouched, the projector trained
    fresh, _ = build_model(_fused_id(parts), {"seed": 0})
    for (k, a), (_, b) in zip(model.model.vision_tower.state_dict().items(),
                              fresh.model.vision_tower.state_dict().items()):
        assert torch.equal(a, b), k
    assert not torch.equal(model.model.multi_modal_projector.linear_1.weight,
                           fresh.model.multi_modal_projector.linear_1.weight)


def _nothing_written(db, tmp_path) -> bool:
    return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0 and not (tmp_path / "runs").exists()


def test_bad_parts_exit_2_naming_the_part_and_write_nothing(cli, db, db_path, tmp_path, parts):
    import shutil

    make_dataset(db, tmp_path, n_conversations=8)
    bad = {}
    bad["missing"] = (f"composed:{tmp_path / 'no-such-dino'}+{parts['siglip']}+{parts['llama']}",
                      f"vision tower '{tmp_path / 'no-such-dino'}': cannot read a model config")
    wide = tmp_path / "siglip-wide"             # config says hidden 48, weights are 32 wide
    shutil.copytree(parts["siglip"], wide)
    c = json.loads((wide / "config.json").read_text())
    c["hidden_size"] = 48
    (wide / "config.json").write_text(json.dumps(c))
    bad["hidden"] = (f"composed:{parts['dino']}+{wide}+{parts['llama']}",
                     f"vision tower '{wide}': its weights do not load into its config")
    llm = tmp_path / "llama-wide"
    shutil.copytree(parts["llama"], llm)
    c = json.loads((llm / "config.json").read_text())
    c["hidden_size"] = 64
    (llm / "config.json").write_text(json.dumps(c))
    bad["llm"] = (f"composed:{parts['dino']}+{parts['siglip']}+{llm}", f"language model '{llm}': cannot load it")
    grid = _save_parts(tmp_path / "p8", siglip_patch=8)["siglip"]   # 2x2 patches against DINOv2's 4x4
    bad["grid"] = (f"composed:{parts['dino']}+{grid}+{parts['llama']}", "different patch grids")
    bad["not a tower"] = (f"composed:{parts['llama']}+{parts['siglip']}+{parts['llama']}",
                          "is a 'llama' model, not a vision tower")
    bad["four parts"] = (f"composed:{parts['dino']}+{parts['dino']}+{parts['siglip']}+{parts['llama']}",
                         "expected composed:<vision id>+<llm id>")
    for case, (model_id, needle) in bad.items():
        r = cli("train", _config(tmp_path, model_id), "--db", db_path, "--json")
        assert r.code == 2, (case, r.err)
        assert needle in r.err, (case, r.err)
        assert r.out == "" and _nothing_written(db, tmp_path), case
    r = cli("train", _config(tmp_path, bad["grid"][0]), "--db", db_path)
    assert f"'{parts['dino']}': patch 4 -> 4x4" in r.err and f"'{grid}': patch 8 -> 2x2" in r.err


def test_single_siglip_tower_stays_a_stock_llava(parts):
    model, proc = build_model(f"composed:{parts['siglip']}+{parts['llama']}", {"seed": 0})
    assert type(model.model.vision_tower).__name__ == "SiglipVisionModel"
    assert model.config.vision_config.model_type == "siglip_vision_model" and model.config.vision_feature_layer == -2
    dino_only, _ = build_model(f"composed:{parts['dino']}+{parts['llama']}", {"seed": 0})
    assert type(dino_only.model.vision_tower).__name__ == "FusedVisionModel"     # drops CLS + registers
    assert dino_only.config.image_seq_length == 16


# ---------------------------------------------------------------- known training data
def test_known_training_data_table():
    from vlmdyn_cli.training.known_data import findings

    mix_folders = {"coco", "gqa", "ocr_vqa", "textvqa", "vg", "text-only"}
    hits = findings("hf:llava-hf/llava-1.5-7b-hf", ["exp", "data.json"], mix_folders)
    assert [(p, k) for p, k, _ in hits] == [("llava-hf/llava-1.5-7b-hf", "LLaVA-665k")]
    assert findings("hf:/models/LLaVA-1.5-13B", ["llava_v1_5_mix665k", ""], set())      # by the dataset's name
    assert findings("composed:a+b+lmsys/vicuna-7b-v1.5", ["mix665k"], set())[0][0] == "lmsys/vicuna-7b-v1.5"
    assert not findings("hf:llava-hf/llava-1.5-7b-hf", ["synth", "llava.json"], {"scenes", "books"})
    paper = "composed:facebook/dinov2-with-registers-large+google/siglip-so400m-patch14-384+meta-llama/Llama-2-7b-hf"
    assert not findings(paper, ["llava_v1_5_mix665k"], mix_folders)


def test_train_warns_loudly_when_the_start_model_has_seen_the_data(cli, db, db_path, tmp_path):
    make_dataset(db, tmp_path, n_conversations=8, name="llava_v1_5_mix665k")
    cfg = tmp_path / "c.toml"
    local = tmp_path / "llava-hf" / "llava-1.5-7b-hf"     # a local copy's folder name is enough (none here)
    cfg.write_text(f'[model]\nid = "hf:{local}"\n')
    r = cli("train", cfg, "--db", db_path, "--json")
    assert f"WARNING: the starting model part '{local}' is known to have been trained on LLaVA-665k" in r.err
    assert "seen/unseen comparison is not measured" in r.err
    assert r.code == 2 and r.out == ""          # then the (absent) folder itself is refused
