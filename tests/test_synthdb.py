"""The synthetic experiment: schema-true rows, consistent sets, the paper's effects, atomic fill."""

from __future__ import annotations

from collections import Counter

import pytest

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.progress import Reporter
from vlmdyn_cli.store import open_db
from vlmdyn_cli.testing.synthdb import CATEGORY_SHARES, fill_synthetic

CKPTS = (51, 357, 1275)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "s.db"
    db = open_db(path)
    summary = fill_synthetic(db, seeds=2, checkpoints=CKPTS, set_size=40, judges=("rules", "openai/gpt-4o-mini"),
                             human_labels=5, total_steps=2000)
    yield db, summary
    db.close()


def _one(db, sql, params=()):
    return db.execute(sql, params).fetchone()[0]


def test_counts_match_the_summary(small):
    db, s = small
    assert _one(db, "SELECT COUNT(*) FROM runs") == 2
    assert _one(db, "SELECT COUNT(*) FROM generations") == s["generations"]
    # every set member has one generation per checkpoint
    members = _one(db, "SELECT COUNT(*) FROM (SELECT DISTINCT s.run_id, m.qa_id FROM eval_sets s "
                       "JOIN eval_set_members m ON m.set_id = s.id)")
    assert s["generations"] == members * len(CKPTS)
    assert _one(db, "SELECT COUNT(*) FROM judgements") == s["judgements"]
    # two judges: every triple judged by both
    assert _one(db, "SELECT COUNT(*) FROM triples") * 2 == s["judgements"]
    assert _one(db, "SELECT COUNT(*) FROM run_order") == 2 * s["conversations"]
    assert _one(db, "SELECT COUNT(DISTINCT rater) FROM human_labels") == 4
    assert set(r[0] for r in db.execute("SELECT name FROM eval_sets")) == {
        "seen@51", "seen@357", "seen@1275", "unseen", "unseen-pair", "unseen-none"}


def test_seen_sets_are_the_most_recent_items_before_k(small):
    db, _ = small
    for run_id, name, k, set_id in db.execute("SELECT run_id, name, k_step, id FROM eval_sets WHERE kind='seen'"):
        rows = db.execute("SELECT m.rank, o.step, o.position FROM eval_set_members m JOIN qa_pairs q ON q.id = m.qa_id "
                          "JOIN run_order o ON o.run_id = ? AND o.conversation_id = q.conversation_id "
                          "WHERE m.set_id = ? ORDER BY m.rank", [run_id, set_id]).fetchall()
        assert len(rows) == 40
        assert all(step <= k for _, step, _ in rows), name
        keys = [(-step, -pos) for _, step, pos in rows]
        assert keys == sorted(keys)  # rank 0 = most recently trained
        # nothing trained later (but still <= k) was skipped
        last = rows[-1][1]
        newer = _one(db, "SELECT COUNT(*) FROM run_order o JOIN qa_pairs q ON q.conversation_id = o.conversation_id "
                         "WHERE o.run_id = ? AND o.step <= ? AND o.step > ?", [run_id, k, last])
        assert newer <= 40


def test_unseen_image_dedup_shares_no_image_with_trained_data(small):
    db, _ = small
    for run_id, set_id in db.execute("SELECT run_id, id FROM eval_sets WHERE name='unseen'"):
        shared = _one(db, "SELECT COUNT(*) FROM eval_set_members m JOIN qa_pairs q ON q.id = m.qa_id "
                          "JOIN conversations c ON c.image_id = q.image_id "
                          "JOIN run_order o ON o.run_id = ? AND o.conversation_id = c.id "
                          "WHERE m.set_id = ? AND o.step <= 1275", [run_id, set_id])
        assert shared == 0
    pair_shared = _one(db, "SELECT COUNT(*) FROM eval_sets s JOIN eval_set_members m ON m.set_id = s.id "
                           "JOIN qa_pairs q ON q.id = m.qa_id JOIN conversations c ON c.image_id = q.image_id "
                           "JOIN run_order o ON o.run_id = s.run_id AND o.conversation_id = c.id "
                           "WHERE s.name = 'unseen-pair' AND o.step <= 1275")
    assert pair_shared > 0


