"""Inference pieces without a model: string match, the summary table, vLLM requests, batching order."""

from __future__ import annotations

import importlib.util
import json

import pytest
from PIL import Image

from helpers_evalsets import make_experiment
from vlmdyn_cli.errors import BadInput, MissingDependency
from vlmdyn_cli.evalsets import build, match
from vlmdyn_cli.inference.backends import get_backend
from vlmdyn_cli.inference.backends.vllm import build_requests, sampling_args
from vlmdyn_cli.inference.config import GenConfig
from vlmdyn_cli.inference.items import GenItem, batches, load_items
from vlmdyn_cli.inference.store import save_config, write_batch
from vlmdyn_cli.inference.summary import pivot, string_match_rows
from vlmdyn_cli.store.runs import get_run


@pytest.mark.parametrize("pred,ref,levels", [
    ("red", "red", {"exact", "normalised", "contains"}),
    ("Red.", "red", {"normalised", "contains"}),
    ("The answer is two", "2", {"contains"}),
    ("a cat", "Cat", {"normalised", "contains"}),
    ("[0.12,0.40, 0.5, 0.9]", "[0.12, 0.40, 0.50, 0.90]", set()),
    ("[0.12, 0.40, 0.5, 0.9]", "[0.12,0.40,0.5,0.9]", {"normalised", "contains"}),
    ("1,000", "1000", {"normalised", "contains"}),
    ("reddish", "red", set()),
    ("", "red", set()),
    ("yes", "No", set()),
])
def test_match_levels(pred, ref, levels):
    got = {lvl for lvl, ok in match.score(pred, ref).items() if ok}
    assert got == levels


def test_normalize_rules():
    assert match.normalize("  The THREE  dogs, an apple! ") == "3 dogs apple"
    assert match.normalize("version 2.0.") == "version 2.0"
    assert match.normalize("well-known_title") == "well known title"


def test_summary_rows_are_exact_accuracies(db):
    exp = make_experiment(db)
    run = get_run(db, exp.run_name)
    k = run.eval_steps[0]
    build.build(db, run, build.plan(run, [k], 4, 4, ["image"], None, 0))
    members = [r[0] for r in db.execute(
        "SELECT m.qa_id FROM eval_set_members m JOIN eval_sets s ON s.id = m.set_id "
        "WHERE s.name = ? ORDER BY m.rank", [f"seen@{k}"])]
    items = load_items(db, members)
    by_id = {it.qa_id: it for it in items}
    # predictions: exact, normalised-only, contains-only, wrong
    preds = [by_id[members[0]].answer, by_id[members[1]].answer.upper() + "!",
             "it is " + by_id[members[2]].answer, "nothing"]
    cfg = GenConfig()
    save_config(db, cfg)
    write_batch(db, exp.run_id, k, [by_id[m] for m in members], preds, cfg.hash, "hf")
    rows = string_match_rows(db, exp.run_id)
    top = [r for r in rows if r["set"] == f"seen@{k}" and r["category"] == "all"]
    assert top == [{"step": k, "set": f"seen@{k}", "category": "all", "n": 4,
                    "exact": 0.25, "normalised": 0.5, "contains": 0.75}]
    cats = [r for r in rows if r["set"] == f"seen@{k}" and r["category"] != "all"]
    assert sum(r["n"] for r in cats) == 4
    cols, table = pivot(rows, "contains")
    assert cols == ["set", "n", str(k)]
    assert {"set": f"seen@{k}", "n": 4, str(k): "75.0"} in table


def test_write_batch_is_atomic_and_never_duplicates(db):
    exp = make_experiment(db)
    items = load_items(db, [r[0] for r in db.execute("SELECT id FROM qa_pairs ORDER BY id LIMIT 3")])
    cfg = GenConfig()
    save_config(db, cfg)
    write_batch(db, exp.run_id, 5, items, ["a", "b", "c"], cfg.hash, "hf")
    write_batch(db, exp.run_id, 5, items, ["x", "y", "z"], cfg.hash, "hf")      # a second writer
    assert [r[0] for r in db.execute("SELECT prediction FROM generations ORDER BY qa_id")] == ["a", "b", "c"]
    with pytest.raises(ValueError):
        write_batch(db, exp.run_id, 6, items, ["only one"], cfg.hash, "hf")
    assert db.execute("SELECT count(*) FROM generations WHERE step = 6").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM triples").fetchone()[0] == 3


