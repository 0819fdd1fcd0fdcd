"""`vlmdyn judge --batch`: the OpenAI Batch API protocol against a loopback Batch-API server.

The server (tests/servers/batch_api.py) implements files upload/content and batches
create/retrieve, validates the input JSONL like the real service and finishes a job
after a few polls. What is under test: submit, come back later, the same command
resumes by batch id (never resubmitting), custom_id -> triple mapping, half price,
failed and expired items unscored with the reason and resubmitted next time, and a
crash between collecting and storing losing nothing.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

pytest.importorskip("openai")

from servers.fake_openai import FakeOpenAI  # noqa: E402
from servers.openai_specs import FAKE_KEY, rows_by_question, write_spec, write_triples  # noqa: E402

OPTS = {"batch_poll": 0.02, "price_in": 0.15, "price_out": 0.60}
QUESTIONS = [f"Question {i}? {'VERDICT=no' if i % 3 == 0 else ''}" for i in range(7)]


@pytest.fixture(autouse=True)
def key_env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)


def _batches(db_path):
    con = sqlite3.connect(db_path)
    try:
        return con.execute("SELECT batch_id, status, n_items, items_json FROM openai_batches ORDER BY created_at, "
                           "batch_id").fetchall()
    finally:
        con.close()


def _backend_and_prompts(db, spec_path, base_url):
    """The batch backend as the runner builds it (job ids kept in the db) and the first three prompts."""
    from vlmdyn_cli.judging.backends import create_backend
    from vlmdyn_cli.judging.backends.base import Context, Item
    from vlmdyn_cli.judging.spec import load_spec
    from vlmdyn_cli.store.batch_jobs import BatchJobs
    from vlmdyn_cli.store.db import upsert_triples

    spec = load_spec(str(spec_path)).with_overrides(options={"base_url": base_url})
    with db.atomic():
        hashes = upsert_triples(db, [(q, "red", "red") for q in QUESTIONS[:3]])
    be = create_backend(spec, {"batch": True}, Context(jobs=BatchJobs(db, spec.hash)))
    return be, [spec.render(Item(h, q, "red", "red")) for h, q in zip(hashes, QUESTIONS)]


def _judge(cli, db_path, triples, spec, url, *extra):
    r = cli("judge", "--db", db_path, "--input", triples, "--judge", spec, "--base-url", url, "--batch", *extra)
    assert r.code == 0, r.err
    return r


def test_submit_then_resume_collects_without_resubmitting(tmp_path, cli, db_path):
    triples = write_triples(tmp_path / "t.jsonl", QUESTIONS)
    spec = write_spec(tmp_path, options=OPTS)
    with FakeOpenAI(batch_polls=3) as srv:
        r1 = _judge(cli, db_path, triples, spec, srv.base_url, "--batch-wait", "0", "--json")
        assert rows_by_question(db_path) == {}                     # nothing judged yet...
        (bid, status, n, items_json), = _batches(db_path)          # ...one job in flight, recorded
        assert status in ("validating", "in_progress") and n == 7
        assert "run the same command again" in r1.err + r1.out
        assert all(x["status"] == "pending" for x in map(json.loads, r1.out.splitlines()))
        # come back later: the same command polls the same job and collects
        _judge(cli, db_path, triples, spec, srv.base_url, "--json")
        assert srv.batches.counts["creates"] == 1 and srv.batches.counts["uploads"] == 1
        rows = rows_by_question(db_path)
        assert set(rows) == set(QUESTIONS)
        items = json.loads(items_json)
        assert sorted(items.values()) == sorted(r["triple_hash"] for r in rows.values())   # custom_id -> triple
        for q, row in rows.items():
            assert row["status"] == "scored" and row["verdict"] == ("no" if "VERDICT=no" in q else "yes")
            assert row["resolved_model"] == "gpt-4o-mini-2024-07-18"
            full = (row["prompt_tokens"] * 0.15 + row["completion_tokens"] * 0.60) / 1e6
            assert row["cost_usd"] == pytest.approx(full / 2)      # the Batch API's half price
            assert 0 <= row["p_yes"] <= 1
        assert _batches(db_path)[0][1] == "completed"
        # a third run has nothing to do: no upload, no new job
        _judge(cli, db_path, triples, spec, srv.base_url)
        assert srv.batches.counts["creates"] == 1 and srv.batches.counts["uploads"] == 1


def test_failed_items_unscored_then_resubmitted_alone(tmp_path, cli, db_path):
    qs = ["fine one", "broken BATCHFAIL", "fine two"]
    triples = write_triples(tmp_path / "t.jsonl", qs)
    spec = write_spec(tmp_path, options=OPTS)
    with FakeOpenAI(batch_polls=2) as srv:
        _judge(cli, db_path, triples, spec, srv.base_url)
        rows = rows_by_question(db_path)
        assert rows["fine one"]["status"] == rows["fine two"]["status"] == "scored"
        bad = rows["broken BATCHFAIL"]
        assert bad["status"] == "unscored" and bad["verdict"] is None
        assert "item failed" in bad["reason"] and "injected item failure" in bad["reason"]
        _judge(cli, db_path, triples, spec, srv.base_url)          # unscored items are retried
        jobs = _batches(db_path)
        assert len(jobs) == 2 and jobs[1][2] == 1                  # only the failed item went again
        assert list(json.loads(jobs[1][3]).values()) == [bad["triple_hash"]]


def test_expired_batch_keeps_what_finished(tmp_path, cli, db_path):
    triples = write_triples(tmp_path / "t.jsonl", QUESTIONS[:4])
    spec = write_spec(tmp_path, options=OPTS)
    with FakeOpenAI(batch_polls=2, batch_expire=True) as srv:
        _judge(cli, db_path, triples, spec, srv.base_url)
    rows = rows_by_question(db_path)
    assert len(rows) == 4
    assert sorted(r["status"] for r in rows.values()) == ["scored", "scored", "unscored", "unscored"]
    assert all("batch_expired" in r["reason"] for r in rows.values() if r["status"] == "unscored")
    assert _batches(db_path)[0][1] == "expired"


def test_crash_after_collecting_loses_nothing_and_submits_nothing(tmp_path, cli, db, db_path):
    """Results collected but never stored (the process died): the next run reads them again."""
    triples = write_triples(tmp_path / "t.jsonl", QUESTIONS[:3])
    spec_path = write_spec(tmp_path, options=OPTS)
    with FakeOpenAI(batch_polls=2) as srv:
        be, prompts = _backend_and_prompts(db, spec_path, srv.base_url)
        lost = []
        be.complete(prompts, lost.append)
        assert len(lost) == 3 and _batches(db_path)[0][1] == "completed"   # collected, then "crash"
        assert rows_by_question(db_path) == {}
        _judge(cli, db_path, triples, spec_path, srv.base_url)
        assert srv.batches.counts["creates"] == 1                  # not submitted again
        rows = rows_by_question(db_path)
        assert len(rows) == 3 and {r["status"] for r in rows.values()} == {"scored"}
        polls = srv.batches.counts["retrieves"]
        _judge(cli, db_path, triples, spec_path, srv.base_url)
        assert srv.batches.counts["retrieves"] == polls            # all stored: the API is not contacted


def test_jsonl_lines_follow_the_batch_protocol(tmp_path, cli, db_path):
    triples = write_triples(tmp_path / "t.jsonl", QUESTIONS[:2])
    spec = write_spec(tmp_path, options=OPTS)
    with FakeOpenAI(batch_polls=2) as srv:
        _judge(cli, db_path, triples, spec, srv.base_url)
        (fid,) = [f for f, o in srv.batches.files.items() if o["purpose"] == "batch"]
        lines = [json.loads(x) for x in srv.batches.contents[fid].decode().splitlines()]
        job = next(iter(srv.batches.jobs.values()))
    assert job["completion_window"] == "24h" and job["endpoint"] == "/v1/chat/completions"
    assert len({x["custom_id"] for x in lines}) == 2
    for x in lines:
        assert x["method"] == "POST" and x["url"] == "/v1/chat/completions"
        assert x["body"]["model"] == "gpt-4o-mini" and x["body"]["max_tokens"] == 40
        assert x["body"]["logprobs"] is True and x["body"]["messages"][0]["role"] == "system"


def test_max_cost_limits_what_is_submitted(tmp_path, cli, db_path):
    triples = write_triples(tmp_path / "t.jsonl", [f"item {i} " + "word " * 200 for i in range(10)])
    spec = write_spec(tmp_path, options=OPTS)
    with FakeOpenAI(batch_polls=2) as srv:
        r = _judge(cli, db_path, triples, spec, srv.base_url, "--max-cost", "0.0002", "--json")
    (bid, status, n, _), = _batches(db_path)
    assert 1 <= n < 10                                         # only what the budget allows went in
    rows = rows_by_question(db_path)
    assert len(rows) == n and {row["status"] for row in rows.values()} == {"scored"}
    assert sum(row["cost_usd"] for row in rows.values()) <= 0.0002
    assert sum(x["status"] == "pending" for x in map(json.loads, r.out.splitlines())) == 10 - n


@pytest.mark.parametrize("job_was_created", [True, False])
def test_crash_between_upload_and_create_is_recovered(tmp_path, cli, db, db_path, job_was_created,
                                                      monkeypatch):
    """The row is written after the upload: a rerun adopts the job made from that file, or makes it."""
    from vlmdyn_cli.judging.backends import openai_batch as ob

    triples = write_triples(tmp_path / "t.jsonl", QUESTIONS[:3])
    spec_path = write_spec(tmp_path, options=OPTS)
    with FakeOpenAI(batch_polls=2) as srv:
        be, reqs = _backend_and_prompts(db, spec_path, srv.base_url)

        real_create = ob._BatchRun._create

        def dies(self, file_id, n):       # the process is killed right around batches.create
            if job_was_created:
                real_create(self, file_id, n)
            raise KeyboardInterrupt

        monkeypatch.setattr(ob._BatchRun, "_create", dies)
        with pytest.raises(KeyboardInterrupt):
            be.complete(reqs, lambda r: None)
        monkeypatch.setattr(ob._BatchRun, "_create", real_create)
        (bid, status, n, _), = _batches(db_path)
        assert bid.startswith("pending:file-") and status == "submitting"
        assert srv.batches.counts["creates"] == int(job_was_created)
        _judge(cli, db_path, triples, spec_path, srv.base_url)
        assert srv.batches.counts["creates"] == 1 and srv.batches.counts["uploads"] == 1
    (bid, status, n, _), = _batches(db_path)
    assert bid.startswith("batch_") and status == "completed" and n == 3
    assert {r["status"] for r in rows_by_question(db_path).values()} == {"scored"}
