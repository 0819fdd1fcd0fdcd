"""`vlmdyn select`: the decision rule on constructed numbers, plan checks, the overlap and changed-plan
refusals, and the loop end to end on real tiny runs (kill -9 during a candidate's training, then rerun)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.select.decision import decide
from vlmdyn_cli.select.plan import parse_plan

# a fast tiny model (tests/conftest.py SMALL_TRAINING) written as the plan's [training] table
TRAINING = ('[training]\nmodel = { image_size = 16, patch_size = 4, text_hidden = 64, vision_hidden = 32 }\n'
            'train = { per_device_batch = 4, lr = 0.003, warmup = 0.1 }\n')


def plan_text(name="t", base='["base"]', rounds=(("spatial", '["position"]'),), bench='["bench"]',
              accept="tolerance = 2.0", seeds="[0]", extra="", training=TRAINING, judge="lexical") -> str:
    # lexical (the offline fitted judge) decides every item; rules leaves a tiny model's odd answers unscored
    body = f'name = "{name}"\nbase = {base}\nseeds = {seeds}\njudge = "{judge}"\n{extra}\n'
    for cat, cands in rounds:
        body += f'[[round]]\ncategory = "{cat}"\ncandidates = {cands}\n'
    return body + f"[benchmark]\ndatasets = {bench}\n[accept]\n{accept}\n{training}"


def write_plan(tmp_path: Path, **kw) -> Path:
    p = tmp_path / f"plan-{len(list(tmp_path.glob('plan-*.toml')))}.toml"
    p.write_text(plan_text(**kw))
    return p


def import_families(db, tmp_path: Path, sizes: dict[str, int]) -> None:
    from vlmdyn_cli.data.importer import import_dataset
    from vlmdyn_cli.data.synth_select import generate_family

    for name, n in sizes.items():
        folder = tmp_path / "data" / name
        generate_family(folder, name, n, image_size=32)
        import_dataset(db, folder / "llava.json", folder / "images", name=name)


# ---------------------------------------------------------------- the decision rule


def test_decide_keeps_comparable_candidates_within_the_tolerance():
    assert decide([50.0], [49.0], tolerance=1.0).keep            # exactly at the limit: comparable
    assert not decide([50.0], [48.9], tolerance=1.0).keep        # just below it
    assert decide([50.0], [60.0], tolerance=0.0).keep            # better is kept
    assert not decide([50.0], [49.9], tolerance=0.0).keep        # zero tolerance: not worse at all
    d = decide([40.0, 44.0], [41.0, 41.0], tolerance=2.0)        # paired by seed: +1 and -3 -> mean -1
    assert d.keep and d.diff == pytest.approx(-1.0)


def test_decide_seed_margin_demands_the_difference_clear_seed_noise():
    base, cand = [50.0, 50.0, 50.0, 50.0], [49.0, 53.0, 47.0, 51.0]   # diffs -1 +3 -3 +1: mean 0, sd 2.58
    assert decide(base, cand, tolerance=1.0).keep
    d = decide(base, cand, tolerance=1.0, seed_margin=1.0)           # 0 - 1 x 1.29 = -1.29 < -1
    assert not d.keep and d.se == pytest.approx(2.582 / 2, abs=1e-3) and "se over 4 seeds" in d.reason
    assert decide(base, cand, tolerance=1.5, seed_margin=1.0).keep   # -1.29 >= -1.5
    one = decide([50.0], [49.5], tolerance=1.0, seed_margin=2.0)
    assert one.keep and "no seed margin" in one.reason              # one seed: no noise estimate
    with pytest.raises(BadInput):
        decide([50.0, 51.0], [50.0], tolerance=1.0)


# ---------------------------------------------------------------- plan checks


@pytest.mark.parametrize("text, message", [
    (plan_text(accept='tolerance = "2"'), "'accept.tolerance' must be a number"),
    (plan_text(accept="tolerance = true"), "'accept.tolerance' must be a number"),
    (plan_text(accept="tolerance = -1"), ">= 0"),
    (plan_text(accept="tolerence = 1.0"), "did you mean 'tolerance'"),
    (plan_text(extra="seed = [1]"), "did you mean 'seeds'"),
    (plan_text(rounds=(("spatial", "[]"),)), "has no candidates: an empty category"),
    (plan_text(rounds=()), "no [[round]]"),
    (plan_text(bench='["position"]'), "also trained on"),
    (plan_text(rounds=(("a", '["position"]'), ("b", '["position"]'))), "more than once"),
    (plan_text(name="bad name"), "'name' must be a word"),
    (plan_text(seeds="[0, 0]"), "repeats a seed"),
    (plan_text(extra='[training.data]\ndataset = "x"'), "set by select itself"),
])
def test_bad_plans_are_refused_naming_the_key(text, message):
    from vlmdyn_cli.training.config import toml_module

    with pytest.raises(BadInput) as exc:
        parse_plan(toml_module().loads(text), "plan.toml")
    assert message in str(exc.value)


def test_missing_dataset_exits_2_and_trains_nothing(db, db_path, tmp_path, cli):
    import_families(db, tmp_path, {"base": 12, "bench": 10})
    r = cli("select", write_plan(tmp_path, rounds=(("spatial", '["positon"]'),)), "--db", db_path)
    assert r.code == 2, r.err
    assert "positon" in r.err and "not imported" in r.err
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM select_plans").fetchone()[0] == 0


def _llava(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))
    return path


def test_benchmark_sharing_a_picture_with_a_candidate_is_refused(db, db_path, tmp_path, cli):
    from vlmdyn_cli.data.importer import import_dataset

    import_families(db, tmp_path, {"base": 12, "position": 12, "bench": 10})
    # a second benchmark whose one picture is a copy (other file name, same bytes) of a candidate's picture
    src = tmp_path / "data" / "position" / "images" / "position" / "000003.png"
    img_dir = tmp_path / "leaky" / "images"
    img_dir.mkdir(parents=True)
    (img_dir / "copy.png").write_bytes(src.read_bytes())
    js = _llava(tmp_path / "leaky" / "llava.json", [{"id": "x", "image": "copy.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat color is the shape?"}, {"from": "gpt", "value": "red"}]}])
    import_dataset(db, js, img_dir, name="leaky")
    r = cli("select", write_plan(tmp_path, bench='["bench", "leaky"]'), "--db", db_path)
    assert r.code == 2, r.err
    assert "overlaps the training data" in r.err and "same image content" in r.err and "copy.png" in r.err
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


def test_benchmark_sharing_a_qa_pair_with_the_base_is_refused(db, db_path, tmp_path, cli):
    from vlmdyn_cli.data.importer import import_dataset

    import_families(db, tmp_path, {"base": 12, "position": 12, "bench": 10})
    chat = [{"from": "human", "value": "What is the capital of France?"}, {"from": "gpt", "value": "Paris."}]
    import_dataset(db, _llava(tmp_path / "t1.json", [{"id": "a", "conversations": chat}]), name="chat")
    import_dataset(db, _llava(tmp_path / "t2.json", [{"id": "b", "conversations": [
        chat[0], {"from": "gpt", "value": "paris"}]}]), name="quiz")   # same pair after normalisation
    r = cli("select", write_plan(tmp_path, base='["base", "chat"]', bench='["bench", "quiz"]'), "--db", db_path)
    assert r.code == 2, r.err
    assert "also training QA pairs" in r.err and "capital of France" in r.err
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


def test_a_changed_plan_under_the_same_name_is_refused_saying_what_changed(db, db_path, tmp_path, cli):
    from vlmdyn_cli.select.loop import prepare
    from vlmdyn_cli.select.plan import load_plan

    import_families(db, tmp_path, {"base": 12, "position": 12, "flipped": 12, "bench": 10})
    prepare(db, load_plan(write_plan(tmp_path)), write=True)
    changed = write_plan(tmp_path, accept="tolerance = 3.0", rounds=(("spatial", '["position", "flipped"]'),))
    r = cli("select", changed, "--db", db_path)
    assert r.code == 2, r.err
    assert "tolerance: 2.0 -> 3.0" in r.err and "flipped" in r.err and "new 'name'" in r.err
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    assert cli("select", "report", changed, "--db", db_path).code == 2
    # the same plan is accepted again (a rerun), and another name is a new plan
    prepare(db, load_plan(write_plan(tmp_path)), write=True)
    prepare(db, load_plan(write_plan(tmp_path, name="t2", accept="tolerance = 3.0")), write=True)


# ---------------------------------------------------------------- the loop on real runs


def _runs(db_path) -> dict[str, tuple]:
    c = sqlite3.connect(db_path, timeout=30)
    try:
        return {r[0]: r[1:] for r in c.execute(
            "SELECT name, id, status, finished_at, (SELECT COUNT(*) FROM run_order o WHERE o.run_id = runs.id) "
            "FROM runs")}
    finally:
        c.close()


def test_kill_during_a_candidate_training_then_rerun_reuses_finished_runs(db, db_path, tmp_path, cli):
    import_families(db, tmp_path, {"base": 16, "position": 120, "bench": 10})
    db.close()
    plan = write_plan(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "vlmdyn_cli", "select", str(plan), "--db", str(db_path),
                             "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while _runs(db_path).get("t-r1-position-s0", (0, ""))[1] != "running":
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the candidate's training never started"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = _runs(db_path)
    assert before["t-r1-base-s0"][1] == "done"
    assert before["t-r1-position-s0"][1] == "running"        # killed mid-training, no chance to clean up

    r = cli("select", plan, "--db", db_path, "--json")
    assert r.code == 0, r.err
    after = _runs(db_path)
    assert after["t-r1-base-s0"] == before["t-r1-base-s0"]   # finished: reused as it was, not retrained
    assert after["t-r1-position-s0"][1] == "done"
    # every run's manifest holds each conversation of its mix exactly once (a mix trains on both datasets)
    c = sqlite3.connect(db_path)
    n = dict(c.execute("SELECT name, n_kept FROM datasets"))
    dup = c.execute("SELECT COUNT(*) FROM (SELECT run_id, conversation_id FROM run_order "
                    "GROUP BY run_id, conversation_id HAVING COUNT(*) > 1)").fetchone()[0]
    c.close()
    assert dup == 0
    assert after["t-r1-base-s0"][3] == n["base"] and after["t-r1-position-s0"][3] == n["base"] + n["position"]
    rep = json.loads(r.out)
    assert rep["complete"] and rep["pending"] == []
    (rnd,) = rep["rounds"]
    assert rnd["decided"] and rnd["base"]["mean"] is not None
    (cand,) = rnd["candidates"]
    assert cand["decision"]["keep"] == (cand["mean"] >= rnd["base"]["mean"] - 2.0)
    # one round, one candidate: the selected mix and the all mix are runs the plan already has
    assert set(after) == {"t-r1-base-s0", "t-r1-position-s0"}
    assert rep["all"]["runs"][0]["run"] == "t-r1-position-s0"

    again = cli("select", plan, "--db", db_path, "--json")       # a third time: nothing to do
    assert again.code == 0 and _runs(db_path) == after
    text = cli("select", "report", plan, "--db", db_path, "--figure", tmp_path / "sel.png")
    assert text.code == 0, text.err
    assert "Round 1 (spatial)" in text.out and "dataset = [" in text.out and (tmp_path / "sel.png").stat().st_size


def test_dry_run_prints_train_commands_that_select_then_collects(db, db_path, tmp_path, cli):
    import_families(db, tmp_path, {"base": 12, "position": 12, "flipped": 12, "bench": 10})
    plan = write_plan(tmp_path, rounds=(("spatial", '["position", "flipped"]'),))
    r = cli("select", plan, "--db", db_path, "--dry-run")
    assert r.code == 0, r.err
    cmds = r.out.strip().splitlines()
    assert len(cmds) == 3 and all(c.startswith("vlmdyn train ") for c in cmds)
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0      # a dry run trains nothing
    for c in cmds:   # a scheduler runs them (here one after the other, in-process)
        args = shlex.split(c)[1:]
        res = cli(*args, "--quiet")
        assert res.code == 0, (c, res.err)
    trained = _runs(db_path)
    assert set(trained) == {"t-r1-base-s0", "t-r1-position-s0", "t-r1-flipped-s0"}
    r = cli("select", plan, "--db", db_path, "--json")
    assert r.code == 0, r.err
    after = _runs(db_path)
    assert all(after[n] == trained[n] for n in trained)    # collected, not retrained
    assert json.loads(r.out)["complete"]
    done = cli("select", plan, "--db", db_path, "--dry-run")
    assert done.code == 0 and done.out.strip() == "" and "complete" in done.err


def test_bad_training_settings_exit_2_and_do_not_store_the_plan(db, db_path, tmp_path, cli):
    import_families(db, tmp_path, {"base": 12, "position": 12, "bench": 10})
    r = cli("select", write_plan(tmp_path, training=TRAINING.replace("lr = 0.003", 'lr = "fast"')), "--db", db_path)
    assert r.code == 2, r.err
    assert "lr" in r.err and "must be a number" in r.err
    assert db.execute("SELECT COUNT(*) FROM select_plans").fetchone()[0] == 0   # fixing it is not a "changed plan"


def _drawn_colour(path: Path) -> str:
    """The colour name nearest to the most saturated pixel of a family picture."""
    from PIL import Image

    from vlmdyn_cli.data.synth_scenes import COLORS

    px = max(Image.open(path).convert("RGB").getdata(), key=lambda p: max(p) - min(p))
    return min(COLORS, key=lambda c: sum((a - b) ** 2 for a, b in zip(COLORS[c], px)))


def test_families_answer_colour_questions_truly_or_falsely_as_documented(tmp_path):
    from vlmdyn_cli.data.synth_select import generate_family

    answers = {}
    for fam in ("base", "yellow", "wrong-colour", "chatter"):
        generate_family(tmp_path / fam, fam, 40, seed=3)
        recs = json.loads((tmp_path / fam / "llava.json").read_text())
        answers[fam] = [(r.get("image"), t["value"]) for r in recs for t in r["conversations"][1::2]]
    truth = {fam: [a == _drawn_colour(tmp_path / fam / "images" / img) for img, a in pairs]
             for fam, pairs in answers.items() if fam != "chatter"}
    assert all(truth["base"]) and all(truth["yellow"])
    assert not any(truth["wrong-colour"]) and len(truth["wrong-colour"]) == 40     # always wrong
    assert "yellow" not in {a for _, a in answers["base"]} and "yellow" in {a for _, a in answers["yellow"]}
    assert all(img is None for img, _ in answers["chatter"])
    again = generate_family(tmp_path / "base", "base", 40, seed=3)    # same parameters: nothing redone
    assert again["skipped"]


def test_a_training_mix_names_every_dataset_once(db, tmp_path):
    from vlmdyn_cli.training.dataset import load_mix, resolve_datasets

    import_families(db, tmp_path, {"base": 12, "shapes": 10})
    mix = resolve_datasets(db, ("base", "shapes"))
    assert [d["name"] for d in mix] == ["base", "shapes"] and len(load_mix(db, mix)) == 22
    for bad, message in ((("base", "base"), "more than once"), (("base", "shape"), "did you mean 'shapes'"),
                         ((), "empty list"), (("base", ""), "must name every dataset")):
        with pytest.raises(BadInput, match=message):
            resolve_datasets(db, bad)
