"""The deterministic rules judge: decides short answers, refuses open-ended ones.

Rules, tried in order (the first that applies decides):

box       the reference is a box [x1, y1, x2, y2]: the first box in the prediction must
          overlap it with IoU >= 0.5 (no box in the prediction -> no)
degenerate  the prediction is a generation loop (one word four times in a row, or half of
          six or more words) -> no
yes/no    the reference is yes or no: the prediction's leading yes/no must match; a
          prediction with no yes/no/negation word and no word of the question -> no
polar     the reference is not yes/no but the prediction is only "yes" or "no" -> no
letter    the question lists lettered options and the reference is a letter
number    the reference is a number: the prediction's only number must equal it; a short
          prediction with no number (and no "some", "several"...) -> no
exact     normalised exact match -> yes
list      the reference enumerates short items ("a, b and c"): a prediction containing it
          -> yes; a prediction that is itself such a list must have the same items (in the
          same order when the question asks for one)
          -- longer references and explanation questions stop here: "cannot decide" --
contain   the reference is contained in a short prediction -> yes
conflict  the prediction names another member of a closed set than the reference: another
          colour or shape, or the opposite (left/right, top/bottom, small/large...) -> no
contain-reverse  the prediction is part of the reference -> yes (confidence 0.7)
literal   the question asks to read text (a title, an author, what is written) and the
          short prediction is not that text -> no
disjoint  one- or two-word reference and prediction with no word in common -> no
          (confidence 0.75: synonyms such as sofa / couch look the same)
Anything else -> "cannot decide": unscored, never "no".

Each decision carries an explicit confidence; the rules spec leaves decisions under
``min_confidence`` unscored ("cannot decide"), and the cascade hands them to its LLM stage.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.judging.backends.base import Item, JudgeBackend, Options
from vlmdyn_cli.judging.normalize import as_number, contains, normalize, numbers_in
from vlmdyn_cli.judging.references import decode
from vlmdyn_cli.judging.verdict import Verdict, decided, unscored

_NUM = r"-?\d+(?:\.\d+)?"
_BOX = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
_OPTION_LINE = re.compile(r"(?:^|\n)\s*\(?([A-H])[\).:]\s+\S")
_LETTER_ANSWER = re.compile(r"^\(?([A-H])\)?[.:]?$")
_LEAD_LETTER = re.compile(r"^(?i:the\s+)?(?i:(?:correct\s+)?(?:answer|option)\s*(?:is)?\s*:?\s*)?\(?([A-H])\)?(?:[.:,)\s]|$)")
_EXPLAIN = re.compile(r"\b(why|explain|describe|what might|what could|how might|how could)\b", re.I)


_POLAR = {"yes", "no", "not", "yeah", "nope", "true", "false", "correct", "incorrect", "never", "none"}


def _degenerate(tokens: list[str]) -> str | None:
    """Why the tokens look like a generation loop, or None."""
    run = 1
    for a, b in zip(tokens, tokens[1:]):
        run = run + 1 if a == b else 1
        if run >= 4:
            return f"'{a}' repeated {run}+ times in a row"
    if len(tokens) >= 6:
        top = max(set(tokens), key=tokens.count)
        if tokens.count(top) * 2 >= len(tokens):
            return f"'{top}' is {tokens.count(top)} of {len(tokens)} words"
    return None


COLOURS = set("red orange yellow green blue purple pink brown black white gray grey silver gold "
               "beige tan violet cyan magenta maroon navy teal".split())
# (square/rectangle and circle/oval are left out: one is often a fair name for the other)
SHAPES = set("circle square triangle diamond star hexagon pentagon heart cross "
             "circles squares triangles diamonds stars hexagons".split())
_SAME_COLOUR = {"violet": "purple"}   # (grey/gray is unified by normalize)
# opposites: words of one side conflict with words of the other
_OPPOSITES = [({"left"}, {"right"}), ({"top", "upper", "above"}, {"bottom", "lower", "below", "beneath"}),
              ({"small", "smaller", "little", "tiny"}, {"large", "larger", "big", "bigger", "huge"}),
              ({"more"}, {"fewer", "less"}), ({"front"}, {"behind", "back"}),
              ({"inside"}, {"outside"}), ({"fiction"}, {"nonfiction"}), ({"day", "daytime"}, {"night"}),
              ({"open"}, {"closed"}), ({"empty"}, {"full"}), ({"sitting"}, {"standing"})]
_LITERAL = re.compile(r"\b(title|author|wrote|written|write|say|says|read|spell|brand|label|printed|"
                      r"(?:name|number|word|text) (?:on|of|in))\b", re.I)
_LIST_SPLIT = re.compile(r",|;|\band\b|&", re.I)
_ORDERED = re.compile(r"\b(order|from left to right|from right to left|from top to bottom|first|sequence)\b", re.I)
_VAGUE = {"some", "several", "few", "many", "lot", "lots", "multiple", "couple", "most", "all", "both"}
_ZERO_WORDS = {"none", "nothing", "0", "zero", "no one", "nobody"}


@dataclass
class RuleDecision:
    verdict: str | None          # yes / no, None when the rules cannot decide
    confidence: float            # 0..1; 0 when undecided
    rule: str                    # which rule applied
    reason: str                  # a human-readable explanation


def _box(text: str) -> tuple[float, ...] | None:
    m = _BOX.search(text)
    return tuple(float(x) for x in m.groups()) if m else None


def iou(a, b) -> float:
    ax1, ay1, ax2, ay2 = min(a[0], a[2]), min(a[1], a[3]), max(a[0], a[2]), max(a[1], a[3])
    bx1, by1, bx2, by2 = min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])
    iw, ih = max(0.0, min(ax2, bx2) - max(ax1, bx1)), max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else (1.0 if a == b else 0.0)


def _conflict(ref_t: list[str], pred_t: list[str]) -> str | None:
    """A closed-set word of the reference the prediction replaces by another, or None."""
    ref, pred = set(ref_t), set(pred_t)
    ref |= {_SAME_COLOUR[w] for w in ref if w in _SAME_COLOUR}
    pred |= {_SAME_COLOUR[w] for w in pred if w in _SAME_COLOUR}
    for closed in (COLOURS, SHAPES):
        missing, other = (ref & closed) - pred, (pred & closed) - ref
        if missing and other:
            return f"prediction says {sorted(other)[0]} where the reference says {sorted(missing)[0]}"
    for a, b in _OPPOSITES:
        for mine, theirs in ((a, b), (b, a)):
            if ref & mine and not pred & mine and pred & theirs:
                return f"prediction says {sorted(pred & theirs)[0]}, the reference {sorted(ref & mine)[0]}"
    return None


def _items(text: str) -> list[str] | None:
    """The short items of an enumeration "a, b and c" (normalised), or None if it is not one."""
    parts = [normalize(p) for p in _LIST_SPLIT.split(text)]
    parts = [p for p in parts if p]
    if len(parts) < 2 or any(len(p.split()) > 3 for p in parts):
        return None
    return parts


def decide(question: str, answer: str, prediction: str, *, iou_threshold: float = 0.5,
           max_reference_words: int = 5) -> RuleDecision:
    ref_n, pred_n = normalize(answer), normalize(prediction)
    ref_t, pred_t = ref_n.split(), pred_n.split()
    if not prediction.strip():
        return RuleDecision("no", 1.0, "empty", "the prediction is empty")

    ref_box = _box(answer)
    if ref_box is not None and _BOX.fullmatch(answer.strip().rstrip(".")):
        pb = _box(prediction)
        if pb is None:
            return RuleDecision("no", 0.95, "box", "the reference is a box, the prediction has none")
        v = iou(ref_box, pb)
        return RuleDecision("yes" if v >= iou_threshold else "no", 1.0, "box",
                            f"IoU {v:.2f} {'>=' if v >= iou_threshold else '<'} {iou_threshold}")

    loop = _degenerate(pred_t)
    if loop and ref_n != pred_n:
        return RuleDecision("no", 0.95, "degenerate", loop)

    if ref_n in ("yes", "no"):
        lead = pred_t[0] if pred_t else ""
        if not (set(pred_t) & _POLAR) and not (set(pred_t) & set(normalize(question).split())) \
                and "n't" not in prediction.lower():
            return RuleDecision("no", 0.9, "yes/no", "the reference is yes/no; the prediction says neither "
                                "and shares no word with the question")
        if lead in ("yes", "no"):
            return RuleDecision("yes" if lead == ref_n else "no", 1.0, "yes/no",
                                f"prediction says {lead}, reference {ref_n}")
        return RuleDecision(None, 0.0, "yes/no", "the reference is yes/no but the prediction does not start with yes or no")

    if pred_n in ("yes", "no") and not (pred_n == "no" and ref_n in _ZERO_WORDS):
        return RuleDecision("no", 0.9, "polar", f"the reference is not yes/no ({answer.strip()[:40]}), "
                            f"the prediction only says {pred_n}")

    m = _LETTER_ANSWER.match(answer.strip())
    if m and _OPTION_LINE.search(question):
        letter = m.group(1)
        pm = _LEAD_LETTER.match(prediction.strip())
        if pm:
            return RuleDecision("yes" if pm.group(1) == letter else "no", 1.0, "letter",
                                f"prediction picks {pm.group(1)}, reference {letter}")
        return RuleDecision(None, 0.0, "letter", "multiple choice but the prediction names no option letter")

    ref_num = as_number(answer)
    if ref_num is not None:
        nums = numbers_in(prediction)
        if not nums and ref_num == 0 and pred_n in _ZERO_WORDS:
            return RuleDecision("yes", 0.85, "number", f"prediction '{pred_n}' means 0")
        if not nums and ref_num != 0 and len(pred_t) <= 3 and not set(pred_t) & _VAGUE:
            return RuleDecision("no", 0.85, "number", "the reference is a number, the short prediction has none")
        if len(set(nums)) == 1:
            ok = abs(nums[0] - ref_num) < 1e-9
            return RuleDecision("yes" if ok else "no", 1.0, "number",
                                f"prediction number {nums[0]:g}, reference {ref_num:g}")
        if not nums:
            return RuleDecision(None, 0.0, "number", "the reference is a number, the prediction has none")
        if ref_num not in nums:
            return RuleDecision("no", 0.9, "number", "none of the prediction's numbers equals the reference")
        return RuleDecision(None, 0.0, "number", "the prediction names several numbers")

    if ref_n == pred_n:
        return RuleDecision("yes", 1.0, "exact", "normalised exact match")
    contained = contains(pred_t, ref_t) and len(pred_t) <= 2 * len(ref_t) + 6   # ref inside a short prediction
    ref_items = None if _EXPLAIN.search(question) and not _ORDERED.search(question) else _items(answer)
    if ref_items is not None:
        longest = max(len(i.split()) for i in ref_items)
        # a single short item that is one of two ("red" for "red and white") may well be accepted:
        # only a wrong item, or one of three or more, decides
        single = bool(pred_n) and len(pred_t) <= 3 and (len(ref_items) >= 3 or pred_n not in ref_items)
        pred_items = _items(prediction) or ([pred_n] if single else None)
        if contained:
            return RuleDecision("yes", 0.9, "list", f"the prediction lists the {len(ref_items)} items")
        if pred_items is not None and all(len(i.split()) <= longest for i in pred_items):
            if pred_items == ref_items:
                return RuleDecision("yes", 0.95, "list", f"the same {len(ref_items)} items in the same order")
            if sorted(pred_items) == sorted(ref_items):
                if _ORDERED.search(question):
                    return RuleDecision("no", 0.85, "list", "the same items in another order; the question asks for an order")
                return RuleDecision("yes", 0.85, "list", f"the same {len(ref_items)} items")
            missing = [i for i in ref_items if i not in pred_items]
            extra = [i for i in pred_items if i not in ref_items]
            return RuleDecision("no", 0.85, "list", f"items differ: {len(missing)} of {len(ref_items)} missing"
                                + (f" (e.g. {missing[0]})" if missing else "")
                                + (f", {len(extra)} not in the reference (e.g. {extra[0]})" if extra else ""))
    if len(ref_t) > max_reference_words or (_EXPLAIN.search(question) and len(ref_t) > 3):
        return RuleDecision(None, 0.0, "open-ended",
                            f"open-ended item (reference of {len(ref_t)} words or an explanation question)")
    if contained:
        return RuleDecision("yes", 0.85, "contain", "the reference is contained in the prediction")
    conflict = _conflict(ref_t, pred_t)
    if conflict:
        return RuleDecision("no", 0.9, "conflict", conflict)
    if contains(ref_t, pred_t):
        return RuleDecision("yes", 0.7, "contain-reverse", "the prediction is part of the reference")
    if _LITERAL.search(question) and len(pred_t) <= max(4, 2 * len(ref_t)):
        return RuleDecision("no", 0.85, "literal", "the question asks to read text; the prediction is not that text")
    if len(ref_t) <= 2 and len(pred_t) <= 2 and not set(ref_t) & set(pred_t):
        # could still be a synonym (sofa / couch): below the default confidence bar
        return RuleDecision("no", 0.75, "disjoint", "short answers with no word in common")
    return RuleDecision(None, 0.0, "undecided", "no rule is confident for this pair")


def decide_any(question: str, answer: str, prediction: str, **kw) -> RuleDecision:
    """``decide`` over an item's references (judging/references.py): right when it matches one of
    them (the most confident "yes"), wrong only when every one says no (the least confident "no")."""
    refs = decode(answer)
    if len(refs) == 1:
        return decide(question, answer, prediction, **kw)
    ds = [decide(question, r, prediction, **kw) for r in refs]
    yes = [d for d in ds if d.verdict == "yes"]
    if yes:
        return max(yes, key=lambda d: d.confidence)
    if all(d.verdict == "no" for d in ds):
        return min(ds, key=lambda d: d.confidence)
    return next(d for d in ds if d.verdict is None)


def rule_verdict(key: str, d: RuleDecision, bar: float, latency_s: float) -> Verdict:
    """A rule's decision as a verdict: scored when it leans with confidence >= ``bar``, else
    "cannot decide" (unscored, with the lean in the reason)."""
    usage = dict(resolved_model="rules", prompt_tokens=0, completion_tokens=0, cost_usd=0.0, latency_s=latency_s)
    if d.verdict is not None and d.confidence >= bar:
        return decided(key, d.verdict, reason=f"{d.rule}: {d.reason}", **usage)
    why = f"cannot decide ({d.rule}): {d.reason}"
    if d.verdict is not None:
        why += f" [leaning {d.verdict}, confidence {d.confidence:.2f} < {bar}]"
    return unscored(key, why, **usage)


@dataclass(frozen=True)
class RulesOptions(Options):
    iou_threshold: float = 0.5         # a predicted box is right from this IoU with the reference
    max_reference_words: int = 5       # longer references are open-ended: cannot decide

    def __post_init__(self):
        if not 0 < self.iou_threshold <= 1 or self.max_reference_words < 0:
            raise BadInput(f"rules options: iou_threshold must be in (0, 1] and max_reference_words >= 0 (got "
                           f"iou_threshold={self.iou_threshold}, max_reference_words={self.max_reference_words})")


class RulesBackend(JudgeBackend):
    """The rules judge: no model, no network, no cost."""

    Options = RulesOptions

    def verdict(self, item: Item, bar: float) -> Verdict:
        t0 = time.perf_counter()
        d = decide_any(item.question, item.answer, item.prediction, iou_threshold=self.options.iou_threshold,
                   max_reference_words=self.options.max_reference_words)
        return rule_verdict(item.key, d, bar, time.perf_counter() - t0)

    def run(self, items, on_verdict) -> None:
        bar = float(self.spec.decoding.get("min_confidence", 0.8))
        for item in items:
            on_verdict(self.verdict(item, bar))
