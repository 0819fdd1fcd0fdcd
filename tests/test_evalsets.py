"""Seen@k and unseen sets: membership recomputed independently from the manifest."""

from __future__ import annotations

import json

import pytest

from helpers_evalsets import add_dataset, expected_seen, make_experiment, trained_images
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.evalsets import build, sampling
from vlmdyn_cli.evalsets.report import list_sets
from vlmdyn_cli.evalsets.selection import unseen_candidates
from vlmdyn_cli.store.runs import get_run


def members(db, run_id, name):
    return [r[0] for r in db.execute(
        "SELECT m.qa_id FROM eval_set_members m JOIN eval_sets s ON s.id = m.set_id "
        "WHERE s.run_id = ? AND s.name = ? ORDER BY m.rank", [run_id, name])]


def qa_images(db, ids):
    return {r[0] for r in db.execute(
        f"SELECT image_id FROM qa_pairs WHERE id IN ({','.join('?' * len(ids))}) AND image_id IS NOT NULL",
        ids)}


def test_seen_k_is_the_last_n_trained_at_or_before_k(db):
    exp = make_experiment(db)
    run = get_run(db, exp.run_name)
    steps = run.eval_steps
    assert steps and exp.total_steps not in steps and 0 not in steps
    specs = build.plan(run, steps, 12, 10, ["image"], None, 0)
    build.build(db, run, specs)
    for k in steps:
        got = members(db, exp.run_id, f"seen@{k}")
        assert got == expected_seen(exp, k, 12), k
        # The most recent member belongs to a conversation trained exactly at step k.
        first_conv = db.execute("SELECT conversation_id FROM qa_pairs WHERE id = ?", [got[0]]).fetchone()[0]
        assert dict((c, s) for c, s, _ in exp.manifest)[first_conv] == k


def test_unseen_image_dedup_shares_no_image_with_trained_data_but_pair_dedup_does(db):
    exp = make_experiment(db, n_conv=240, n_images=110)
    run = get_run(db, exp.run_name)
    last = max(run.eval_steps)
    banned = trained_images(exp, last)
    steps_of = {c: s for c, s, _ in exp.manifest}
    for mode in ("image", "pair", "none"):
        cands = unseen_candidates(db, exp.run_id, exp.dataset_id, last, mode)
        ids = [q for q, _ in cands]
        assert ids == sorted(ids) and ids
        convs = {db.execute("SELECT conversation_id FROM qa_pairs WHERE id=?", [q]).fetchone()[0] for q in ids}
        assert all(steps_of.get(c, 10 ** 9) > last for c in convs)        # never trained by L
        imgs = qa_images(db, ids)
        if mode == "image":
            assert imgs and not imgs & banned
        else:
            assert imgs & banned        # image re-use leaks through the weaker modes
    img = {q for q, _ in unseen_candidates(db, exp.run_id, exp.dataset_id, last, "image")}
    pair = {q for q, _ in unseen_candidates(db, exp.run_id, exp.dataset_id, last, "pair")}
    none = {q for q, _ in unseen_candidates(db, exp.run_id, exp.dataset_id, last, "none")}
    assert img < pair < none
    # `pair` removes exactly the pairs whose (image, question, answer) was trained by L.
    trained_keys = {tuple(r) for r in db.execute(
        "SELECT q.image_id, q.question, q.answer FROM qa_pairs q JOIN run_order o "
        "ON o.conversation_id = q.conversation_id AND o.run_id = ? WHERE o.step <= ?", [exp.run_id, last])}
    for q in none - pair:
        assert tuple(db.execute("SELECT image_id, question, answer FROM qa_pairs WHERE id=?",
                                [q]).fetchone()) in trained_keys


def test_text_only_pairs_are_allowed_under_image_dedup(db):
    exp = make_experiment(db, n_conv=240, n_images=110, text_only_every=3)
    last = max(get_run(db, exp.run_name).eval_steps)
    cands = [q for q, _ in unseen_candidates(db, exp.run_id, exp.dataset_id, last, "image")]
    n_text = db.execute(f"SELECT count(*) FROM qa_pairs WHERE image_id IS NULL AND id IN "
                        f"({','.join('?' * len(cands))})", cands).fetchone()[0]
    assert n_text > 0


def test_held_out_conversations_are_unseen_candidates_and_dropped_ones_are_not(db):
    exp = make_experiment(db, held_out=10)
    last = exp.total_steps          # the whole epoch: only never-trained data is left
    ids = {q for q, _ in unseen_candidates(db, exp.run_id, exp.dataset_id, last, "none")}
    expected = {q for c in exp.held_out for q in exp.conv_qas[c]}
    assert ids == expected
    dropped = {r[0] for r in db.execute(
        "SELECT q.id FROM qa_pairs q JOIN conversations c ON c.id = q.conversation_id WHERE c.kept = 0")}
    assert dropped and not dropped & ids


