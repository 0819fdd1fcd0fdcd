"""Answer normalisation shared by the rules judge, string match and the fitted judge's features.

lowercase -> thousands separators dropped (1,000 -> 1000) -> number words to digits -> punctuation removed (decimal points kept)
-> articles dropped -> British spellings to American (grey -> gray) -> whitespace collapsed.  "The Two red cars." -> "2 red cars".
"""

from __future__ import annotations

import re
import unicodedata

_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
          "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
NUMBER_WORDS: dict[str, int] = {w: i for i, w in enumerate(_UNITS)} | _TENS | {"hundred": 100, "none": 0}
ARTICLES = {"a", "an", "the"}
# British/American spellings that would otherwise make two equal answers differ
SPELLING = {"grey": "gray", "colour": "color", "colours": "colors", "coloured": "colored", "centre": "center",
            "theatre": "theater", "aeroplane": "airplane", "favourite": "favorite", "tyre": "tire"}

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_PUNCT = re.compile(r"[^\w\s.\-]|_")
_DOT_NOT_DECIMAL = re.compile(r"(?<!\d)\.|\.(?!\d)")
_DASH_NOT_SIGN = re.compile(r"(?<=\S)-|-(?!\d)")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")


def _canonical_word(tok: str) -> str:
    """A number word as digits, a British spelling as American, anything else as is."""
    if tok in NUMBER_WORDS and tok != "none":
        return str(NUMBER_WORDS[tok])
    return SPELLING.get(tok, tok)


def normalize(text: str) -> str:
    """Canonical form of a short answer for exact/containment comparison."""
    t = _THOUSANDS.sub("", text.lower()).replace(",", " ")
    t = _PUNCT.sub(" ", t)
    t = _DOT_NOT_DECIMAL.sub(" ", t)
    t = _DASH_NOT_SIGN.sub(" ", t)
    toks = [_canonical_word(w) for w in t.split() if w not in ARTICLES]
    # "twenty one" -> "21"
    out: list[str] = []
    for w in toks:
        if out and w.isdigit() and int(w) < 10 and out[-1].isdigit() and int(out[-1]) % 10 == 0 \
                and 20 <= int(out[-1]) < 100:
            out[-1] = str(int(out[-1]) + int(w))
        else:
            out.append(w)
    return " ".join(out)


def repair(text: str) -> str:
    """Text as a reader sees it: UTF-8 read as Windows-1252 decoded back ("DÃ¡in" -> "Dáin"), then
    accents dropped ("Dáin" -> "Dain"), so a reference scraped with broken encoding or written with
    accents matches a plain prediction."""
    if any(0x80 <= ord(c) < 0x100 for c in text):
        try:
            text = text.encode("cp1252").decode("utf-8")
        except UnicodeError:
            pass
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def tokens(text: str) -> list[str]:
    return normalize(text).split()


def as_number(text: str) -> float | None:
    """The number a normalised short answer is, or None."""
    n = normalize(text)
    return float(n) if _NUMBER.match(n) else None


def numbers_in(text: str) -> list[float]:
    return [float(w) for w in tokens(text) if _NUMBER.match(w)]


def contains(hay: list[str], needle: list[str]) -> bool:
    """``needle`` occurs in ``hay`` as a run of whole tokens (an empty needle never does)."""
    n = len(needle)
    return n > 0 and any(hay[i:i + n] == needle for i in range(len(hay) - n + 1))


def one_contains_other(a: str, b: str) -> bool:
    """After normalisation, one answer occurs in the other as whole words (neither empty)."""
    ta, tb = tokens(a), tokens(b)
    return bool(ta and tb) and (contains(ta, tb) or contains(tb, ta))
