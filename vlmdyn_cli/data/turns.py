"""Split a LLaVA conversation into QA pairs, and the dependent-turn filter.

A conversation is a list of ``{"from": "human"|"gpt", "value": str}`` turns,
human first, alternating, ending with a gpt answer. ``split_turns`` checks
that and returns ``(question, answer)`` pairs with the ``<image>`` marker
removed from the first question.

The dependent-turn filter (METHOD.md section 1: "drop conversations whose
turns depend on earlier turns") drops a whole conversation when any LATER
question (the second one onwards) only makes sense with an earlier turn.
It is deliberately conservative: it looks for explicit signs of dependence
and never fires on the templated questions that make up most of LLaVA
(short-answer VQA/GQA/OCR-VQA questions, multiple choice, bounding-box
prompts), because those were single questions packed into one conversation.

Rules, checked in this order on each later question (after removing known
template text); the first that fires names the drop reason:

1. ``back-reference``: the question points at the conversation itself:
   "you said/mentioned/described", "your (previous) answer", "the above
   answer/response", "mentioned earlier/above", "explain your answer/
   reasoning", "continue", "go on", edits of the previous answer ("make it
   shorter", "can you rewrite that ..."), and "tell me more / more details /
   elaborate / expand" when they end the question or point at "that, it,
   this, them, your ..." ("Can you elaborate on the elements of the
   picture?" is kept).
2. ``continuation``: it starts with "and/but/or", "what about", "how about",
   or asks for "what else / anything else / something else", "the other
   one", "which one" (without "of ...").
3. ``bare-follow-up``: it has no content word at all, only question words,
   pronouns, auxiliaries and generic verbs ("Why?", "How so?", "Why is that?",
   "What does it mean?", "Really?", "What is she doing?").
4. ``pronoun-only``: it refers to something by a pronoun ("he, she, they,
   them, those, these" without a noun after them, "it/this/that" as the last
   word, or "this/that" before a verb) and has at most one content word, so
   the thing referred to is not named ("Why might he be holding it?", "What color are they?",
   "Why might this be the case?"). "Is it sunny?" (weather "it") and "What is
   the purpose of this gathering?" (a named thing) are kept.

Never checked (always independent): the first question; questions ending
with a known short-answer or multiple-choice instruction; bounding-box
prompts (they carry coordinates or ask for "bounding box"/"region"); and
OCR-VQA style questions about "this book".

Known misses, accepted to stay conservative: a pronoun in the middle of an
otherwise content-free question ("Where is it located?") and implicit
comparisons ("Is the dog brown as well?") are kept. ``drop_reason`` is
stored as ``"<rule>: turn <n>"`` with n the 0-based QA index.
"""

from __future__ import annotations

import re

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.models.chat import IMAGE_TOKEN, TEMPLATE_SUFFIXES, clean_question

HUMAN, GPT = "human", "gpt"


# ---------------------------------------------------------------- splitting

def split_turns(conversations, *, where: str, has_image: bool) -> list[tuple[str, str]]:
    """Validate the turns and return (question, answer) pairs.

    ``where`` names the record in error messages (e.g. "record 12 (id 'abc')").
    """
    if not isinstance(conversations, list) or not conversations:
        raise BadInput(f"{where}: 'conversations' must be a non-empty list of turns")
    pairs: list[tuple[str, str]] = []
    question = None
    for i, turn in enumerate(conversations):
        if not isinstance(turn, dict):
            raise BadInput(f"{where}: turn {i} is not an object with 'from' and 'value'")
        role, value = turn.get("from"), turn.get("value")
        want = HUMAN if i % 2 == 0 else GPT
        if role != want:
            raise BadInput(f"{where}: roles out of order: turn {i} is from {role!r}, expected {want!r} "
                           f"(turns must alternate human, gpt, human, ... starting with human)")
        if not isinstance(value, str):
            raise BadInput(f"{where}: turn {i} has no text 'value'")
        if IMAGE_TOKEN in value and i != 0:
            raise BadInput(f"{where}: turn {i} contains {IMAGE_TOKEN}; it may only appear in the first "
                           f"human turn")
        if role == HUMAN:
            if i == 0:
                if IMAGE_TOKEN in value and not has_image:
                    raise BadInput(f"{where}: the first turn contains {IMAGE_TOKEN} but the record has "
                                   f"no 'image'")
                question = clean_question(value)[0]
            else:
                question = value.strip()
        else:
            pairs.append((question, value.strip()))
    if len(conversations) % 2:
        raise BadInput(f"{where}: the last human turn (turn {len(conversations) - 1}) has no gpt answer")
    return pairs


# ---------------------------------------------------------------- dependent turns