def test_stratified_sampling_keeps_category_proportions():
    cands = [(i, "A") for i in range(600)] + [(i, "B") for i in range(600, 900)] + \
        [(i, None) for i in range(900, 1000)]
    got = sampling.sample(cands, 100, seed=3, stratify="category")
    cat = dict(cands)
    counts = {c: sum(1 for q in got if cat[q] == c) for c in ("A", "B", None)}
    assert counts == {"A": 60, "B": 30, None: 10}
    assert len(set(got)) == 100
    assert got == sampling.sample(cands, 100, seed=3, stratify="category")
    assert got != sampling.sample(cands, 100, seed=4, stratify="category")
    assert sampling.proportional_quotas({"a": 1, "b": 1, "c": 1}, 2) == {"a": 1, "b": 1, "c": 0}


def test_rebuild_same_definition_is_noop_and_different_needs_force(db):
    exp = make_experiment(db)
    run = get_run(db, exp.run_name)
    specs = build.plan(run, run.eval_steps, 8, 10, ["image", "pair"], None, 5)
    res = build.build(db, run, specs)
    assert {r["status"] for r in res} == {"built"}
    before = members(db, exp.run_id, "unseen")
    res = build.build(db, run, build.plan(run, run.eval_steps, 8, 10, ["image", "pair"], None, 5))
    assert {r["status"] for r in res} == {"unchanged"}
    other = build.plan(run, run.eval_steps, 8, 10, ["image"], None, 6)
    with pytest.raises(BadInput, match="--force") as e:
        build.build(db, run, other)
    assert "unseen: stored" in str(e.value) and '"seed": 6' in str(e.value)
    assert members(db, exp.run_id, "unseen") == before
    res = build.build(db, run, other, force=True)
    assert {r["name"]: r["status"] for r in res}["unseen"] == "rebuilt"
    after = members(db, exp.run_id, "unseen")
    assert len(after) == 10 and after != before
    n = db.execute("SELECT count(*) FROM eval_set_members m JOIN eval_sets s ON s.id=m.set_id "
                   "WHERE s.name='unseen'").fetchone()[0]
    assert n == 10


class OtherBuildFirst:
    """A reporter whose "selecting set members" task first lets another connection build ``specs`` of the
    run (two `vlmdyn sets build` at once: the other commits between our read of the stored sets and our
    write)."""

    def __init__(self, db_path, run_name, specs):
        from vlmdyn_cli.progress import RecordingReporter

        self.inner, self.args = RecordingReporter(), (db_path, run_name, specs)

    def task(self, desc, **kw):
        from vlmdyn_cli.store import open_db

        if desc.startswith("selecting"):
            db_path, run_name, specs = self.args
            other = open_db(db_path)
            build.build(other, get_run(other, run_name), specs)
            other.close()
        return self.inner.task(desc, **kw)


def test_concurrent_build_of_the_same_sets_is_unchanged_and_of_other_sets_is_refused(db, db_path):
    """On main the later writer failed with sqlite's UNIQUE constraint error (exit 1)."""
    exp = make_experiment(db)
    run = get_run(db, exp.run_name)
    specs = build.plan(run, run.eval_steps, 8, 10, ["image", "pair"], None, 5)
    res = build.build(db, run, specs, reporter=OtherBuildFirst(db_path, exp.run_name, specs))
    assert {r["status"] for r in res} == {"unchanged"}
    assert db.execute("SELECT count(*) FROM eval_sets").fetchone()[0] == len(specs)
    before = members(db, exp.run_id, "unseen")
    theirs = build.plan(run, run.eval_steps, 8, 10, ["image"], None, 6)
    mine = build.plan(run, run.eval_steps, 8, 10, ["image"], None, 7)
    db.execute("DELETE FROM eval_set_members WHERE set_id = (SELECT id FROM eval_sets WHERE name = 'unseen')")
    db.execute("DELETE FROM eval_sets WHERE name = 'unseen'")
    with pytest.raises(BadInput, match="another process built set unseen with another definition"):
        build.build(db, run, mine, reporter=OtherBuildFirst(db_path, exp.run_name, theirs))
    assert members(db, exp.run_id, "unseen") != before     # theirs (seed 6) stands, whole
    assert len(members(db, exp.run_id, "unseen")) == 10


