"""Cheap signals a fitted judge combines (``vlmdyn calibrate fit --features ...``).

Each feature maps a (question, references, prediction) item to one float. A match
feature is the best value over the item's references (judging/references.py), so
"save" matches an item whose references are ["savior", "save", "rescue"].

* text features are pure functions of the item (``TEXT_FEATURES``), microseconds each;
* model features need a model over a batch of items (``MODEL_FEATURES``):
  ``local-p_yes`` runs the local GGUF judge in score mode, ``minilm-cos`` /
  ``minilm-qcos`` embed the texts with all-MiniLM-L6-v2 (judging/embed.py).

Feature groups name the usual sets: ``lexical`` (every text feature), ``minilm``.
The fitted backend computes features when judging; calibration/fit.py when fitting.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from functools import lru_cache
from typing import Callable, Sequence

from vlmdyn_cli.errors import BadInput, did_you_mean
from vlmdyn_cli.judging.backends.base import Item
from vlmdyn_cli.judging.normalize import contains, numbers_in, repair, tokens as _plain_tokens
from vlmdyn_cli.judging.references import decode
from vlmdyn_cli.judging.rules import decide_any

# function words that say nothing about whether two answers agree
STOPWORDS = frozenset("of in on at to for by with from and or is are was were be been it its this that "
                      "which who whom what when where why how as".split())
HEDGE = re.compile(r"\b(unknown|not (?:known|sure|clear|specified|available|mentioned)|no (?:information|answer|"
                   r"data)|i don'?t know|cannot|can'?t|unclear)\b", re.I)


@lru_cache(maxsize=8192)
def tokens(text: str) -> tuple[str, ...]:
    """Normalised words (judging/normalize.py) of the text with broken encoding repaired and accents
    dropped. Cached: every feature of an item reads the same three texts."""
    return tuple(_plain_tokens(repair(text)))


@lru_cache(maxsize=4096)
def _refs_of(answer: str) -> tuple[tuple[str, ...], ...]:
    out = [tokens(r) for r in decode(answer)]
    return tuple(t for t in out if t) or ((),)


def _refs(it: Item) -> tuple[tuple[str, ...], ...]:
    """The item's references, tokenised (empty ones dropped; at least one, possibly empty)."""
    return _refs_of(it.answer)


def _content(words: Sequence[str]) -> list[str]:
    return [w for w in words if w not in STOPWORDS]


def _overlap(ref: Sequence[str], pred: Sequence[str]) -> tuple[float, float, float]:
    """Token F1, precision, recall of a prediction against one reference (multiset overlap)."""
    if not ref or not pred:
        return 0.0, 0.0, 0.0
    common = sum((Counter(ref) & Counter(pred)).values())
    if common == 0:
        return 0.0, 0.0, 0.0
    prec, rec = common / len(pred), common / len(ref)
    return 2 * prec * rec / (prec + rec), prec, rec


def _best(it: Item, score: Callable[[Sequence[str], Sequence[str], Sequence[str]], float]) -> float:
    """max over references of score(reference tokens, prediction tokens, question tokens)."""
    p, q = tokens(it.prediction), tokens(it.question)
    return max(score(r, p, q) for r in _refs(it))


def _key_words(ref: Sequence[str], q: Sequence[str]) -> Sequence[str]:
    """The reference's content words the question does not already give away (else all of them)."""
    return [w for w in _content(ref) if w not in q] or _content(ref) or ref


# endings dropped so that word forms compare equal (sharecroppers / sharecropping -> sharecropp)
_ENDINGS = ("ations", "ation", "ings", "ing", "ers", "er", "ies", "es", "ed", "s", "ly")


def _stem(word: str) -> str:
    """The word without its first matching ending, keeping at least four letters."""
    for end in _ENDINGS:
        if len(word) > len(end) + 3 and word.endswith(end):
            return word[:-len(end)]
    return word


def _trigrams(words: Sequence[str]) -> set[str]:
    text = f" {' '.join(words)} "
    return {text[i:i + 3] for i in range(len(text) - 2)}


def _similar(a: str, b: str) -> bool:
    return a == b or (len(a) > 3 and len(b) > 3 and difflib.SequenceMatcher(None, a, b).ratio() >= 0.8)


def f_exact(it: Item) -> float:
    return _best(it, lambda r, p, q: float(bool(r) and r == p))


