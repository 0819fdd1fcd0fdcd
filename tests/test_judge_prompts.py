"""The built-in judges' prompts, pinned: the paper's rubric level by level (METHOD.md section 4).

Every built-in spec's template texts are quoted in ``tests/data/judge_prompts/<spec>.txt`` and their
hash is pinned here, so a prompt edit shows up as a readable diff and needs a deliberate update of
both (and a prompt change is a new judge: its spec hash changes too).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from vlmdyn_cli.judging.spec import builtin_names, load_spec

FIXTURES = Path(__file__).parent / "data" / "judge_prompts"

# sha256 of the quoted text below (rendered by `quoted`); update together with the fixture file
PINNED = {
    "gpt-4o-mini": "86f01eaa3e1a3cc2b7fd26addf66284896ce7225afeb39b07bf1f8c586830abd",
    "gpt-4o-mini-norubric": "e574c9eb57c317e3a712b8b61f432c018b8d36f31cfbd75b38dff3bda61308f6",
    "gpt-4o-mini-strict": "dc0ce9bdef838a71600c664fe266cb2dc0f84f62b6042fcaf2c03a64630ce5b5",
    "local": "86f01eaa3e1a3cc2b7fd26addf66284896ce7225afeb39b07bf1f8c586830abd",
    "gemma-local": "a90e3a2b82b560ec2f418a0faa54602ffa5a6a3ca4e831074ec5d5723dfcbeab",
}
NO_TEMPLATES = {"rules", "cascade", "lexical"}   # rules and the fitted lexical judge have no prompt; nor has the cascade of both


def quoted(spec) -> str:
    return "".join(f"=== {field} ===\n{text}" for field, text in sorted(spec.templates.items()))


def test_every_builtin_is_pinned_or_has_no_prompt():
    assert set(builtin_names()) == set(PINNED) | NO_TEMPLATES
    for name in NO_TEMPLATES:
        assert load_spec(name).templates == {}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_prompt_text_is_pinned(name):
    text = quoted(load_spec(name))
    assert text == (FIXTURES / f"{name}.txt").read_text(encoding="utf-8")   # the readable diff
    assert hashlib.sha256(text.encode()).hexdigest() == PINNED[name]


# ---------------------------------------------------------------- the rubric, level by level
# What METHOD.md section 4 states for every level; each phrase must be in that level's line.
LEVELS = {
    ("MS", 1): ["no major subject", "remotely similar"],
    ("MS", 2): ["a few subjects", "more than 2", "not the same"],
    ("MS", 3): ["some subjects", "(2)", "not the same"],
    ("MS", 4): ["differ", "semi-plausible", "given the context of the answer"],
    ("MS", 5): ["differ", "are plausible", "given the context of the answer"],
    ("MD", 1): ["many key details", "more than 5", "changes the meaning"],
    ("MD", 2): ["some key details", "about 5"],
    ("MD", 3): ["some non-important details", "2 to 4"],
    ("MD", 4): ["few non-important details", "(2)"],
    ("MD", 5): ["very few or no non-important details", "fewer than 2"],
    ("H", 1): ["every added detail", "implausible"],
    ("H", 2): ["some implausible details", "more than 3"],
    ("H", 3): ["few details", "about 3", "semi-plausible"],
    ("H", 4): ["very few details", "1 to 3", "are plausible"],
    ("H", 5): ["no details are added", "every added one is plausible"],
}
AROUND = [
    "evaluator of generated answers", "image-based tuple", "question", "correct answer", "prediction", "rubric",
    "integer from 1 to 5", "5 is the best",
    "Major Subjects (MS)", "Missed Details (MD)", "Hallucinations (H)",
    "Do not grade too harshly",
    "A woman in a brown shirt, holding a white purse, is hugging a bear.",
    "the major subjects are the woman and the bear", "the details are the brown shirt, the hugging and the white purse",
    "a bag and a suitcase are the same subject",
    "Focus on the meaning", "not on its exact wording",
    "p is 'yes' if the prediction could be true given the context of the correct answer, and 'no' otherwise",
    "Python-dict-like string with the keys p, MS, MD and H", "{'p': 'yes', 'MS': 5, 'MD': 4, 'H': 3}",
    "integers, not strings", "Do not write any other text",
]
# what the paper's prompt does NOT have (METHOD.md: no rule for short answers, numbers or boxes)
NOT_IN_PAPER = ["short", "number", "coordinates", "letter", "synonym", "lenient"]


def _level_lines(text: str) -> dict[tuple[str, int], str]:
    return {(m[1], int(m[2])): m[3] for m in re.finditer(r"^\s+(MS|MD|H) ([1-5]): (.+)$", text, re.M)}


def test_the_paper_rubric_states_every_level_criterion():
    text = load_spec("gpt-4o-mini").templates["system_template"]
    lines = _level_lines(text)
    assert set(lines) == set(LEVELS), "exactly the 15 levels, each on its own line"
    for level, phrases in LEVELS.items():
        for p in phrases:
            assert p in lines[level], f"{level}: {p!r} missing from {lines[level]!r}"
    assert "semi-plausible" not in lines[("MS", 5)] and "semi-plausible" not in lines[("H", 4)]
    for p in AROUND:
        assert p in text, p
    low = text.lower()
    for word in NOT_IN_PAPER:
        assert word not in low, f"{word!r}: the paper's prompt has no such rule"


def test_local_uses_the_same_paper_prompt_and_item():
    paper, local = load_spec("gpt-4o-mini"), load_spec("local")
    assert local.templates == paper.templates and local.output == "rubric-dict"


def test_norubric_is_the_paper_prompt_without_the_rubric():
    paper = load_spec("gpt-4o-mini").templates
    nor = load_spec("gpt-4o-mini-norubric").templates
    text = nor["system_template"]
    assert nor["user_template"] == paper["user_template"]
    first = paper["system_template"].split("Grade the prediction")[0]
    assert text.startswith(first)   # the same evaluator role and items
    assert "p is 'yes' if the prediction could be true given the context of the correct answer" in text
    assert "{'p': 'yes'}" in text and "Do not write any other text" in text
    for word in ("MS", "MD", "Hallucination", "rubric", "score", "woman", "suitcase"):
        assert word not in text, word


def test_strict_variant_is_the_paper_prompt_plus_one_named_rule():
    paper = load_spec("gpt-4o-mini").templates["system_template"]
    strict = load_spec("gpt-4o-mini-strict")
    text = strict.templates["system_template"]
    head, sep, tail = paper.partition("Verdict:")
    assert text.startswith(head) and text.endswith(sep + tail)
    added = text[len(head):-len(sep + tail)]
    assert added.startswith("Stricter than the rubric alone") and "short" in added and added.count("\n\n") == 1
    assert strict.name == "gpt-4o-mini-strict" and strict.hash != load_spec("gpt-4o-mini").hash


def test_gemma_plain_prompt_is_untouched():
    text = load_spec("gemma-local").templates["text_template"]
    assert text.rstrip().endswith("Same meaning:") and "Student answer: {prediction}" in text
