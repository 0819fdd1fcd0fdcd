"""The openai judge backend against a fault-injecting loopback server, through the real runner and CLI.

The server (tests/servers/fake_openai.py) is a real HTTP server on 127.0.0.1 speaking the
chat-completions protocol; the backend talks to it through the official SDK. Correctness
against a real model server is in test_judge_openai_llama.py, the Batch API in
test_judge_openai_batch.py.
"""

from __future__ import annotations

import json
import math
import sqlite3

import pytest

pytest.importorskip("openai")

from servers.fake_openai import FakeOpenAI  # noqa: E402
from servers.openai_specs import FAKE_KEY, rows_by_question, write_spec, write_triples  # noqa: E402

from vlmdyn_cli.judging import prices  # noqa: E402
from vlmdyn_cli.judging.backends import create_backend  # noqa: E402
from vlmdyn_cli.judging.backends.base import Prompt  # noqa: E402
from vlmdyn_cli.judging.backends.openai_wire import retry_after_s, scrub  # noqa: E402
from vlmdyn_cli.judging.backends.verdict_probs import p_yes_at, verdict_word  # noqa: E402
from vlmdyn_cli.judging.spec import load_spec  # noqa: E402

FAST = {"timeout": 0.5, "max_retries": 3}
PRICED = {"price_in": 0.15, "price_out": 0.60}


@pytest.fixture
def srv():
    with FakeOpenAI(timeout_sleep_s=1.5) as s:
        yield s


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)


def _req(key: str, text: str, **kw) -> Prompt:
    return Prompt(key=key, messages=[{"role": "user", "content": text}], **kw)


def _backend(tmp_path, options=None, *, base_url=None, score_mode="with-verdict", **runtime):
    """The openai backend of a user spec (its [options] = ``options``), as the runner builds it."""
    spec = load_spec(str(write_spec(tmp_path, options=options or {}, score_mode=score_mode)))
    return create_backend(spec.with_overrides(options={"base_url": base_url} if base_url else None), runtime)


def _run(backend, reqs):
    out = []
    backend.complete(reqs, out.append)
    return {r.key: r for r in out}


# ------------------------------------------------------------------ prices and helpers