def test_vllm_requests_match_the_training_prompt(tmp_path):
    Image.new("RGB", (40, 20), (255, 0, 0)).save(tmp_path / "a.png")
    items = [GenItem(1, "what colour is it?", "red", str(tmp_path / "a.png")),
             GenItem(2, "say hello", "hello", None)]
    reqs = build_requests(items)
    assert reqs[0]["prompt"] == "USER: <image>\nwhat colour is it? ASSISTANT:"
    assert reqs[0]["multi_modal_data"]["image"].size == (40, 20)
    assert reqs[0]["multi_modal_data"]["image"].mode == "RGB"
    assert reqs[1] == {"prompt": "USER: say hello ASSISTANT:"}
    assert sampling_args(GenConfig(max_new_tokens=7)) == {
        "max_tokens": 7, "stop": ["</s>"], "skip_special_tokens": True, "temperature": 0.0}
    s = sampling_args(GenConfig(temperature=0.7, top_p=0.9, seed=3))
    assert s["temperature"] == 0.7 and s["top_p"] == 0.9 and s["seed"] == 3


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_missing_says_what_to_install(cli, db, db_path):
    with pytest.raises(MissingDependency, match=r"pip install 'vlmdyn\[vllm\]'"):
        get_backend("vllm")
    make_experiment(db)
    r = cli("infer", "--db", db_path, "--run", "r1", "--backend", "vllm")
    assert r.code == 2 and "vlmdyn[vllm]" in r.err


def test_gen_config_hash_ignores_sampling_knobs_when_greedy():
    assert GenConfig(seed=1).hash == GenConfig(seed=2).hash
    assert GenConfig(temperature=0.5, seed=1).hash != GenConfig(temperature=0.5, seed=2).hash
    assert GenConfig(max_new_tokens=8).hash != GenConfig(max_new_tokens=9).hash
    assert json.loads(GenConfig().to_json())["template"] == "vlmdyn-llava-plain-v1"


def test_batches_group_by_image_and_length():
    items = [GenItem(i, "q " * (i % 5 + 1), "a", None if i % 2 else f"/img{i}.png") for i in range(20)]
    bs = batches(items, 4)
    assert sorted(it.qa_id for b in bs for it in b) == list(range(20))
    for b in bs:
        assert len({it.image_path is None for it in b}) == 1 or b is bs[len(bs) // 2]
    lens = [len(it.prompt.split()) for b in bs for it in b if it.image_path]
    assert lens == sorted(lens)


def test_unknown_backend_is_bad_input():
    with pytest.raises(BadInput, match="did you mean 'hf'"):
        get_backend("hff")


def test_hf_backend_restores_torch_threads_on_close():
    import torch

    from vlmdyn_cli.inference.backends.hf import HFBackend

    before = torch.get_num_threads()
    want = 2 if before == 1 else 1
    be = HFBackend(device="cpu", threads=want)
    assert torch.get_num_threads() == want
    be.close()
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("device, visible, pinned", [
    ("cuda:3", None, "3"), ("cuda:1", "4,5,6", "5"), ("cuda", None, None), ("auto", "2", None)])
def test_vllm_device_k_pins_that_gpu(device, visible, pinned):
    from vlmdyn_cli.inference.backends.vllm import visible_devices

    assert visible_devices(device, visible) == pinned


@pytest.mark.parametrize("device, says", [("cuda:3", "only 2 GPUs are visible"), ("cpu", "runs on CUDA GPUs"),
                                          ("cuda:x", "expected cuda:K")])
def test_vllm_bad_device_is_bad_input(device, says):
    from vlmdyn_cli.inference.backends.vllm import visible_devices

    with pytest.raises(BadInput, match=says):
        visible_devices(device, "0,1")
