"""Model registry and checkpoint contract: tiny, hf:<dir>, composed:<vision>+<llm>."""

from __future__ import annotations

import json

import pytest
import torch

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.models import chat
from vlmdyn_cli.models.checkpoint import load_checkpoint, read_meta, save_checkpoint
from vlmdyn_cli.models.registry import build_model, resolve

torch.set_num_threads(1)

TEXTS = ["".join(s for s, _ in chat.render_conversation(
    [("What colour is the cube?", "red"), ("Where is it? Answer with a single word or phrase.", "left [0.12, 0.5]")],
    True))] * 2


def _image():
    from PIL import Image

    return Image.new("RGB", (40, 30), (200, 20, 20))


def test_unknown_model_id_lists_valid_ids():
    with pytest.raises(BadInput) as e:
        resolve("tinny")
    msg = str(e.value)
    assert "did you mean 'tiny'" in msg and "hf:" in msg and "composed:" in msg
    with pytest.raises(BadInput, match="takes no argument"):
        resolve("tiny:big")


def test_tiny_tokenizer_round_trips_and_is_stable_under_concatenation():
    _, proc = build_model("tiny", {"seed": 0}, texts=TEXTS)
    tok = proc.tokenizer
    text = TEXTS[0]
    ids = tok(text, add_special_tokens=True)["input_ids"]
    assert tok.decode(ids) == text
    prompt = chat.prompt_for("What colour is the cube?", True)
    p_ids = tok(prompt)["input_ids"]
    assert ids[:len(p_ids)] == p_ids          # the inference prompt is a prefix of the training ids
    assert tok.unk_token_id not in ids
    assert tok.convert_ids_to_tokens(tok(" red</s>")["input_ids"]) == [" red", "</s>"]