def test_too_few_candidates_names_counts_and_writes_nothing(db):
    exp = make_experiment(db)
    run = get_run(db, exp.run_name)
    k0 = min(run.eval_steps)
    n_k0 = len(expected_seen(exp, k0, 10 ** 6))
    with pytest.raises(BadInput) as e:
        build.build(db, run, build.plan(run, run.eval_steps, n_k0 + 1, 10 ** 5, ["image"], None, 0))
    msg = str(e.value)
    assert f"seen@{k0}: only {n_k0} QA pairs" in msg and f"--seen-size {n_k0}" in msg
    assert "unseen: only" in msg and "--unseen-size" in msg
    assert db.execute("SELECT count(*) FROM eval_sets").fetchone()[0] == 0


def test_run_without_manifest_and_unknown_run(db):
    ds, _, _, kept = add_dataset(db, "d2")
    db.conn.execute(
        "INSERT INTO runs(name, dataset_id, seed, model_id, config_json, out_dir, status, total_steps,"
        " global_batch, checkpoint_steps_json, created_at) VALUES ('empty',?,0,'tiny','{}','/x','created',"
        "10,4,'[0,5,10]','t')", [ds])
    run = get_run(db, "empty")
    with pytest.raises(BadInput, match="no order manifest"):
        build.build(db, run, build.plan(run, [5], 2, 2, ["image"], None, 0))
    with pytest.raises(BadInput, match="unknown run 'emty'.*did you mean 'empty'"):
        get_run(db, "emty")


def test_list_reports_category_mix_and_overlap_checks(db):
    exp = make_experiment(db, n_conv=240, n_images=110)
    run = get_run(db, exp.run_name)
    build.build(db, run, build.plan(run, run.eval_steps, 10, 15, ["image", "pair", "none"], None, 1))
    sets = {s["name"]: s for s in list_sets(db, exp.run_name)}
    assert set(sets) == {f"seen@{k}" for k in run.eval_steps} | {"unseen", "unseen-pair", "unseen-none"}
    for s in sets.values():
        assert sum(s["categories"].values()) == s["size"]
        if s["kind"] == "seen":
            assert s["checks"] == {"not_trained_by_k": 0}
    last = max(run.eval_steps)
    banned = trained_images(exp, last)
    for name in ("unseen", "unseen-pair", "unseen-none"):
        imgs = qa_images(db, members(db, exp.run_id, name))
        assert sets[name]["checks"]["violating_images"] == len(imgs & banned)
        assert sets[name]["checks"]["trained_members"] == 0
    assert sets["unseen"]["checks"]["violating_images"] == 0
    assert sets["unseen-pair"]["checks"]["violating_images"] > 0
    assert sets["unseen-pair"]["checks"]["repeated_pairs"] == 0
    assert sets["unseen"]["after_step"] == last


def test_cli_build_and_list(cli, db, db_path):
    exp = make_experiment(db, n_conv=240, n_images=110)
    db.conn.commit()
    r = cli("sets", "build", "--db", db_path, "--run", "r1", "--seen-size", "6", "--unseen-size", "8",
            "--dedup", "all", "--stratify", "category", "--json", "-q")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert {s["status"] for s in out["sets"]} == {"built"}
    again = cli("sets", "build", "--db", db_path, "--run", "r1", "--seen-size", "6", "--unseen-size", "8",
                "--dedup", "all", "--stratify", "category", "--json", "-q")
    assert {s["status"] for s in json.loads(again.out)["sets"]} == {"unchanged"}
    diff = cli("sets", "build", "--db", db_path, "--run", "r1", "--seen-size", "7", "-q")
    assert diff.code == 2 and "--force" in diff.err
    lst = cli("sets", "list", "--db", db_path, "--run", "r1", "--json")
    assert lst.code == 0
    by = {s["name"]: s for s in json.loads(lst.out)}
    assert by["unseen"]["seed"] == 0 and by["unseen"]["stratify"] == "category"
    human = cli("sets", "list", "--db", db_path)
    assert "r1/unseen (dedup image): 0 member images occur in data trained" in human.out
    assert "r1/unseen-pair (dedup pair): 0 member" not in human.out
    assert "r1/seen@" in human.out and "members not trained by step" in human.out
    steps = cli("sets", "build", "--db", db_path, "--run", "r1", "--checkpoints", "2,x")
    assert steps.code == 2 and "--checkpoints" in steps.err
    bad = cli("sets", "build", "--db", db_path, "--run", "r1", "--dedup", "imag")
    assert bad.code == 2 and "did you mean 'image'" in bad.err
    unknown = cli("sets", "list", "--db", db_path, "--run", "nope")
    assert unknown.code == 2 and "unknown run 'nope'" in unknown.err
    assert exp.run_id