_BACK_REFERENCE = re.compile(
    r"\byou (just |also )?(said|say|mentioned|mention|described|listed|stated|noted|suggested|told|"
    r"explained|answered|wrote|gave)\b"
    r"|\byour (previous |last |earlier |first |above |prior )?(answer|response|reply|description|"
    r"explanation|list|reasoning|suggestion|point)s?\b"
    r"|\b(the|that|this) (previous|above|last|earlier|prior) (answer|response|reply|question|point|"
    r"description|explanation)s?\b"
    r"|\b(mentioned|described|listed|discussed|stated) (above|earlier|before|previously)\b"
    r"|\bas (you )?(mentioned|described|said)\b"
    r"|\b((tell|show|give) me more|more details?|elaborate|expand)"
    r"( (on|upon|about) (that|this|it|them|those|these|your)\b|\s*[?.!]*$)|^go on\b"
    r"|^(please )?continue\b|\bkeep going\b"
    r"|\bexplain (your|the) (answer|reasoning|choice)\b"
    r"|^(now,? )?((can|could|would) you )?(please )?(rewrite|rephrase|shorten|summari[sz]e|translate|simplify|"
    r"expand on|redo|make|change|modify|revise|fix|improve|edit|convert|reformat) "
    r"(it|that|this|them|those|these)\b",
    re.IGNORECASE,
)

_CONTINUATION = re.compile(
    r"^(and|but|or)\b|^(what|how) about\b"
    r"|\b(what|anything|something|anyone|someone|who|where|how) else\b"
    r"|\bthe other ones?\b|^which ones?\b(?! of\b)",
    re.IGNORECASE,
)

# bounding-box prompts | lettered multiple-choice options | OCR-VQA book templates
_TEMPLATED = re.compile(
    r"\[\s*\d*\.\d+\s*,|\bbounding box\b|\bregion\b"
    r"|(?:^|\n)\s*(?-i:[A-F])[.)]\s"
    r"|\b(this|the) book\b|\bbook is this\b|\b(who wrote|author of) this\b",
    re.IGNORECASE,
)

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")

# Words that carry no content of their own: question words, pronouns,
# auxiliaries, articles, prepositions, conjunctions, generic verbs and fillers.
_FUNCTION_WORDS = frozenset("""
what whats what's why how who whom whose which where when whether
is are was were be been being am isn't aren't wasn't weren't it's that's there's
do does did doing done don't doesn't didn't
can could would should will shall may might must can't couldn't wouldn't shouldn't won't
have has had having
i me my you your we us our he him his she her it its they them their this that these those
one ones something anything someone anyone thing things stuff
a an the some any each every
to of in on at for with about from by as into onto over than then so also too very just really
exactly actually please now again more else other same such here there
and or but not no yes if
mean means meant happen happens happened happening go goes going went think say said tell
make makes made get gets got like
case reason way
""".split())

_PERSONAL = frozenset("he she him her they them those these".split())
_DEMONSTRATIVE = frozenset("it this that".split())
_AUX = frozenset("""is are was were be been being am do does did can could would should will shall may
might must have has had""".split())


# Each regex above can only match when one of these words is present: a cheap
# set test first keeps the filter fast on millions of questions.
_BACK_KEYS = frozenset("""you your previous above last earlier prior mentioned described listed discussed
stated as more elaborate expand go continue keep explain rewrite rephrase shorten summarize summarise
translate simplify redo make change modify revise fix improve edit convert reformat""".split())
_CONT_KEYS = frozenset("and but or about else other which".split())
_TEMPLATE_KEYS = frozenset("bounding region book".split())


def _is_templated(q: str, words: set[str]) -> bool:
    """Questions from single-question datasets packed into a conversation: never dependent."""
    if q.endswith(TEMPLATE_SUFFIXES):
        return True
    if "[" in q or "\n" in q or q[1:2] in (".", ")") or not _TEMPLATE_KEYS.isdisjoint(words):
        return _TEMPLATED.search(q) is not None
    return False


def _refers_by_pronoun(words: list[str]) -> bool:
    for i, w in enumerate(words):
        if w in _PERSONAL:
            # "these/those" followed by a content word is a determiner ("those cars")
            if w in ("these", "those") and i + 1 < len(words) and words[i + 1] not in _FUNCTION_WORDS:
                continue
            return True
        if w in _DEMONSTRATIVE:
            nxt = words[i + 1] if i + 1 < len(words) else None
            if nxt is None or (nxt in _AUX and w != "it"):
                return True
    return False


def dependence_rule(question: str) -> str | None:
    """The name of the dependent-turn rule a LATER question triggers, or None."""
    q = question.strip()
    if q.endswith(TEMPLATE_SUFFIXES):
        return None
    words = _WORD.findall(q.lower().replace("\u2019", "'"))
    wset = set(words)
    if _is_templated(q, wset):
        return None
    if not _BACK_KEYS.isdisjoint(wset) and _BACK_REFERENCE.search(q):
        return "back-reference"
    if not _CONT_KEYS.isdisjoint(wset) and _CONTINUATION.search(q):
        return "continuation"
    content = [w for w in words if w not in _FUNCTION_WORDS]
    if not content:
        return "bare-follow-up"
    if len(content) <= 1 and _refers_by_pronoun(words):
        return "pronoun-only"
    return None


def dependent_reason(pairs: list[tuple[str, str]]) -> str | None:
    """Why the conversation is dropped (``"<rule>: turn <n>"``, n 0-based), or None to keep it."""
    for turn, (question, _answer) in enumerate(pairs):
        if turn == 0:
            continue
        rule = dependence_rule(question)
        if rule:
            return f"{rule}: turn {turn}"
    return None
