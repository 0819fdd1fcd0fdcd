"""The transformers judge backend on CPU with a tiny random-init Llama saved to a temp folder.

Its verdicts are garbage (random weights): these tests check the plumbing. Every
item ends stored (parsed or unscored with a reason), p_yes is a probability,
different prompts give different p_yes, chat template and plain text both work.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

WORDS = ("Question : What colour is the bus ? Reference answer : red Model answer : blue "
         "Reply yes or no . yes no Yes No YES NO { ' p ' : ' } MS MD H 1 2 3 4 5 "
         "system user assistant grade the answer")

CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant> {% endif %}"
)


def _save_tiny(folder: Path, chat: bool, hidden: int = 32) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    from vlmdyn_cli.models.tokenizer import build_word_tokenizer

    torch.manual_seed(0)
    tok = build_word_tokenizer([WORDS] * 3, vocab_size=200)
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_chat(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return _save_tiny(tmp_path_factory.mktemp("tiny_chat"), chat=True)


@pytest.fixture(scope="module")
def tiny_plain64(tmp_path_factory) -> Path:
    """bitsandbytes quantizes in blocks of 64 weights: layers at least that wide."""
    torch.set_num_threads(1)
    return _save_tiny(tmp_path_factory.mktemp("tiny_plain64"), chat=False, hidden=64)


@pytest.fixture(scope="module")
def tiny_plain(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return _save_tiny(tmp_path_factory.mktemp("tiny_plain"), chat=False)


def _spec_file(tmp_path: Path, model: Path, *, score_mode: str, output: str = "verdict-dict",
               text: bool = False, extra_options: str = "") -> Path:
    prompts = tmp_path / "prompts"
    prompts.mkdir(exist_ok=True)
    (prompts / "sys.txt").write_text("grade the answer . Reply yes or no .\n")
    (prompts / "user.txt").write_text("Question : {question} Reference answer : {answer} Model answer : {prediction}\n")
    (prompts / "plain.txt").write_text("Question : {question} Reference answer : {answer} "
                                       "Model answer : {prediction} Reply yes or no .")
    templates = ('text_template = "prompts/plain.txt"' if text else
                 'system_template = "prompts/sys.txt"\nuser_template = "prompts/user.txt"')
    p = tmp_path / f"tiny-{score_mode}-{output}-{'text' if text else 'chat'}.toml"
    p.write_text(f'''name = "tiny-hf"
backend = "transformers"
model = "{model}"
output = "{output}"
{templates}

[decoding]
max_tokens = 6
score_mode = "{score_mode}"

[options]
n_threads = 1
{extra_options}
''')
    return p


def _triples(db, n: int = 3) -> list[str]:
    from vlmdyn_cli.store.db import upsert_triples

    rows = [("What colour is the bus ?", "red", pred) for pred in ("red", "blue", "green yes")][:n]
    with db.atomic():
        return upsert_triples(db, rows)


def test_full_mode_every_item_stored_parsed_or_unscored(db, tiny_chat, tmp_path):
    from vlmdyn_cli.judging.run import judge_triples
    from vlmdyn_cli.judging.spec import load_spec

    spec = load_spec(str(_spec_file(tmp_path, tiny_chat, score_mode="with-verdict")))
    hashes = _triples(db)
    summary = judge_triples(db, spec, hashes)
    rows = db.execute("SELECT triple_hash, status, verdict, reason, raw, resolved_model, prompt_tokens, "
                      "completion_tokens, p_yes FROM judgements").fetchall()
    assert {r[0] for r in rows} == set(hashes)
    for h, status, verdict, reason, raw, model, pt, ct, p in rows:
        assert raw is not None                      # the model's raw output is kept
        assert model == str(tiny_chat)
        assert pt > 10 and 1 <= ct <= 6
        if status == "scored":
            assert verdict in ("yes", "no")
        else:
            assert status == "unscored" and verdict is None and reason.startswith("parse")
        assert p is None or 0.0 <= p <= 1.0
    assert summary.scored + summary.unscored == 3


@pytest.mark.parametrize("chat", [True, False])
def test_score_mode_p_yes_differs_between_prompts(db, tiny_chat, tiny_plain, tmp_path, chat):
    from vlmdyn_cli.judging.run import judge_triples
    from vlmdyn_cli.judging.spec import load_spec

    model = tiny_chat if chat else tiny_plain
    spec = load_spec(str(_spec_file(tmp_path, model, score_mode="only", output="yesno", text=not chat)))
    hashes = _triples(db)
    judge_triples(db, spec, hashes)
    rows = dict(db.execute("SELECT triple_hash, p_yes FROM judgements WHERE status = 'scored'").fetchall())
    assert set(rows) == set(hashes)
    ps = [rows[h] for h in hashes]
    assert all(0.0 < p < 1.0 for p in ps)
    assert len({round(p, 9) for p in ps}) == 3, ps   # three prompts, three probabilities
    verdicts = dict(db.execute("SELECT triple_hash, verdict FROM judgements").fetchall())
    assert all(verdicts[h] == ("yes" if rows[h] >= 0.5 else "no") for h in hashes)


def test_p_yes_matches_logits_computed_by_hand(tiny_plain, tmp_path):
    """score mode = softmax restricted to the yes/no variants at the next token, checked independently."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vlmdyn_cli.judging.backends import create_backend
    from vlmdyn_cli.judging.backends.base import Prompt
    from vlmdyn_cli.judging.spec import load_spec

    be = create_backend(load_spec(str(_spec_file(tmp_path, tiny_plain, score_mode="only", text=True))))
    prompt = "Question : What colour is the bus ? Reference answer : red Model answer : blue Reply yes or no ."
    resp = be.respond(Prompt(key="k", messages=[], text=prompt, score_only=True, verdict_prefix=""))
    tok = AutoTokenizer.from_pretrained(tiny_plain)
    model = AutoModelForCausalLM.from_pretrained(tiny_plain, dtype=torch.float32)
    with torch.inference_mode():
        logits = model(**tok(prompt, return_tensors="pt")).logits[0, -1]
    probs = torch.softmax(logits, -1)
    ids = lambda words: {tok.convert_tokens_to_ids(w) for w in words} - {tok.unk_token_id}  # noqa: E731
    y = sum(float(probs[i]) for i in ids(["yes", "Yes", "YES", " yes", " Yes", " YES"]))
    n = sum(float(probs[i]) for i in ids(["no", "No", "NO", " no", " No", " NO"]))
    assert math.isclose(resp.p_yes, y / (y + n), rel_tol=1e-4)
    assert resp.text is None and resp.error is None and resp.completion_tokens == 0