def f_contains(it: Item) -> float:
    """One of reference and prediction occurs in the other as whole words."""
    return _best(it, lambda r, p, q: float(contains(p, r) or contains(r, p)))


def f_ref_in_pred(it: Item) -> float:
    return _best(it, lambda r, p, q: float(contains(p, r)))


def f_pred_in_ref(it: Item) -> float:
    return _best(it, lambda r, p, q: float(contains(r, p)))


def f_token_f1(it: Item) -> float:
    return _best(it, lambda r, p, q: _overlap(r, p)[0])


def f_token_precision(it: Item) -> float:
    return _best(it, lambda r, p, q: _overlap(r, p)[1])


def f_token_recall(it: Item) -> float:
    return _best(it, lambda r, p, q: _overlap(r, p)[2])


def f_key_recall(it: Item) -> float:
    """Share of the reference's key words (content words not in the question) in the prediction."""
    def score(r, p, q):
        key = _key_words(r, q)
        return sum(w in p for w in key) / len(key) if key else 0.0
    return _best(it, score)


def f_fuzzy_recall(it: Item) -> float:
    """As key-recall, a word also matching a close spelling (difflib ratio >= 0.8)."""
    def score(r, p, q):
        key = _key_words(r, q)
        return sum(any(_similar(w, x) for x in p) for w in key) / len(key) if key else 0.0
    return _best(it, score)


def f_stem_recall(it: Item) -> float:
    """As key-recall, comparing word stems (plural, -ing, -er... forms match)."""
    def score(r, p, q):
        key = [_stem(w) for w in _key_words(r, q)]
        stems = {_stem(w) for w in p}
        return sum(w in stems for w in key) / len(key) if key else 0.0
    return _best(it, score)


def f_stem_precision(it: Item) -> float:
    """As novel-precision, comparing word stems."""
    def score(r, p, q):
        added = [_stem(w) for w in _content(p) if w not in q]
        ref = {_stem(w) for w in r}
        return sum(w in ref for w in added) / len(added) if added else 0.0
    return _best(it, score)


def f_trigram_recall(it: Item) -> float:
    """Share of the character trigrams of the reference's key words found in the prediction
    (partial spellings, compounds and word forms count in part)."""
    def score(r, p, q):
        key = _trigrams(_key_words(r, q))
        return len(key & _trigrams(p)) / len(key) if key else 0.0
    return _best(it, score)


_ASKS_WHERE = re.compile(r"\bwhere\b", re.I)


def f_asks_where(it: Item) -> float:
    """The question asks for a place: people accept a place at another granularity (a country for
    its region, a county for its state), which word overlap cannot see."""
    return float(bool(_ASKS_WHERE.search(it.question)))


def f_char_ratio(it: Item) -> float:
    """Character-level similarity of the normalised texts (difflib ratio)."""
    return _best(it, lambda r, p, q: difflib.SequenceMatcher(None, " ".join(r), " ".join(p)).ratio())


def f_len_ratio(it: Item) -> float:
    return math.log((len(tokens(it.prediction)) + 1) / (min(len(r) for r in _refs(it)) + 1))


def f_pred_len(it: Item) -> float:
    return math.log(len(tokens(it.prediction)) + 1)


def f_ref_len(it: Item) -> float:
    return math.log(min(len(r) for r in _refs(it)) + 1)


def f_hedge(it: Item) -> float:
    """The prediction declines to answer ("unknown", "not sure", "cannot ...")."""
    return float(bool(HEDGE.search(it.prediction)))


def f_numbers(it: Item) -> float:
    """+1 a reference's numbers all appear in the prediction, -1 none does, 0 the references have none."""
    refs = [numbers_in(repair(r)) for r in decode(it.answer)]
    if not any(refs):
        return 0.0
    pred = numbers_in(repair(it.prediction))
    ok = any(nums and all(any(abs(a - b) < 1e-6 for b in pred) for a in nums) for nums in refs)
    return 1.0 if ok else -1.0


def f_novel_words(it: Item) -> float:
    """log(1 + content words of the prediction that are not in the question)."""
    q = set(tokens(it.question))
    return math.log(len([w for w in _content(tokens(it.prediction)) if w not in q]) + 1)


