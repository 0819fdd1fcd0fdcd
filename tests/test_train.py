"""One-epoch training: schedule, checkpoints, order manifest, resume, loss masks, bad input."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from helpers_data import make_dataset
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.training.config import defaults, load_config, parse_set
from vlmdyn_cli.training.schedule import checkpoint_steps, lr_multiplier, total_steps
from vlmdyn_cli.training.trainer import Trainer, train

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def small_cfg(small_training):
    """``cfg(**sections)``: the checked config of a fast tiny run (see conftest.small_training)."""
    return lambda **sections: load_config(None, small_training(**sections))


def _manifest(db, run: str) -> list[tuple]:
    return db.execute("SELECT o.conversation_id, o.step, o.position FROM run_order o JOIN runs r ON r.id = o.run_id "
                      "WHERE r.name = ? ORDER BY o.step, o.position", [run]).fetchall()


# ---------------------------------------------------------------- schedule


def test_schedule_arithmetic_and_paper_pattern():
    assert total_steps(655_360, 128) == 5120
    assert total_steps(1001, 8) == 126
    assert checkpoint_steps("paper", 5120, final=False) == [51, 357, 765, 1275, 2550, 3825]
    assert checkpoint_steps("paper", 512, include_step_0=True) == [0, 5, 36, 76, 128, 255, 382, 512]
    assert checkpoint_steps("paper", 3) == [1, 2, 3]          # collisions in a tiny run merge
    assert checkpoint_steps([2, 0.5, 1.0], 10, final=True) == [2, 5, 10]
    assert checkpoint_steps([0, 4], 10, final=False) == [0, 4]
    assert lr_multiplier(1, 100, 0.03) == pytest.approx(1 / 3)
    assert lr_multiplier(3, 100, 0.03) == pytest.approx(1.0)
    assert lr_multiplier(100, 100, 0.03) == pytest.approx(0.0, abs=1e-3)
    assert lr_multiplier(100, 100, 0.03, min_ratio=0.1) == pytest.approx(0.1, abs=1e-3)
    mid = lr_multiplier(52, 100, 0.03)
    assert 0.45 < mid < 0.55


@pytest.mark.parametrize("spec,msg", [
    ([5, 3], "not after step 5"),
    ([3, 3], "duplicates step 3"),
    ([3, 11], "outside the epoch"),
    ([0.5, 1.5], "fraction must be in"),
    ([0.3, 3], "duplicates step 3"),
])
def test_bad_checkpoint_steps(spec, msg):
    with pytest.raises(BadInput, match=msg):
        checkpoint_steps(spec, 10)


def test_examples_tiny_toml_is_the_builtin_default():
    from vlmdyn_cli.training.config import read_toml

    assert read_toml(ROOT / "examples" / "tiny.toml") == defaults()
    paper = load_config(ROOT / "examples" / "paper-prism-7b.toml")
    assert paper.parts.lr == {}                  # tiny's per-part LRs do not leak into real models
    assert paper.parts.freeze == ("vision",) and paper.train.lr == 2e-5


def test_unknown_config_key_has_did_you_mean(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[train]\nper_device_bach = 4\n")
    with pytest.raises(BadInput, match="did you mean 'per_device_batch'"):
        load_config(p)
    p.write_text("[trian]\nlr = 1e-4\n")
    with pytest.raises(BadInput, match="unknown section 'trian'.*did you mean 'train'"):
        load_config(p)


@pytest.mark.parametrize("toml,msg", [
    ('[train]\nlr = "fast"', r"\[train\] lr must be a number, got 'fast'"),
    ("[train]\ngrad_accum = 0", r"\[train\] grad_accum must be >= 1, got 0"),
    ("[train]\nwarmup = 1.5", r"\[train\] warmup must be below 1"),
    ('[train]\nreport_to = "tensorbord"', "did you mean 'tensorboard'"),
    ('[model]\nid = "tinyy"', "unknown model id 'tinyy'.*did you mean 'tiny'"),
    ('[parts]\nfreeze = ["visoin"]', "did you mean 'vision'"),
    ('[checkpoints]\nsteps = "papers"', 'must be "paper" or a list'),
    ('[model]\ngradient_checkpointing = 1', "must be true or false"),
    ("[model]\nid = 5", r"\[model\] id must be a string, got 5"),
    ("[train]\nlr = nan", r"\[train\] lr must be finite"),
    ("[parts]\nlr = 0.1", r"\[parts\] lr must be a table of numbers"),
    ('[parts]\nfreeze = "vision"', r"\[parts\] freeze must be a list of strings"),
])
def test_bad_config_values_name_the_file_and_key(tmp_path, toml, msg):
    p = tmp_path / "c.toml"
    p.write_text(toml + "\n")
    with pytest.raises(BadInput, match=f"^{re.escape(str(p))}: .*{msg}"):
        load_config(p)
    # the same value from the command line names the command line
    section, line = toml.split("\n")
    key, value = line.split(" = ")
    with pytest.raises(BadInput, match=f"^the command line: .*{msg}"):
        load_config(None, parse_set([f"{section[1:-1]}.{key}={value}"]),
                    overrides_from="the command line")


def test_every_key_refuses_a_value_of_the_wrong_type():
    """No key lets a wrong type through or fails with anything but a message naming it."""
    from dataclasses import fields

    from vlmdyn_cli.training.config import SECTIONS

    for section, cls in SECTIONS.items():
        for f in fields(cls):
            for bad in ({"x": [1]}, ["x", {}], True if f.type != "bool" else "yes"):
                if f.name == "lr" and section == "parts" and isinstance(bad, dict):
                    bad = {"vision": "fast"}
                with pytest.raises(BadInput, match=rf"^--set: \[{section}\] {f.name} must be"):
                    load_config(None, {section: {f.name: bad}}, overrides_from="--set")


# ---------------------------------------------------------------- the epoch


def test_one_epoch_loss_falls_checkpoints_and_manifest_match_the_collator(db, tmp_path, small_cfg):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    make_dataset(db, tmp_path, n_conversations=44, turns=2, n_text_only=4)
    cfg = small_cfg(checkpoints={"steps": [2, 0.5], "include_step_0": True})
    seen = []
    s = train(db, cfg, seed=0, run_name="r0", collate_hook=lambda b: seen.append(
        [(c, b["step"], p) for c, p in zip(b["conversation_ids"], b["positions"])]))
    assert s["status"] == "done" and s["total_steps"] == 12 and s["global_batch"] == 4
    assert sorted(int(k) for k in s["checkpoints"]) == [0, 2, 6, 12]
    for step, path in s["checkpoints"].items():
        meta = json.loads((Path(path) / "vlmdyn.json").read_text())
        assert meta["step"] == int(step) and meta["seed"] == 0 and meta["run"] == "r0"
    model = LlavaForConditionalGeneration.from_pretrained(s["checkpoints"]["12"])
    AutoProcessor.from_pretrained(s["checkpoints"]["12"])
    assert model.config.image_seq_length == 16

    manifest = _manifest(db, "r0")
    consumed = [row for batch in seen for row in batch]
    assert manifest == consumed                                   # what the collator saw, in order
    kept = {r[0] for r in db.execute("SELECT id FROM conversations WHERE kept=1")}
    assert sorted(c for c, _, _ in manifest) == sorted(kept)      # every conversation exactly once
    assert {(st, p) for _, st, p in manifest} == {(st, p) for st in range(1, 13) for p in range(4)}
    assert [c for c, _, _ in manifest] != sorted(kept)            # shuffled

    losses = [r[0] for r in db.execute("SELECT loss FROM metrics m JOIN runs r ON r.id=m.run_id "
                                       "WHERE r.name='r0' ORDER BY step")]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.6 * losses[0]
    row = db.execute("SELECT lr, samples_per_s, tokens_per_s FROM metrics WHERE step=1").fetchone()
    assert row[0] > 0 and row[1] > 0 and row[2] > row[1]


def test_seed_sets_order_and_init(db, tmp_path, small_cfg):
    make_dataset(db, tmp_path, n_conversations=24)
    cfg = small_cfg(checkpoints={"steps": [1], "include_step_0": True, "final": False})
    a = train(db, cfg, seed=1, run_name="a")
    b = train(db, cfg, seed=1, run_name="b")
    c = train(db, cfg, seed=2, run_name="c")
    assert _manifest(db, "a") == _manifest(db, "b") != _manifest(db, "c")
    from safetensors.torch import load_file

    w = {k: load_file(Path(r["checkpoints"]["0"]) / "model.safetensors") for k, r in (("a", a), ("b", b), ("c", c))}
    assert all(torch.equal(w["a"][k], w["b"][k]) for k in w["a"])
    assert not all(torch.equal(w["a"][k], w["c"][k]) for k in w["a"])


def test_interrupt_then_resume_gives_the_uninterrupted_manifest_and_weights(db, tmp_path, small_cfg):
    from safetensors.torch import load_file

    make_dataset(db, tmp_path, n_conversations=40)
    cfg = small_cfg(checkpoints={"steps": [3, 6]})
    full = train(db, cfg, seed=5, run_name="full")
    with pytest.raises(KeyboardInterrupt):
        train(db, cfg, seed=5, run_name="cut", stop_after_step=8)   # killed between checkpoints 6 and 10
    assert db.execute("SELECT status FROM runs WHERE name='cut'").fetchone()[0] == "interrupted"
    with pytest.raises(BadInput, match="--resume"):
        train(db, cfg, seed=5, run_name="cut")
    with pytest.raises(BadInput, match="config differs"):
        train(db, small_cfg(checkpoints={"steps": [3, 6]}, train={"lr": 1.0}), seed=5, run_name="cut", resume=True)
    res = train(db, cfg, seed=5, run_name="cut", resume=True)
    assert res["status"] == "done"
    assert _manifest(db, "cut") == _manifest(db, "full")
    assert len(_manifest(db, "cut")) == 40
    n_metrics = db.execute("SELECT COUNT(*) FROM metrics m JOIN runs r ON r.id=m.run_id WHERE r.name='cut'").fetchone()
    assert n_metrics[0] == 10
    a = load_file(Path(full["checkpoints"]["10"]) / "model.safetensors")
    b = load_file(Path(res["checkpoints"]["10"]) / "model.safetensors")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    assert not (Path(res["checkpoints"]["10"]).parents[1] / "resume").exists()


def test_init_from_another_run_starts_from_its_weights(db, tmp_path, small_cfg):
    from safetensors.torch import load_file

    make_dataset(db, tmp_path, n_conversations=16)
    cfg = small_cfg(checkpoints={"steps": [2]})
    first = train(db, cfg, seed=0, run_name="stage1")
    cfg2 = small_cfg(checkpoints={"steps": [1], "include_step_0": True}, train={"lr": 1e-4})
    second = train(db, cfg2, seed=0, run_name="stage2", init_from="stage1:2")
    a = load_file(Path(first["checkpoints"]["2"]) / "model.safetensors")
    b = load_file(Path(second["checkpoints"]["0"]) / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert db.execute("SELECT init_from FROM runs WHERE name='stage2'").fetchone()[0] == "stage1:2"
    with pytest.raises(BadInput, match="no checkpoint at step 3"):
        train(db, cfg2, seed=0, run_name="stage3", init_from="stage1:3")
    with pytest.raises(BadInput, match="unknown run 'stag1'.*did you mean 'stage1'"):
        train(db, cfg2, seed=0, run_name="stage3", init_from="stag1")


def test_fixed_steps_over_a_sampled_subset_from_a_checkpoint(db, tmp_path, small_cfg):
    """Vision-Flan's stage 2 at toy size: a fixed number of steps over a seeded subset, from a stage-1
    checkpoint; the manifest keeps the step each conversation was first trained at."""
    from vlmdyn_cli.training.order import epoch_order

    make_dataset(db, tmp_path, n_conversations=20)
    train(db, small_cfg(checkpoints={"steps": [1]}), seed=0, run_name="stage1")
    cfg = small_cfg(data={"sample": 6, "sample_seed": 3}, train={"steps": 5, "lr": 1e-5},
                    checkpoints={"steps": [2]})
    seen = []
    s = train(db, cfg, seed=7, run_name="stage2", init_from="stage1",
              collate_hook=lambda b: seen.extend(b["conversation_ids"]))
    assert s["status"] == "done" and s["total_steps"] == 5
    assert sorted(int(k) for k in s["checkpoints"]) == [2, 5]
    assert len(seen) == 5 * 4                                     # 20 items: 3 full passes over 6, then 2 more
    subset = set(seen)
    assert len(subset) == 6
    assert seen[:6] != seen[6:12] and sorted(seen[:6]) == sorted(seen[6:12])   # each pass a new order
    manifest = _manifest(db, "stage2")
    assert sorted(c for c, _, _ in manifest) == sorted(subset)    # one row per conversation ...
    first = {}
    for i, c in enumerate(seen):
        first.setdefault(c, i // 4 + 1)
    assert {c: st for c, st, _ in manifest} == first              # ... at the step it was first trained
    from vlmdyn_cli.evalsets.build import manifest_steps
    from vlmdyn_cli.store.runs import get_run

    assert max(first.values()) == 2 and manifest_steps(db, get_run(db, "stage2"))[2] == 5   # sets up to step 5
    # the same subset for every training seed (sample_seed), another order
    seen2 = []
    train(db, cfg, seed=8, run_name="stage2b", init_from="stage1",
          collate_hook=lambda b: seen2.extend(b["conversation_ids"]))
    assert set(seen2) == subset and seen2 != seen
    assert list(epoch_order([1, 2, 3, 4], 0, 4)) == list(epoch_order([1, 2, 3, 4], 0))
    with pytest.raises(BadInput, match=r"\[data\] sample = 99.*only 20 kept conversations"):
        train(db, small_cfg(data={"sample": 99}), seed=0, run_name="too-many")
    assert db.execute("SELECT COUNT(*) FROM runs WHERE name='too-many'").fetchone()[0] == 0


def test_a_fixed_number_of_steps_shorter_than_the_epoch_trains_only_what_it_reaches(db, tmp_path, small_cfg):
    make_dataset(db, tmp_path, n_conversations=20)
    s = train(db, small_cfg(train={"steps": 2}), seed=0, run_name="short")
    assert s["total_steps"] == 2
    assert len(_manifest(db, "short")) == 8 and {st for _, st, _ in _manifest(db, "short")} == {1, 2}


def test_tensorboard_tracker_logs_what_the_metrics_table_holds(db, tmp_path, small_cfg):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    make_dataset(db, tmp_path, n_conversations=16)
    s = train(db, small_cfg(train={"report_to": "tensorboard"}), seed=0, run_name="tb")
    events = EventAccumulator(str(tmp_path / "runs" / "tb" / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"loss", "lr", "samples_per_s", "tokens_per_s"}
    logged = [(e.step, e.value) for e in events.Scalars("loss")]
    stored = db.execute("SELECT step, loss FROM metrics WHERE run_id = ? ORDER BY step", [s["run_id"]]).fetchall()
    assert len(logged) == len(stored) == 4
    assert all(a == b and x == pytest.approx(y) for (a, x), (b, y) in zip(logged, stored))


# ---------------------------------------------------------------- loss masks


def test_loss_masks_token_by_token():
    from vlmdyn_cli.models.registry import build_model
    from vlmdyn_cli.training.dataset import IGNORE, Conversation, conversation_text, encode_all

    conv = Conversation(1, [("What colour is the square?\nAnswer the question using a single word or phrase.", "red"),
                            ("What shape is shown?", "square")], "x.png")
    _, proc = build_model("tiny", {}, texts=[conversation_text(conv)[0]])
    tok = proc.tokenizer

    def labelled(loss):
        enc = encode_all([conv], tok, 4, loss, 512)
        ids, labels = enc.ids[0].tolist(), enc.labels[0].tolist()
        assert ids[3:7] == [tok.convert_tokens_to_ids("<image>")] * 4     # "USER", ":", " ", then 4 image tokens
        return [tok.convert_ids_to_tokens(i) if lab != IGNORE else None for i, lab in zip(ids, labels)], ids

    ans, ids = labelled("answer")
    toks = tok.convert_ids_to_tokens(ids)
    assert toks[:8] == ["USER", ":", " "] + ["<image>"] * 4 + ["\n"]
    assert [t for t in ans if t] == [" red", "</s>", " square", "</s>"]
    l2t, _ = labelled("instruction+answer")
    expected = ["What", " colour", " is", " the", " square", "?", " red", "</s>",
                " What", " shape", " is", " shown", "?", " square", "</s>"]
    assert [t for t in l2t if t] == expected
    # everything else is template: role tags, the image, the fixed "Answer the question..." suffix
    template = [t for t, lab in zip(toks, l2t) if lab is None]
    assert template.count(" ASSISTANT") == 2 and template.count("USER") == 2
    assert " phrase" in template and "Answer" in template and "<image>" in template


# ---------------------------------------------------------------- CLI and bad input


def test_cli_train_and_runs_list(cli, db, db_path, tmp_path):
    make_dataset(db, tmp_path, n_conversations=12)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[model]\nimage_size = 16\npatch_size = 4\n[train]\nper_device_batch = 4\n')
    r = cli("train", cfg, "--db", db_path, "--seed", "3", "--out-dir", tmp_path / "runs",
            "--checkpoints", "1,0.7", "--json")
    assert r.code == 0, r.err
    s = json.loads(r.out)
    assert s["run"] == "toy-tiny-s3" and sorted(map(int, s["checkpoints"])) == [1, 2, 3]
    r = cli("runs", "list", "--db", db_path, "--json")
    rows = json.loads(r.out)
    assert rows[0]["name"] == "toy-tiny-s3" and rows[0]["status"] == "done"
    assert rows[0]["steps_done"] == 3 and rows[0]["checkpoint_steps"] == [1, 2, 3]
    assert rows[0]["samples_per_s"] > 0
    r = cli("runs", "list", "--db", db_path)
    assert r.code == 0 and "done" in r.out and "1,2,3" in r.out
    before = _table_rows(db)
    r = cli("train", cfg, "--db", db_path, "--seed", "3", "--out-dir", tmp_path / "runs",
            "--checkpoints", "1,0.7", "--json")        # a finished run rerun: nothing to do, exit 0
    assert r.code == 0 and json.loads(r.out)["status"] == "done", r.err
    assert _table_rows(db) == before
    r = cli("train", cfg, "--db", db_path, "--seed", "3", "--out-dir", tmp_path / "runs", "--checkpoints", "1,0.7")
    assert r.code == 0 and "already done" in r.err and _table_rows(db) == before
    r = cli("train", cfg, "--db", db_path, "--seed", "3", "--out-dir", tmp_path / "runs",
            "--checkpoints", "1,2", "--json")          # the same name with another schedule: refused
    assert r.code == 2 and "another config" in r.err and _table_rows(db) == before


def _table_rows(db) -> dict:
    return {t: db.execute(f"SELECT * FROM [{t}] ORDER BY 1").fetchall()
            for t in ("runs", "run_order", "checkpoints", "metrics")}


def test_a_run_whose_process_was_killed_is_listed_as_interrupted_with_its_pid(cli, db, db_path, tmp_path):
    import socket
    import subprocess
    import sys

    make_dataset(db, tmp_path, n_conversations=12)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[model]\nimage_size = 16\npatch_size = 4\n[train]\nper_device_batch = 4\n')
    assert cli("train", cfg, "--db", db_path, "--run", "k", "--out-dir", tmp_path / "runs", "--quiet").code == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()                                   # a pid that no longer exists
    db.execute("UPDATE runs SET status = 'running', pid = ?, host = ? WHERE name = 'k'",
               [dead.pid, socket.gethostname()])
    rows = json.loads(cli("runs", "list", "--db", db_path, "--json").out)
    assert rows[0]["status"] == "interrupted" and rows[0]["pid"] == dead.pid
    assert db.execute("SELECT status FROM runs").fetchone()[0] == "running"     # listing wrote nothing
    db.execute("UPDATE runs SET pid = ? WHERE name = 'k'", [os.getpid()])      # a live trainer
    rows = json.loads(cli("runs", "list", "--db", db_path, "--json").out)
    assert rows[0]["status"] == "running"
    r = cli("train", cfg, "--db", db_path, "--run", "k", "--out-dir", tmp_path / "runs", "--resume")
    assert r.code == 2 and f"pid {os.getpid()}" in r.err


@pytest.mark.parametrize("args,msg", [
    (["--checkpoints", "3,2"], "not after step 3"),
    (["--checkpoints", "2,2"], "duplicates step 2"),
    (["--checkpoints", "1,99"], "outside the epoch"),
    (["--set", "model.id='tinyy'"], "unknown model id 'tinyy'.*did you mean 'tiny'"),
    (["--set", "train.warmpu=0.1"], "unknown key 'train.warmpu'.*did you mean 'warmup'"),
    (["--set", "model.text_hidden=16384", "--set", "model.text_layers=64", "--set", "model.text_heads=64"],
     "not enough memory"),
    (["--loss", "everything"], "did you mean 'instruction\\+answer'|not one of"),
    (["--report-to", "wandb"], "wandb"),
    (["--dataset", "toi"], "no dataset named 'toi'.*did you mean 'toy'"),
    (["--set", "data.sample=99"], r"\[data\] sample = 99, but dataset 'toy' has only 12"),
    (["--set", "train.steps=-1"], r"train.*steps.*>= 0|steps must be"),
])
def test_bad_input_exits_2_before_training(cli, db, db_path, tmp_path, args, msg):
    make_dataset(db, tmp_path, n_conversations=12)
    r = cli("train", "--db", db_path, "--out-dir", tmp_path / "runs", "--set", "train.per_device_batch=4", *args)
    assert r.code == 2, (r.code, r.err)
    assert re.search(msg, r.err), r.err
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    assert not (tmp_path / "runs").exists()


def test_empty_dataset_and_missing_db(cli, db, db_path, tmp_path):
    from vlmdyn_cli.store.db import now

    with db.conn:
        db.conn.execute("INSERT INTO datasets(name, source_path, source_sha256, image_root, imported_at) "
                        "VALUES ('empty', 'x', '0', ?, ?)", (str(tmp_path), now()))
    r = cli("train", "--db", db_path, "--out-dir", tmp_path / "runs")
    assert r.code == 2 and "nothing to train on" in r.err
    r = cli("train", "--db", tmp_path / "nope.db")
    assert r.code == 2 and "does not exist" in r.err


# ---------------------------------------------------------------- real-model paths at tiny size


def test_composed_model_trains_with_frozen_vision_and_per_part_lr(db, tmp_path):
    """composed:<siglip dir>+<llama dir> through the loop: vision frozen, projector and LLM move."""
    from safetensors.torch import load_file

    from test_models import _save_parts

    vdir, ldir, vision, llm = _save_parts(tmp_path)
    make_dataset(db, tmp_path, n_conversations=12)
    cfg = load_config(None, {"model": {"id": f"composed:{vdir}+{ldir}", "vision_feature_layer": -1},
                             "train": {"per_device_batch": 4, "out_dir": str(tmp_path / "runs")},
                             "checkpoints": {"steps": [1], "include_step_0": True},
                             "parts": {"freeze": ["vision"], "lr": {"projector": 1e-2}}})
    assert cfg.parts.lr == {"projector": 1e-2}
    s = train(db, cfg, seed=0, run_name="composed")
    assert s["status"] == "done" and s["total_steps"] == 3
    w0 = load_file(Path(s["checkpoints"]["0"]) / "model.safetensors")
    w3 = load_file(Path(s["checkpoints"]["3"]) / "model.safetensors")
    vision_keys = [k for k in w0 if k.startswith("vision_tower.")]
    proj_keys = [k for k in w0 if k.startswith("multi_modal_projector.")]
    assert vision_keys and proj_keys
    assert all(torch.equal(w0[k], w3[k]) for k in vision_keys)
    assert not all(torch.equal(w0[k], w3[k]) for k in proj_keys)


def _count_calls(module, into: list, what=lambda out: None):
    """Record one entry per completed forward call of ``module``."""
    module.register_forward_hook(lambda mod, args, out: into.append(what(out)))


def _is_checkpointing(model) -> bool:
    # transformers 5 renamed the flag; 4.x has only the old name
    if hasattr(type(model), "is_activation_checkpointing"):
        return model.is_activation_checkpointing
    return model.is_gradient_checkpointing


@pytest.mark.parametrize("on", [False, True], ids=["off", "on"])
def test_gradient_checkpointing_recomputes_the_layers_in_backward(db, tmp_path, small_cfg, on):
    """With checkpointing every decoder layer runs once in forward and once more in backward.

    The hook is a pre-hook on the layer's first module: transformers checkpoints the layer's
    ``forward`` (hooks on the layer itself stay outside the re-computation), and torch stops a
    re-computation once it has the tensors backward needs (later modules may not finish)."""
    make_dataset(db, tmp_path, n_conversations=8)          # 2 steps of 1 micro-batch
    tr = Trainer(db, small_cfg(model={"gradient_checkpointing": on}), seed=0, run_name="gc")
    tr.prepare()
    assert bool(_is_checkpointing(tr.llava)) is on
    calls: list = []
    tr.llava.model.language_model.layers[0].input_layernorm.register_forward_pre_hook(lambda *a: calls.append(1))
    assert tr.run()["status"] == "done"
    assert len(calls) == (4 if on else 2)
    losses = [r[0] for r in db.execute("SELECT loss FROM metrics ORDER BY step")]
    assert len(losses) == 2 and all(0 < x < 100 for x in losses)


@pytest.mark.parametrize("precision,dtype", [("no", torch.float32), ("bf16", torch.bfloat16)])
def test_mixed_precision_runs_the_matmuls_in_bf16_on_fp32_weights(db, tmp_path, small_cfg, precision, dtype):
    make_dataset(db, tmp_path, n_conversations=8)
    tr = Trainer(db, small_cfg(train={"mixed_precision": precision}), seed=0, run_name="mp")
    tr.prepare()
    out_dtypes: list = []
    _count_calls(tr.llava.model.language_model.layers[0].mlp.down_proj, out_dtypes, lambda out: out.dtype)
    _count_calls(tr.llava.model.vision_tower.encoder.layers[0].mlp.fc1, out_dtypes,
                 lambda out: out.dtype)
    s = tr.run()
    assert s["status"] == "done" and len(out_dtypes) == 4
    assert set(out_dtypes) == {dtype}                       # activations of the LM and the vision tower
    assert {p.dtype for p in tr.llava.parameters()} == {torch.float32}     # master weights stay fp32
    from safetensors.torch import load_file

    saved = load_file(Path(s["checkpoints"]["2"]) / "model.safetensors")
    assert {t.dtype for t in saved.values()} == {torch.float32}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_training_on_gpu(db, tmp_path, small_cfg):
    make_dataset(db, tmp_path, n_conversations=32)
    cfg = small_cfg(model={"gradient_checkpointing": True}, train={"mixed_precision": "bf16"})
    s = train(db, cfg, seed=0, run_name="gpu")
    assert s["status"] == "done" and s["total_steps"] == 8


def test_two_trainers_of_one_new_run_the_later_is_refused_with_a_message(db, db_path, tmp_path, small_cfg):
    """Two `vlmdyn train --run dup` started together both plan a new run; the one that opens it second
    gets a clear refusal (exit 2), not sqlite's "UNIQUE constraint failed: runs.name" (exit 1 on main)."""
    from vlmdyn_cli.store import open_db

    make_dataset(db, tmp_path, n_conversations=8)
    cfg = small_cfg()
    late = Trainer(db, cfg, seed=0, run_name="dup")
    late.set_up()
    late.plan = late.plan_run()               # planned: no run 'dup' yet
    other = open_db(db_path)
    assert train(other, cfg, seed=0, run_name="dup")["status"] == "done"   # the other trainer, start to end
    other.close()
    late.build_model()
    late.build_optimizer()
    with pytest.raises(BadInput, match=r"run 'dup' was created by another process \(pid \d+"):
        late.open_run()
    assert db.execute("SELECT name, status FROM runs").fetchall() == [("dup", "done")]


def test_init_from_with_another_model_config_is_refused_before_anything_is_written(db, tmp_path, small_cfg):
    """The checkpoint's architecture is what trains: on main a [model] of other sizes was accepted and stored
    as the new run's config while the old sizes trained (the record lied)."""
    make_dataset(db, tmp_path, n_conversations=8)
    train(db, small_cfg(checkpoints={"steps": [1]}), seed=0, run_name="stage1")
    with pytest.raises(BadInput, match=r"--init-from stage1: .*text_hidden = 32 \(that run: 64\)"):
        train(db, small_cfg(model={"text_hidden": 32, "gradient_checkpointing": True}), seed=0,
              run_name="stage2", init_from="stage1")
    assert [r[0] for r in db.execute("SELECT name FROM runs")] == ["stage1"]
    ok = train(db, small_cfg(model={"gradient_checkpointing": True}, train={"lr": 1e-4}), seed=0,
               run_name="stage2", init_from="stage1")       # what does not change the weights may differ
    assert ok["status"] == "done"