def test_tiny_checkpoint_round_trip_loads_with_plain_transformers(tmp_path):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model, proc = build_model("tiny", {"seed": 3, "image_size": 16, "patch_size": 4}, texts=TEXTS)
    path = save_checkpoint(model, proc, tmp_path / "ck", {"step": 7, "seed": 3, "run": "r"})
    assert not (tmp_path / "ck.partial").exists()
    assert (path / "model.safetensors").exists()
    m2 = LlavaForConditionalGeneration.from_pretrained(path)
    p2 = AutoProcessor.from_pretrained(path)
    for (k, a), (_, b) in zip(model.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k
    enc = p2(text=chat.prompt_for("What colour is the cube?", True), images=[_image()], return_tensors="pt")
    n_img = int((enc["input_ids"] == m2.config.image_token_id).sum())
    assert n_img == m2.config.image_seq_length == 16
    assert tuple(enc["pixel_values"].shape) == (1, 3, 16, 16)
    out = m2.generate(**enc, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]
    _, _, meta = load_checkpoint(path)
    assert meta == {"step": 7, "seed": 3, "run": "r"}


def test_load_checkpoint_bad_folders(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="not a model checkpoint"):
        load_checkpoint(tmp_path / "empty")
    model, proc = build_model("tiny", {}, texts=TEXTS)
    path = save_checkpoint(model, proc, tmp_path / "ck", {"step": 1})
    (path / "vlmdyn.json").write_text("{broken")
    with pytest.raises(BadInput, match="corrupt"):
        read_meta(path)
    (path / "vlmdyn.json").write_text(json.dumps({"step": 1}))
    (path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(BadInput, match="cannot be loaded"):
        load_checkpoint(path)


def test_hf_folder_loads_through_registry(tmp_path):
    model, proc = build_model("tiny", {"seed": 1}, texts=TEXTS)
    model.save_pretrained(tmp_path / "llava")
    proc.save_pretrained(tmp_path / "llava")
    m2, p2 = build_model(f"hf:{tmp_path / 'llava'}", {})
    assert type(m2).__name__ == "LlavaForConditionalGeneration"
    assert torch.equal(m2.lm_head.weight, model.lm_head.weight)
    assert p2.tokenizer.get_vocab() == proc.tokenizer.get_vocab()
    with pytest.raises(BadInput, match="cannot read a model config"):
        build_model(f"hf:{tmp_path / 'missing'}", {})


def _save_parts(tmp_path, clip: bool = False):
    """A tiny vision encoder and a tiny Llama LM saved as if downloaded from the hub."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM,
                              PreTrainedTokenizerFast, SiglipVisionConfig, SiglipVisionModel)

    torch.manual_seed(0)
    kw = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
              image_size=16, patch_size=4)
    if clip:
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil as IP

        vision = CLIPVisionModel(CLIPVisionConfig(**kw))
        ip = IP(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    else:
        from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil as IP

        vision = SiglipVisionModel(SiglipVisionConfig(**kw))
        ip = IP(size={"height": 16, "width": 16})
    vdir = tmp_path / ("clip" if clip else "siglip")
    vision.save_pretrained(vdir)
    ip.save_pretrained(vdir)
    words = ["<unk>", "</s>", "USER", "ASSISTANT", ":", " ", "\n", "red", "What", "?"]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", eos_token="</s>")
    llm = LlamaForCausalLM(LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2))
    ldir = tmp_path / "llama"
    llm.save_pretrained(ldir)
    tok.save_pretrained(ldir)
    return vdir, ldir, vision, llm


@pytest.mark.parametrize("clip", [False, True], ids=["siglip", "clip"])
def test_composed_model_copies_parts_and_adds_chat_tokens(tmp_path, clip):
    vdir, ldir, vision, llm = _save_parts(tmp_path, clip)
    model, proc = build_model(f"composed:{vdir}+{ldir}", {"seed": 0})
    tok = proc.tokenizer
    assert tok.convert_tokens_to_ids("<image>") == model.config.image_token_id
    assert tok.pad_token is not None
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    vs = model.model.vision_tower.state_dict()
    for k, v in vision.state_dict().items():
        assert torch.equal(vs[k], v), k
    old = llm.model.embed_tokens.weight
    assert torch.equal(model.get_input_embeddings().weight[: old.shape[0]], old)
    assert torch.equal(model.model.language_model.layers[1].mlp.up_proj.weight, llm.model.layers[1].mlp.up_proj.weight)
    # 16 px / 4 px patches = 16 tokens (CLIP: +CLS, dropped by the "default" strategy)
    assert model.config.image_seq_length == 16
    enc = proc(text=chat.prompt_for("What red?", True), images=[_image()], return_tensors="pt")
    assert int((enc["input_ids"] == model.config.image_token_id).sum()) == 16
    out = model(**enc)
    assert out.logits.shape[:2] == enc["input_ids"].shape
    save_checkpoint(model, proc, tmp_path / "ck", {"step": 0})
    m2, p2, _ = load_checkpoint(tmp_path / "ck")
    assert torch.allclose(m2(**p2(text=chat.prompt_for("What red?", True), images=[_image()],
                                   return_tensors="pt")).logits, out.logits, atol=1e-5)


def test_composed_bad_specs(tmp_path):
    with pytest.raises(BadInput, match="composed:<vision id>\\+<llm id>"):
        build_model("composed:onlyone", {})
    vdir, ldir, _, _ = _save_parts(tmp_path)
    with pytest.raises(BadInput, match="not supported|supported:"):
        build_model(f"composed:{ldir}+{ldir}", {})


def test_parts_freeze_and_per_part_lr():
    from vlmdyn_cli.models.parts import param_groups

    model, _ = build_model("tiny", {}, texts=TEXTS)
    groups, counts = param_groups(model, 1e-3, ["vision"], {"projector": 2e-4}, 0.0)
    assert counts["vision"] == 0 and counts["projector"] > 0 and counts["llm"] > 0
    assert not any(p.requires_grad for p in model.model.vision_tower.parameters())
    lrs = {g["part"]: g["lr"] for g in groups}
    assert lrs == {"projector": 2e-4, "embeddings": 1e-3, "llm": 1e-3}   # embeddings follow the LLM's rate
    emb = model.model.language_model.embed_tokens.weight
    assert [g["part"] for g in groups if any(p is emb for p in g["params"])] == ["embeddings"]
    groups, counts = param_groups(model, 1e-3, [], {"llm": 5e-4, "embeddings": 3e-2}, 0.0)
    assert {g["part"]: g["lr"] for g in groups}["embeddings"] == 3e-2 and counts["embeddings"] == emb.numel()
    groups, counts = param_groups(model, 1e-3, ["llm"], {}, 0.0)   # freezing the LLM freezes its embeddings
    assert counts["embeddings"] == counts["llm"] == 0 and not emb.requires_grad
    with pytest.raises(BadInput, match="did you mean 'vision'"):
        param_groups(model, 1e-3, ["visoin"], {}, 0.0)