def f_question_overlap(it: Item) -> float:
    """Share of the prediction's content words that only repeat the question."""
    q = set(tokens(it.question))
    words = _content(tokens(it.prediction))
    return sum(w in q for w in words) / len(words) if words else 0.0


def f_novel_precision(it: Item) -> float:
    """Share of what the prediction adds (its content words not in the question) that a reference
    supports; 0 when it adds nothing. An answer padded with unsupported claims scores low."""
    q = set(tokens(it.question))
    added = [w for w in _content(tokens(it.prediction)) if w not in q]
    if not added:
        return 0.0
    return max(sum(w in set(r) for w in added) / len(added) for r in _refs(it))


def f_rules(it: Item) -> float:
    """The rules judge, best over references: +confidence for yes, -confidence for no, 0 undecided."""
    d = decide_any(it.question, it.answer, it.prediction)
    return {"yes": 1.0, "no": -1.0}.get(d.verdict or "", 0.0) * d.confidence


TEXT_FEATURES: dict[str, Callable[[Item], float]] = {
    "rules": f_rules,
    "exact": f_exact,
    "contains": f_contains,
    "ref-in-pred": f_ref_in_pred,
    "pred-in-ref": f_pred_in_ref,
    "token-f1": f_token_f1,
    "token-precision": f_token_precision,
    "token-recall": f_token_recall,
    "key-recall": f_key_recall,
    "fuzzy-recall": f_fuzzy_recall,
    "char-ratio": f_char_ratio,
    "stem-recall": f_stem_recall,
    "stem-precision": f_stem_precision,
    "trigram-recall": f_trigram_recall,
    "len-ratio": f_len_ratio,
    "pred-len": f_pred_len,
    "ref-len": f_ref_len,
    "hedge": f_hedge,
    "numbers": f_numbers,
    "novel-words": f_novel_words,
    "question-overlap": f_question_overlap,
    "novel-precision": f_novel_precision,
    "asks-where": f_asks_where,
}
# feature -> what computes it over a batch: a judge spec in score mode, or the embedding model
MODEL_FEATURES: dict[str, str] = {"local-p_yes": "judge:local", "minilm-cos": "minilm", "minilm-qcos": "minilm"}
ALL_FEATURES = list(TEXT_FEATURES) + list(MODEL_FEATURES)
GROUPS: dict[str, list[str]] = {
    "lexical": [f for f in TEXT_FEATURES if f not in ("contains", "len-ratio")],   # (those two are redundant)
    "minilm": ["minilm-cos", "minilm-qcos"],
}


def expand(names: list[str]) -> list[str]:
    """Feature names with groups (``lexical``, ``minilm``) expanded, duplicates dropped, order kept."""
    out: list[str] = []
    for n in names:
        for f in GROUPS.get(n, [n]):
            if f not in out:
                out.append(f)
    return out


def check_features(names: list[str]) -> list[str]:
    valid = ", ".join(ALL_FEATURES) + "; groups: " + ", ".join(GROUPS)
    if not names:
        raise BadInput("--features needs at least one feature; valid: " + valid)
    for n in names:
        if n not in TEXT_FEATURES and n not in MODEL_FEATURES:
            raise BadInput(f"unknown feature {n!r}{did_you_mean(n, ALL_FEATURES + list(GROUPS))}; valid: {valid}")
    return names


def model_feature_values(features: list[str], items: list[Item], score_judge=None) -> dict[str, dict[str, float]]:
    """The model features among ``features`` for a batch of items: {feature: {item key: value}}
    (an item missing: it could not be computed). Each model runs once for all its features.

    ``score_judge(spec_name, items)`` gives P(yes) of a judge in score mode (the caller decides
    how: the fitted backend asks the backend directly, fitting goes through the judge cache).
    """
    out: dict[str, dict[str, float]] = {}
    wanted = [f for f in features if f in MODEL_FEATURES]
    if any(MODEL_FEATURES[f] == "minilm" for f in wanted):
        from vlmdyn_cli.judging.embed import similarity_features

        sims = similarity_features(items)
        out |= {f: {k: v[f] for k, v in sims.items()} for f in wanted if MODEL_FEATURES[f] == "minilm"}
    for f in wanted:
        if MODEL_FEATURES[f].startswith("judge:"):
            out[f] = score_judge(MODEL_FEATURES[f].split(":", 1)[1], items)
    return out
