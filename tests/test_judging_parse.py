"""Strict parsing of judge outputs: only the expected form is scored; a completion becomes a Verdict."""

import pytest

from vlmdyn_cli.judging.spec import load_spec
from vlmdyn_cli.judging.verdict import Completion, Scores, from_completion, parse_output


@pytest.mark.parametrize("text,verdict,scores", [
    ("{'p': 'yes', 'MS': 5, 'MD': 4, 'H': 3}", "yes", (5, 4, 3)),
    ('{"p": "no", "MS": 1, "MD": 2, "H": 1}', "no", (1, 2, 1)),
    ("  {'MD': 3, 'H': 2, 'p': 'no', 'MS': 4}\n", "no", (4, 3, 2)),
    ("```python\n{'p': 'yes', 'MS': 2, 'MD': 2, 'H': 2}\n```", "yes", (2, 2, 2)),
    ("```\n{'p': 'Yes', 'MS': 5, 'MD': 5, 'H': 5}\n```", "yes", (5, 5, 5)),
])
def test_rubric_accepts_only_the_dict(text, verdict, scores):
    p = parse_output(text, "rubric-dict")
    assert (p.verdict, p.scores, p.problem) == (verdict, Scores(*scores), None)


@pytest.mark.parametrize("text,why", [
    ("Sure! {'p': 'yes', 'MS': 5, 'MD': 4, 'H': 3}", "not a dict"),
    ("{'p': 'yes', 'MS': 5, 'MD': 4, 'H': 3} I think", "not a dict"),
    ("{'p': 'maybe', 'MS': 5, 'MD': 4, 'H': 3}", "'p' must be"),
    ("{'p': 'yes', 'MS': 6, 'MD': 4, 'H': 3}", "'MS' must be an integer 1-5"),
    ("{'p': 'yes', 'MS': 0, 'MD': 4, 'H': 3}", "'MS' must be"),
    ("{'p': 'yes', 'MS': 4.0, 'MD': 4, 'H': 3}", "'MS' must be"),
    ("{'p': 'yes', 'MS': True, 'MD': 4, 'H': 3}", "'MS' must be"),
    ("{'p': 'yes', 'MS': '5', 'MD': 4, 'H': 3}", "'MS' must be"),
    ("{'p': 'yes', 'MS': 5, 'MD': 4}", "missing keys ['H']"),
    ("{'p': 'yes', 'MS': 5, 'MD': 4, 'H': 3, 'why': 'x'}", "unexpected keys ['why']"),
    ("{'p': 'yes', 'MS': 5, 'MD': 4, 'H': 3", "not a dict"),
    ("{'p': 'yes', 'MS': 5, 'MD': 4, 'H': __import__('os')}", "not a valid dict literal"),
    ("yes", "not a dict"),
    ("", "empty output"),
    (None, "empty output"),
])
def test_rubric_rejects_everything_else_with_a_reason(text, why):
    p = parse_output(text, "rubric-dict")
    assert p.verdict is None and p.scores is None
    assert why in p.problem


def test_verdict_dict_and_yesno():
    assert parse_output("{'p': 'no'}", "verdict-dict").verdict == "no"
    assert parse_output("{'p': 'no', 'MS': 1, 'MD': 1, 'H': 1}", "verdict-dict").verdict is None
    assert parse_output(" Yes.\n", "yesno").verdict == "yes"
    assert parse_output("no", "yesno").verdict == "no"
    for bad in ("yes, it is", "nope", "{'p': 'yes'}", "y"):
        assert parse_output(bad, "yesno").verdict is None, bad
    with pytest.raises(ValueError):
        parse_output("yes", "json")


def test_a_completion_becomes_a_verdict_strictly():
    rubric = load_spec("gpt-4o-mini")
    ok = from_completion(rubric, Completion("k", text="{'p': 'no', 'MS': 2, 'MD': 3, 'H': 4}", p_yes=0.2,
                                            prompt_tokens=500, completion_tokens=18, cost_usd=1e-4,
                                            resolved_model="m-1"))
    assert (ok.key, ok.status, ok.verdict, ok.scores, ok.p_yes, ok.raw, ok.reason) == \
        ("k", "scored", "no", Scores(2, 3, 4), 0.2, "{'p': 'no', 'MS': 2, 'MD': 3, 'H': 4}", None)
    assert (ok.prompt_tokens, ok.completion_tokens, ok.cost_usd, ok.resolved_model) == (500, 18, 1e-4, "m-1")
    prose = from_completion(rubric, Completion("k", text="It is right."))
    assert (prose.status, prose.verdict, prose.raw) == ("unscored", None, "It is right.")
    assert prose.reason.startswith("parse: not a dict")
    failed = from_completion(rubric, Completion("k", error="HTTP 500: boom"))
    assert (failed.status, failed.verdict, failed.reason, failed.raw) == ("unscored", None, "HTTP 500: boom", None)


def test_score_mode_only_thresholds_p_yes_and_never_guesses():
    gemma = load_spec("gemma-local")                      # score_mode = "only", threshold 0.5
    assert gemma.score_mode == "only"
    yes = from_completion(gemma, Completion("k", p_yes=0.5))
    no = from_completion(gemma, Completion("k", text=" no", p_yes=0.4999))
    assert (yes.status, yes.verdict, no.verdict, no.raw) == ("scored", "yes", "no", " no")
    assert yes.reason == "p_yes 0.5000 vs threshold 0.5"
    missing = from_completion(gemma, Completion("k", text="maybe"))
    assert (missing.status, missing.verdict) == ("unscored", None) and "P(yes)" in missing.reason