def test_category_mix_and_unscored_rows(small):
    db, _ = small
    n = Counter(dict(db.execute("SELECT category, COUNT(*) FROM qa_pairs GROUP BY category").fetchall()))
    total = sum(n.values())
    for cat, share in CATEGORY_SHARES.items():
        assert abs(n[cat] / total - share) < 0.03, cat
    bad = _one(db, "SELECT COUNT(*) FROM judgements WHERE status='unscored' AND (verdict IS NOT NULL OR reason IS NULL)")
    assert bad == 0
    assert _one(db, "SELECT COUNT(*) FROM judgements WHERE status='unscored'") > 0
    # the API-like judge has p_yes and cost, the rules judge none
    assert _one(db, "SELECT COUNT(*) FROM judgements WHERE judge_name='rules' AND p_yes IS NOT NULL") == 0
    assert _one(db, "SELECT MIN(p_yes > 0 AND p_yes < 1) FROM judgements WHERE judge_name='openai/gpt-4o-mini' "
                    "AND status='scored'") == 1
    assert _one(db, "SELECT SUM(cost_usd) FROM judgements WHERE judge_name='openai/gpt-4o-mini'") > 0


def test_fts_and_triggers_are_back(small, tmp_path):
    db, _ = small
    fresh = open_db(tmp_path / "fresh.db")
    want = sorted(r[0] for r in fresh.execute("SELECT sql FROM sqlite_master WHERE type='trigger'"))
    got = sorted(r[0] for r in db.execute("SELECT sql FROM sqlite_master WHERE type='trigger'"))
    assert got == want
    assert _one(db, "SELECT COUNT(*) FROM triples_fts WHERE triples_fts MATCH 'book'") > 0
    assert _one(db, "SELECT COUNT(*) FROM qa_pairs_fts WHERE qa_pairs_fts MATCH 'bounding'") > 0
    assert _one(db, "PRAGMA journal_mode") == "wal"
    assert _one(db, "SELECT n FROM plot_data_version") >= 1


def test_the_paper_effects_show_up(tmp_path):
    db = open_db(tmp_path / "m.db")
    fill_synthetic(db, seeds=1, checkpoints=(20, 150, 700), set_size=500, dedup_size=500, total_steps=1000)

    def acc(where, step):
        yes, n = db.execute(
            "SELECT SUM(j.verdict='yes'), COUNT(*) FROM eval_sets s JOIN eval_set_members m ON m.set_id = s.id "
            "JOIN qa_pairs q ON q.id = m.qa_id JOIN generations g ON g.run_id = s.run_id AND g.qa_id = m.qa_id "
            f"AND g.step = ? JOIN judgements j ON j.triple_hash = g.triple_hash AND j.status='scored' WHERE {where}",
            [step]).fetchone()
        return yes / n

    assert acc("s.name='seen@150' AND q.category='OCR'", 150) > acc("s.name='unseen' AND q.category='OCR'", 150) + 0.1
    assert acc("q.category='Bounding'", 20) < 0.08
    assert acc("s.name='unseen-pair'", 700) > acc("s.name='unseen'", 700) + 0.03
    sem = acc("s.name='unseen' AND q.subcategory='semantic'", 150)
    rec = acc("s.name='unseen' AND q.subcategory='recognition'", 150)
    assert sem > rec + 0.2


def test_same_name_twice_is_bad_input(small):
    db, _ = small
    with pytest.raises(BadInput, match="already exists"):
        fill_synthetic(db, seeds=1, set_size=5)


class _Boom(Reporter):
    def __init__(self):
        self.n = 0

    def _update(self, h):
        if h.desc.endswith("judgements"):
            self.n += 1
            if self.n == 2:
                raise KeyboardInterrupt


def test_an_interrupted_fill_leaves_nothing(tmp_path):
    db = open_db(tmp_path / "i.db")
    with pytest.raises(KeyboardInterrupt):
        fill_synthetic(db, seeds=2, checkpoints=(51, 357), set_size=20, total_steps=600, reporter=_Boom())
    for t in ("datasets", "qa_pairs", "runs", "generations", "judgements", "triples"):
        assert _one(db, f"SELECT COUNT(*) FROM {t}") == 0, t
    n_triggers = _one(db, "SELECT COUNT(*) FROM sqlite_master WHERE type='trigger'")
    fresh = open_db(tmp_path / "f.db")
    assert n_triggers == _one(fresh, "SELECT COUNT(*) FROM sqlite_master WHERE type='trigger'")
    # and the same call then succeeds
    fill_synthetic(db, seeds=1, checkpoints=(51, 357), set_size=20, total_steps=600)
    assert _one(db, "SELECT COUNT(*) FROM runs") == 1
