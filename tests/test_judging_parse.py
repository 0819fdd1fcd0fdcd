"""Strict parsing of judge outputs: only the expected form is scored."""

import pytest

from vlmdyn_cli.judging.parse import parse_output


@pytest.mark.parametrize("text,verdict,scores", [
    ("{'p': 'yes', 'MS': 5, 'MD': 4, 'H': 3}", "yes", (5, 4, 3)),
    ('{"p": "no", "MS": 1, "MD": 2, "H": 1}', "no", (1, 2, 1)),
    ("  {'MD': 3, 'H': 2, 'p': 'no', 'MS': 4}\n", "no", (4, 3, 2)),
    ("```python\n{'p': 'yes', 'MS': 2, 'MD': 2, 'H': 2}\n```", "yes", (2, 2, 2)),
    ("```\n{'p': 'Yes', 'MS': 5, 'MD': 5, 'H': 5}\n```", "yes", (5, 5, 5)),
])
def test_rubric_accepts_only_the_dict(text, verdict, scores):
    p = parse_output(text, "rubric-dict")
    assert (p.status, p.verdict, (p.ms, p.md, p.h)) == ("scored", verdict, scores)


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
    assert p.status == "unscored" and p.verdict is None
    assert why in p.reason


def test_verdict_dict_and_yesno():
    assert parse_output("{'p': 'no'}", "verdict-dict").verdict == "no"
    assert parse_output("{'p': 'no', 'MS': 1, 'MD': 1, 'H': 1}", "verdict-dict").status == "unscored"
    assert parse_output(" Yes.\n", "yesno").verdict == "yes"
    assert parse_output("no", "yesno").verdict == "no"
    for bad in ("yes, it is", "nope", "{'p': 'yes'}", "y"):
        assert parse_output(bad, "yesno").status == "unscored", bad
    with pytest.raises(ValueError):
        parse_output("yes", "json")