def test_price_table_snapshots_batch_and_cache():
    p = prices.price_for("gpt-4o-mini-2024-07-18")
    assert p == prices.PRICES["gpt-4o-mini"]
    assert prices.price_for("gpt-4o-2024-08-06") == prices.PRICES["gpt-4o"]     # not the -mini price
    assert prices.price_for("gpt-4.1-nano") == prices.PRICES["gpt-4.1-nano"]
    assert prices.price_for("my-local-llama") is None
    assert prices.cost_usd(p, 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert prices.cost_usd(p, 1_000_000, 1_000_000, batch=True) == pytest.approx(0.375)
    assert prices.cost_usd(p, 1_000_000, 0, cached_tokens=500_000) == pytest.approx(0.075 + 0.0375)
    assert prices.cost_usd(None, 10, 10) is None and prices.cost_usd(p, None, 3) is None


def test_p_yes_sums_case_and_space_variants():
    pos = {"token": "yes", "logprob": math.log(0.5), "top_logprobs": [
        {"token": "yes", "logprob": math.log(0.5)}, {"token": " Yes", "logprob": math.log(0.1)},
        {"token": "No", "logprob": math.log(0.3)}, {"token": "'no", "logprob": math.log(0.1)},
        {"token": "maybe", "logprob": math.log(0.01)}]}
    assert p_yes_at(pos) == pytest.approx(0.6 / 1.0)
    assert verdict_word(" 'Yes") == "yes" and verdict_word("nope") is None
    assert p_yes_at({"token": "x", "logprob": 0.0, "top_logprobs": [{"token": "x", "logprob": 0.0}]}) is None


def test_retry_after_forms():
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == pytest.approx(0.25)
    assert retry_after_s({"retry-after": "2"}) == 2.0
    import email.utils
    import time

    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < retry_after_s({"retry-after": date}) <= 30
    assert retry_after_s({"retry-after": "soon"}) is None and retry_after_s({}) is None


def test_scrub_removes_key_but_not_ordinary_words():
    msg = f"bad key {FAKE_KEY}; header Bearer {FAKE_KEY}; a risk-assessment task"
    out = scrub(msg, FAKE_KEY)
    assert FAKE_KEY not in out and "CANARY" not in out and "risk-assessment" in out


# ------------------------------------------------------------------ the backend on its own


def test_every_fault_ends_judged_or_with_a_reason(srv, key_env, tmp_path):
    be = _backend(tmp_path, FAST | PRICED, base_url=srv.base_url, concurrency=4)
    faults = ["429", "500", "503", "timeout", "truncated", "drop", "nonjson", "nondict", "nochoices",
              "429,500,truncated"]
    reqs = [_req(f, f"item FAULTS={f}") for f in faults] + [_req("never", "item FAULTS=500*"),
                                                            _req("bad", "item FAULTS=400")]
    res = _run(be, reqs)
    assert set(res) == {r.key for r in reqs}                 # nothing lost
    for f in faults:                                         # retried until a real answer
        r = res[f]
        assert r.error is None and r.text.startswith("{'p': 'yes'"), (f, r)
        assert r.resolved_model == "gpt-4o-mini-2024-07-18"
        assert r.prompt_tokens > 0 and r.completion_tokens == 3
        assert r.cost_usd == pytest.approx((r.prompt_tokens * 0.15 + 3 * 0.60) / 1e6)
    assert srv.attempts["item FAULTS=429,500,truncated"] == 4   # three faults, three retries, then the answer
    assert res["never"].text is None and "HTTP 500" in res["never"].error and "gave up after 4" in res["never"].error
    assert res["bad"].text is None and res["bad"].error.startswith("HTTP 400")
    assert srv.attempts["item FAULTS=500*"] == 4             # max_retries = 3: four attempts in all
    assert srv.attempts["item FAULTS=400"] == 1              # a 4xx is not retried


def test_retry_after_seconds_is_honoured(srv, key_env, tmp_path):
    import time

    be = _backend(tmp_path, FAST, base_url=srv.base_url, concurrency=1)
    t0 = time.monotonic()
    r = _run(be, [_req("a", "FAULTS=429s")])["a"]
    assert r.error is None and srv.attempts["FAULTS=429s"] == 2
    assert time.monotonic() - t0 >= 0.95                     # the server said "Retry-After: 1"


def test_a_429_pauses_every_worker(key_env, tmp_path):
    """After a 429 with Retry-After: 1, no worker sends anything new until that second is over."""
    import time

    with FakeOpenAI(latency_s=0.05) as srv:
        be = _backend(tmp_path, FAST, base_url=srv.base_url, concurrency=4)
        t0 = time.monotonic()
        arrived = {}
        be.complete([_req("slow", "FAULTS=429s")] + [_req(str(i), f"item {i}") for i in range(12)],
                    lambda c: arrived.setdefault(c.key, (time.monotonic() - t0, c.error)))
    assert len(arrived) == 13 and all(err is None for _, err in arrived.values())
    # without the pause the 12 quick items are done in ~0.2 s; with it, only those already in flight
    # when the 429 came back get through before the server's second is over
    early = [k for k, (t, _) in arrived.items() if t < 0.9]
    assert len(early) <= 7, sorted(arrived.items(), key=lambda kv: kv[1][0])


def test_concurrency_limit_is_respected(key_env, tmp_path):
    with FakeOpenAI(latency_s=0.15) as srv:
        be = _backend(tmp_path, base_url=srv.base_url, concurrency=3)
        res = _run(be, [_req(str(i), f"item {i}") for i in range(12)])
    assert len(res) == 12 and all(r.error is None for r in res.values())
    assert 2 <= srv.max_in_flight <= 3


def test_score_only_reads_p_yes_at_the_verdict_token(srv, key_env, tmp_path):
    be = _backend(tmp_path, base_url=srv.base_url, score_mode="only")
    res = _run(be, [_req("a", "PYES=0.35", score_only=True, verdict_prefix="{'p': '"),
                    _req("b", "PYES=0.8", score_only=True, verdict_prefix="")])
    assert res["a"].error is None and res["a"].p_yes == pytest.approx(0.35)
    assert res["b"].error is None and res["b"].p_yes == pytest.approx(0.8)
    assert res["b"].completion_tokens == 1 and res["b"].text == "yes"   # verdict-first: one token asked for


def test_key_required_for_openai_but_not_for_a_local_server(monkeypatch, srv, tmp_path):
    from vlmdyn_cli.errors import BadInput

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(BadInput, match="OPENAI_API_KEY"):
        create_backend(load_spec("gpt-4o-mini"))
    res = _run(_backend(tmp_path, base_url=srv.base_url), [_req("a", "hi")])
    assert res["a"].error is None
    with pytest.raises(BadInput, match="MY_GATEWAY_KEY"):   # a spec-named variable must be set
        _backend(tmp_path, {"api_key_env": "MY_GATEWAY_KEY"}, base_url=srv.base_url)


# ------------------------------------------------------------------ through the CLI and the runner


def test_faults_through_the_runner_none_lost_none_counted_as_no(srv, key_env, tmp_path, cli, db_path):
    plan = {"FAULTS=429": "scored", "FAULTS=429s": "scored", "FAULTS=500,503": "scored", "FAULTS=timeout": "scored",
            "FAULTS=truncated": "scored", "FAULTS=drop": "scored", "FAULTS=nonjson": "scored",
            "FAULTS=nondict": "scored", "FAULTS=nochoices,429": "scored", "plain VERDICT=no": "scored",
            "FAULTS=prose": "parse", "FAULTS=refusal": "refusal", "FAULTS=400": "HTTP 400",
            "FAULTS=500*": "gave up"}
    questions = [f"What is shown? {m}" for m in plan]
    triples = write_triples(tmp_path / "t.jsonl", questions)
    spec = write_spec(tmp_path, options=FAST | PRICED | {"concurrency": 4})
    r = cli("judge", "--db", db_path, "--input", triples, "--judge", spec, "--base-url", srv.base_url, "--json")
    assert r.code == 0, r.err
    results = [json.loads(line) for line in r.out.splitlines()]
    assert len(results) == len(plan)
    rows = rows_by_question(db_path)
    assert len(rows) == len(plan)                            # every item has a row
    for q, expect in zip(questions, plan.values()):
        row = rows[q]
        if expect == "scored":
            assert row["status"] == "scored", (q, row)
            assert row["verdict"] == ("no" if "VERDICT=no" in q else "yes")
            assert row["resolved_model"] == "gpt-4o-mini-2024-07-18"
            assert 0 <= row["p_yes"] <= 1 and row["cost_usd"] > 0 and row["ms"] == 5
        else:
            assert row["status"] == "unscored" and row["verdict"] is None, (q, row)
            assert expect in row["reason"], (q, row["reason"])
    # a rerun sends only the unscored items again; the scored ones are cached
    before = dict(srv.attempts)
    r2 = cli("judge", "--db", db_path, "--input", triples, "--judge", spec, "--base-url", srv.base_url, "--json")
    assert r2.code == 0, r2.err
    again = {p for p in srv.attempts if srv.attempts[p] > before.get(p, 0)}
    assert len(again) == 4 and all(any(m in p for m in ("prose", "refusal", "=400", "500*")) for p in again)


def test_api_key_sent_echoed_back_and_never_stored_printed_or_logged(key_env, tmp_path, cli, db_path):
    """The key goes to a leaky server that echoes it back in every field it can (live answers, errors,
    refusals, Batch API results); it must be in no output, no row, and not in the DB, WAL or SHM bytes."""
    import sqlite3

    live = ["q FAULTS=401echo*", "q FAULTS=echo*", "q FAULTS=refusalecho*", "q FAULTS=500*", "q plain"]
    batch = ["b ECHOKEY", "b ECHOKEY BATCHFAIL", "b plain"]
    live_file, batch_file = write_triples(tmp_path / "t.jsonl", live), write_triples(tmp_path / "b.jsonl", batch)
    spec = write_spec(tmp_path, options=FAST | PRICED | {"batch_poll": 0.02})
    from vlmdyn_cli.store import open_db

    open_db(db_path).close()
    keep_wal = sqlite3.connect(db_path)   # a reader holding the WAL open: it is not checkpointed away at exit
    keep_wal.execute("SELECT COUNT(*) FROM judgements").fetchone()
    outs = []
    with FakeOpenAI(timeout_sleep_s=1.5, batch_polls=2) as srv:
        for args in (["--input", live_file, "--json"], ["--input", live_file, "--rejudge"],
                     ["--input", live_file, "--dry-run", "--json"],
                     ["--input", batch_file, "--batch", "--batch-wait", "0", "--json"],
                     ["--input", batch_file, "--batch", "--json"]):
            r = cli("judge", "--db", db_path, "--judge", spec, "--base-url", srv.base_url, *args)
            assert r.code == 0, r.err
            outs += [r.out, r.err]
        assert f"Bearer {FAKE_KEY}" in srv.auth_headers           # the key WAS sent...
        assert any(FAKE_KEY.encode() in data for data in srv.batches.contents.values())   # ...and echoed
    export = tmp_path / "export.jsonl"
    for sub in (["judgements", "list", "-n", "0", "--json"], ["judgements", "status", "--json"],
                ["judgements", "export", "--out", export]):
        r = cli(*sub, "--db", db_path)
        assert r.code == 0, r.err
        outs += [r.out, r.err]
    rows = rows_by_question(db_path)
    assert "[redacted]" in rows["q FAULTS=401echo*"]["reason"]
    assert rows["q FAULTS=echo*"]["resolved_model"] == "Bearer [redacted]"       # the model name came back too
    assert "[redacted]" in rows["q FAULTS=echo*"]["raw"] and "[redacted]" in rows["q FAULTS=refusalecho*"]["reason"]
    assert rows["b ECHOKEY"]["resolved_model"] == "Bearer [redacted]"
    assert "[redacted]" in rows["b ECHOKEY BATCHFAIL"]["reason"]
    secret_part = FAKE_KEY.split("-", 1)[1]
    for text in outs + [export.read_text()]:
        assert secret_part not in text
    files = {f.name: f.read_bytes() for f in db_path.parent.glob(db_path.name + "*")}
    keep_wal.close()
    assert set(files) == {db_path.name, db_path.name + "-wal", db_path.name + "-shm"}
    assert b"[redacted]" in files[db_path.name + "-wal"]        # the rows went through the WAL ...
    for name, data in files.items():                           # ... and no byte of any file holds the key
        assert secret_part.encode() not in data, name


def test_missing_key_is_exit_2_naming_the_variable(monkeypatch, tmp_path, cli, db_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    triples = write_triples(tmp_path / "t.jsonl", ["q"])
    r = cli("judge", "--db", db_path, "--input", triples, "--judge", "gpt-4o-mini")
    assert r.code == 2 and "OPENAI_API_KEY" in r.err
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT COUNT(*) FROM judge_specs").fetchone()[0] == 0   # the judge was not registered
    con.close()


@pytest.mark.parametrize("bad_key, what", [
    (FAKE_KEY + "\r\nX-Injected: 1", "a control character"),   # a pasted line break: a header injection
    (FAKE_KEY.replace("CANARY", "CANÄRY"), "a non-ASCII character"),
    (FAKE_KEY.replace("-CANARY-", " CANARY "), "a space"),
])
def test_a_malformed_key_is_bad_input_before_any_request_and_never_shown(monkeypatch, srv, tmp_path, cli, db_path,
                                                                          bad_key, what):
    """A key an HTTP header cannot carry stops the judge at once (exit 2 naming the variable and the
    position) instead of failing every request with retries, and no part of it is printed."""
    monkeypatch.setenv("OPENAI_API_KEY", bad_key)
    triples = write_triples(tmp_path / "t.jsonl", ["q1", "q2"])
    spec = write_spec(tmp_path, options=FAST)
    r = cli("judge", "--db", db_path, "--input", triples, "--judge", spec, "--base-url", srv.base_url, "--json")
    assert r.code == 2, r.err
    assert "OPENAI_API_KEY" in r.err and what in r.err and "position" in r.err
    for part in ("CANARY", "CANÄRY", "X-Injected"):
        assert part not in r.out + r.err
    assert srv.completed_prompts == [] and not srv.auth_headers          # nothing was sent
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT COUNT(*) FROM judgements").fetchone()[0] == 0
    con.close()


def test_max_cost_stops_early_and_stores_no_fake_rows(srv, key_env, tmp_path, cli, db_path):
    questions = [f"item {i}" for i in range(20)]
    triples = write_triples(tmp_path / "t.jsonl", questions)
    spec = write_spec(tmp_path, options=PRICED | {"concurrency": 1})
    r = cli("judge", "--db", db_path, "--input", triples, "--judge", spec, "--base-url", srv.base_url,
            "--max-cost", "0.00002", "--json")
    assert r.code == 0, r.err
    rows = rows_by_question(db_path)
    assert 1 <= len(rows) < 20
    assert all(row["status"] == "scored" for row in rows.values())   # no "not sent" rows stored
    assert sum(row["cost_usd"] for row in rows.values()) < 0.00002 + 2 * max(row["cost_usd"] for row in rows.values())
    results = [json.loads(line) for line in r.out.splitlines()]
    assert sum(x["status"] == "pending" for x in results) == 20 - len(rows)


def test_max_cost_without_a_price_is_bad_input(srv, key_env, tmp_path, cli, db_path):
    triples = write_triples(tmp_path / "t.jsonl", ["q"])
    spec = write_spec(tmp_path)
    r = cli("judge", "--db", db_path, "--input", triples, "--judge", spec, "--base-url", srv.base_url,
            "--max-cost", "1")
    assert r.code == 2 and "price_in" in r.err


def test_builtin_norubric_spec_through_base_url(srv, key_env, tmp_path, cli, db_path):
    triples = write_triples(tmp_path / "t.jsonl", ["Is it red?", "Is it blue?"])
    r = cli("judge", "--db", db_path, "--input", triples, "--judge", "gpt-4o-mini-norubric",
            "--base-url", srv.base_url, "--json")
    assert r.code == 0, r.err
    rows = rows_by_question(db_path)
    assert {row["status"] for row in rows.values()} == {"scored"}
    assert all(row["raw"] == "{'p': 'yes'}" and row["ms"] is None for row in rows.values())
    assert all(row["judge_name"] == "gpt-4o-mini-norubric" and row["p_yes"] == pytest.approx(0.9)
               for row in rows.values())
    assert all(row["cost_usd"] is None for row in rows.values())   # a non-OpenAI server: no price known


def test_kill_9_mid_run_then_rerun_completes_without_duplicates(key_env, tmp_path, db_path):
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    n = 40
    triples = write_triples(tmp_path / "t.jsonl", [f"item {i}" for i in range(n)])
    spec = write_spec(tmp_path, options={"concurrency": 2})
    with FakeOpenAI(latency_s=0.1) as srv:
        cmd = [sys.executable, "-m", "vlmdyn_cli", "judge", "--db", str(db_path), "--input", str(triples),
               "--judge", str(spec), "--base-url", srv.base_url, "--quiet"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        stored = 0
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            if db_path.exists():
                try:
                    con = sqlite3.connect(db_path, timeout=5)
                    stored = con.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]
                    con.close()
                except sqlite3.OperationalError:
                    continue
                if stored >= 4:
                    break
        assert proc.poll() is None, proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        con = sqlite3.connect(db_path)
        kept = con.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]
        con.close()
        assert 4 <= kept < n
        before = srv.counts["requests"]
        r = subprocess.run(cmd, capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr.decode()
        resent = srv.counts["requests"] - before
    con = sqlite3.connect(db_path)
    rows = con.execute("SELECT triple_hash, status FROM judgements").fetchall()
    con.close()
    assert len(rows) == n and len({h for h, _ in rows}) == n       # complete, no duplicates
    assert {s for _, s in rows} == {"scored"}
    assert resent == n - kept                                        # committed rows were not redone


def test_extra_body_keys_reach_the_server_in_the_request_body(key_env, tmp_path):
    """[options] extra_body (e.g. llama.cpp's grammar) goes into the JSON body, not to the SDK as arguments."""
    seen: list[dict] = []
    with FakeOpenAI(answer=lambda body: seen.append(body) or None) as s:
        p = write_spec(tmp_path)
        p.write_text(p.read_text() + 'extra_body = { grammar = "root ::= \\"yes\\"", min_p = 0.05 }\n')
        spec = load_spec(str(p)).with_overrides(options={"base_url": s.base_url})
        out = _run(create_backend(spec, FAST), [_req("a", "Q: x")])
    assert out["a"].error is None and out["a"].text
    assert seen and seen[0]["grammar"] == 'root ::= "yes"' and seen[0]["min_p"] == 0.05
    assert seen[0]["model"] == "gpt-4o-mini" and seen[0]["max_tokens"] == 40
