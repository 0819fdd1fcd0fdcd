"""String-match scoring of a prediction against a reference answer.

A quick correctness signal that needs no judge model. It is *string match,
not a judgement*: it misses paraphrases and accepts lucky substrings, so
every table that shows it says so.

``normalize`` lowercases, maps number words to digits, drops the articles
a/an/the, removes thousands separators (``1,000`` -> ``1000``), turns all
other punctuation into spaces except a decimal point between two digits (so
``[0.12,0.40]`` becomes ``0.12 0.40``), and collapses whitespace.

Three levels, each implied by the one before:

- ``exact``: the stripped strings are identical;
- ``normalised``: the normalised strings are identical;
- ``contains``: one normalised answer occurs in the other as whole words
  (``"red"`` in ``"it is red"``), neither empty.
"""

from __future__ import annotations

# One normaliser for the whole project: the rules judge and string match agree.
from vlmdyn_cli.judging.normalize import normalize, one_contains_other  # noqa: E402


def exact(prediction: str, reference: str) -> bool:
    return prediction.strip() == reference.strip()


def normalised(prediction: str, reference: str) -> bool:
    return normalize(prediction) == normalize(reference)


def contains(prediction: str, reference: str) -> bool:
    return one_contains_other(prediction, reference)


def score(prediction: str, reference: str) -> dict[str, bool]:
    """All three levels at once: {"exact", "normalised", "contains"}."""
    return {
        "exact": exact(prediction, reference),
        "normalised": normalised(prediction, reference),
        "contains": contains(prediction, reference),
    }


LEVELS = ("exact", "normalised", "contains")