P_YES_4BIT_TOLERANCE = 0.05   # |p_yes(NF4) - p_yes(fp32)| per item, on the tiny random Llama (measured: < 0.01)


def test_4bit_nf4_on_cpu_is_really_quantized_and_close_to_fp32(tiny_plain64, tmp_path):
    """load_in_4bit on the CPU: real bitsandbytes Linear4bit layers holding NF4 weights, and p_yes
    within P_YES_4BIT_TOLERANCE of the fp32 model on the same prompts (and not identical: quantized)."""
    bnb = pytest.importorskip("bitsandbytes")
    from vlmdyn_cli.judging.backends import create_backend
    from vlmdyn_cli.judging.backends.base import Prompt
    from vlmdyn_cli.judging.spec import load_spec

    fp32 = create_backend(load_spec(str(_spec_file(tmp_path, tiny_plain64, score_mode="only", text=True))))
    q4 = create_backend(load_spec(str(_spec_file(tmp_path, tiny_plain64, score_mode="only", text=True,
                                                  extra_options='load_in_4bit = true\ndevice = "cpu"'))))
    layers = [m for m in q4.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 2 * 7          # q, k, v, o, gate, up, down in each of the 2 layers
    assert all(m.weight.quant_type == "nf4" and m.weight.dtype == torch.uint8 for m in layers)
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in fp32.model.modules())
    diffs = []
    for pred in ("red", "blue", "green yes", "no", "yes"):
        text = f"Question : What colour is the bus ? Reference answer : red Model answer : {pred} Reply yes or no ."
        a, b = (be.respond(Prompt(key="k", messages=[], text=text, score_only=True, verdict_prefix="")).p_yes
                for be in (fp32, q4))
        assert 0 <= b <= 1
        diffs.append(abs(a - b))
    assert max(diffs) < P_YES_4BIT_TOLERANCE, diffs
    assert max(diffs) > 0                 # the weights really changed


def test_missing_model_folder_is_bad_input(tmp_path, cli, db_path):
    spec = _spec_file(tmp_path, tmp_path / "no-such-model", score_mode="off")
    triples = tmp_path / "t.jsonl"
    triples.write_text('{"id": "1", "question": "q", "answer": "a", "prediction": "p"}\n')
    r = cli("judge", "--db", db_path, "--input", triples, "--judge", spec)
    assert r.code == 2, r.err
    assert "no-such-model" in r.err and "cannot load" in r.err
