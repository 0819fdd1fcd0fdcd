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

import re

_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11",
    "twelve": "12", "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16",
    "seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30",
    "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80",
    "ninety": "90", "hundred": "100",
}
_ARTICLES = {"a", "an", "the"}
# A thousands separator: "1,000" -> "1000" (but "0.5,0.9" is a list).
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?![\d.]))")
# Punctuation, except a decimal point with a digit on both sides.
_PUNCT = re.compile(r"(?!(?<=\d)\.(?=\d))[^\w\s]|_")


def normalize(text: str) -> str:
    """Canonical form of a short answer for string matching."""
    t = _PUNCT.sub(" ", _THOUSANDS.sub("", text.lower()))
    words = [_NUMBER_WORDS.get(w, w) for w in t.split() if w not in _ARTICLES]
    return " ".join(words)


def exact(prediction: str, reference: str) -> bool:
    return prediction.strip() == reference.strip()


def normalised(prediction: str, reference: str) -> bool:
    return normalize(prediction) == normalize(reference)


def contains(prediction: str, reference: str) -> bool:
    p, r = normalize(prediction).split(), normalize(reference).split()
    if not p or not r:
        return False
    short, long_ = (p, r) if len(p) <= len(r) else (r, p)
    n = len(short)
    return any(long_[i:i + n] == short for i in range(len(long_) - n + 1))


def score(prediction: str, reference: str) -> dict[str, bool]:
    """All three levels at once: {"exact", "normalised", "contains"}."""
    return {
        "exact": exact(prediction, reference),
        "normalised": normalised(prediction, reference),
        "contains": contains(prediction, reference),
    }


LEVELS = ("exact", "normalised", "contains")
