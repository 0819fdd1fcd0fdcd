"""The rule categoriser: ordered cue rules over LLaVA-style questions.

A question is first normalised (``<image>`` marker, LLaVA's fixed answer-format
instructions and multiple-choice option lines removed, lower case). Then the
rules below are tried in order; the first one that matches decides, and its id
and a sentence saying why become the label's ``rule`` and ``reason``. If none
matches, the question is an Object question (recognising, counting, attributes).

Order, and the policy behind it:

1. Bounding: box coordinates in the question (describe) or the answer (bbox),
   or an explicit request for a box (bbox). Coordinates are unmistakable.
2. OCR: OCR-VQA's book templates and TextVQA-style reading requests.
   Recognition = transcribe text (title, author, a sign, a number on a shirt);
   semantic = knowledge about the text's object (genre, "is this a X book").
3. Complex, strong cues: why / might / could / would / if, inference words,
   description and writing requests, very long prompts. These decide even when
   the question also mentions a place ("why is the bus next to the tree?").
4. Complex, comparison cues: "more X than Y", "the same colour", "both",
   "excluding", "among the": two or more steps before the answer.
5. Object, attribute heads: "what colour / material / kind of ... / how many"
   stay Object even with a locator ("what colour is the car on the right?"):
   the location only picks the object whose attribute is asked.
6. Object, place of the photo: "where was this taken" is scene recognition.
7. Spatial: relation and position words (left of, behind, above, next to,
   where is, which side, sitting on, is the X on the Y).
8. Object: everything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vlmdyn_cli.data.categories import (BBOX, BOUNDING, COMPLEX, DESCRIBE, OBJECT, OCR, RECOGNITION,
                                        SEMANTIC, SPATIAL, Label)

# ------------------------------------------------------------------ normalisation
_NUM = r"-?\d*\.?\d+"
COORDS = re.compile(rf"[\[(]\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*[\])]")
_IMAGE = re.compile(r"<image>", re.I)
_INSTRUCTIONS = re.compile(
    r"answer the question using a single word or phrase\.?|"
    r"answer with the option'?s letter from the given choices directly\.?|"
    r"please answer this question with a single word or phrase\.?|"
    r"answer with a single word or phrase\.?|"
    r"answer (?:the question )?(?:with|in) (?:a )?(?:single|one) (?:word|sentence)\.?|"
    r"reference ocr tokens?:.*$",
    re.I | re.M)
_OPTION_LINE = re.compile(r"^\s*\(?[a-h][.)]\s+.*$", re.I | re.M)
_SPACES = re.compile(r"\s+")


def normalise(question: str) -> str:
    """Lower-case question stem without image marker, format instructions or options."""
    q = _IMAGE.sub(" ", question)
    q = _INSTRUCTIONS.sub(" ", q)
    if "\n" in q:
        q = _OPTION_LINE.sub(" ", q)
    q = _SPACES.sub(" ", q).strip().lower()
    if q.startswith("please "):
        q = q[7:]
    return q


# ------------------------------------------------------------------ rules
@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    subcategory: str | None
    why: str               # human-readable: what the match means
    pattern: re.Pattern
    on: str = "question"   # "question" (normalised) or "answer" (raw)


def _r(*alternatives: str) -> re.Pattern:
    return re.compile("|".join(alternatives))


_PIC = r"(?:image|picture|photo|photograph|pic|scene|frame|shot|snapshot|video|daytime|day|night|nighttime|morning|afternoon|evening|distance)"
_DET = r"(?:the|a|an|this|that|these|those|his|her|its|their|my|your)"

RULES: tuple[Rule, ...] = (
    # 1. Bounding ------------------------------------------------------------
    Rule("bounding.coords_in_question", BOUNDING, DESCRIBE,
         "the question gives box coordinates, so the answer describes a region", COORDS),
    Rule("bounding.box_request", BOUNDING, BBOX, "the question asks for box coordinates",
         _r(r"\bbounding box", r"\bbox coordinates?\b", r"\bbbox\b", r"\[x1, ?y1, ?x2, ?y2\]",
            r"\bregion this sentence describes\b", r"\bcoordinates? of (?:the|this|each) (?:region|object|box)\b",
            r"\b(?:output|give|return|provide) (?:its|the|their) (?:box|coordinates)\b")),
    Rule("bounding.region_description", BOUNDING, DESCRIBE, "the question asks to describe a given region",
         _r(r"\bdescription for this region\b", r"\bdescribe (?:this|the given) region\b")),
    Rule("bounding.coords_in_answer", BOUNDING, BBOX, "the answer is box coordinates", COORDS, on="answer"),
    # 2. OCR ---------------------------------------------------------------------
    Rule("ocr.author", OCR, RECOGNITION, "asks who wrote the text (author on a cover)",
         _r(r"\bwho (?:wrote|is the author|are the authors|is the writer|authored|penned)\b",
            r"\bauthors? of (?:this|the) (?:book|novel|cover|text|article)\b", r"\bname of the author\b",
            r"\bwho is (?:this|the) book (?:written )?by\b", r"\bwhose name is (?:printed|written|shown)\b")),
    Rule("ocr.title", OCR, RECOGNITION, "asks for the title as written",
         _r(r"\btitle of (?:this|the) (?:book|novel|magazine|album|movie|film|song|article|newspaper|cover|poster)\b",
            r"\bwhat(?: is|'s) the (?:book'?s )?title\b", r"\bwhat title\b",
            r"\btitle (?:is )?(?:written|printed|shown)\b", r"\bname of (?:this|the) book\b",
            r"\b(?:first|last|second|third) word\b")),
    Rule("ocr.read_text", OCR, RECOGNITION, "asks to read text, a number or a brand shown in the image",
         _r(r"\bwhat(?: is|'s| are) (?:written|printed|typed|displayed|engraved|painted)\b",
            rf"\bwhat does {_DET}?\s?[\w' -]{{0,30}}?\b(?:say|read|spell)\b",
            r"\b(?:written|printed|engraved|painted|typed|inscribed) (?:on|in|at|across)\b",
            r"\bwhat (?:word|words|letter|letters|text|message|slogan)\b", r"\bread (?:the|this|it|that)\b",
            r"\btext (?:on|in|of)\b", r"\bwhat (?:brand|make)\b", r"\bwhich brand\b", r"\bbrand (?:name|of)\b",
            r"\b(?:name|number) (?:of|on) (?:the|this) (?:store|shop|restaurant|cafe|bar|business|company|hotel|bank|"
            r"street|road|team|airline|website|band|magazine|newspaper|bus|train|boat|ship|plane|player|building|"
            r"product|station|app|game|movie|film|show|book|sign)\b",
            r"\bwhat (?:number|numbers|digits?|year|date|price) (?:is|are|was) (?:on|written|printed|shown|displayed|painted)\b",
            r"\bnumber on (?:the|his|her|this|that)\b", r"\bjersey number\b", r"\blicen[sc]e plate\b",
            r"\bwebsite\b", r"\burl\b", r"\bphone number\b")),
    Rule("ocr.book_semantic", OCR, SEMANTIC, "asks about the kind of book (genre, topic, edition)",
         _r(r"\bgenre\b", r"\bwhat (?:type|kind|sort|category) of book\b",
            r"\bis this (?:a|an) [\w'&,.-]+(?: [\w'&,.-]+){0,5} book\b", r"\bis this book\b",
            r"\bbook (?:is )?(?:related|about)\b", r"\bwhat is (?:this|the) book about\b", r"\bcalendar\b",
            r"\b(?:cook|text|comic|note|guide)book\b", r"\b(?:fiction|fictional|nonfiction|non-fiction)\b",
            r"\bedition\b")),
    # 3. Complex: strong cues ------------------------------------------------------
    Rule("complex.why", COMPLEX, None, "asks why: explanation needs reasoning", _r(r"\bwhy\b", r"\bhow come\b")),
    Rule("complex.hypothetical", COMPLEX, None, "a hypothetical or speculative question",
         _r(r"\b(?:might|could|would|should)\b", r"\bmay (?:be|have|indicate|suggest)\b",
            r"(?<!tell )(?<!see )(?<!know )(?<!check )\bif\b", r"\bsuppose\b", r"\bimagine\b", r"\bassum(?:e|ing)\b",
            r"\bhypothetical")),
    Rule("complex.describe", COMPLEX, None, "asks for a description or an explanation of the scene",
         _r(r"\bdescribe\b", r"\bdescription\b", r"\bexplain", r"\belaborate\b", r"\banaly[sz]", r"\bsummar",
            r"\bcaption\b", r"\bnarrat", r"\bstory\b", r"\bin (?:great |more |full |much )?detail",
            r"\bdetailed\b", r"\bcomprehensive\b", r"\bwhat(?:'s| is| are) (?:happening|going on)\b",
            r"\bwhat do you (?:see|think|notice)\b", r"\btell me (?:about|what)\b",
            r"\b(?:key|main) (?:elements|features|aspects|points|objects)\b", r"\boverview\b",
            rf"\bwhat is (?:this|the) {_PIC} (?:about|showing|depicting)\b",
            rf"\bwhat (?:does|do) (?:this|the) {_PIC} (?:show|depict|convey|represent|capture)\b")),
    Rule("complex.inference", COMPLEX, None, "asks for an inference or knowledge beyond what is shown",
         _r(r"\binfer", r"\bsuggest", r"\bimpl(?:y|ies|ication)", r"\bpurpose\b", r"\breasons?\b", r"\bsignifican",
            r"\bimportan", r"\bpotential", r"\blikely\b", r"\bprobabl", r"\bpossibl", r"\bpredict", r"\bexpect",
            r"\bchallenge", r"\bbenefit", r"\badvantage", r"\bconsequence", r"\baffect", r"\binfluenc",
            r"\bunusual\b", r"\bstrange\b", r"\bfunny\b", r"\bhumou?r", r"\binteresting\b", r"\bemotion",
            r"\bmood\b", r"\bfeel(?:s|ing)?\b", r"\batmosphere\b", r"\bopinion\b", r"\bthink\b", r"\bbelieve\b",
            r"\bguess\b", r"\bused for\b", r"\bcommonly\b", r"\btypically\b", r"\busually\b", r"\borigin\b",
            r"\binvent", r"\bnative to\b", r"\bfamous\b", r"\bsafe(?:ty|ly)?\b", r"\bdanger", r"\brisk",
            r"\bprecaution", r"\btips?\b", r"\badvice\b", r"\brecommend", r"\bfactors?\b", r"\bconsider",
            r"\bcontext\b", r"\boccasion\b")),
    Rule("complex.request", COMPLEX, None, "an open-ended writing or planning request",
         _r(r"^(?:can you |could you )?(?:write|compose|create|generate|draft|list|give me|suggest|plan|design|"
            r"translate|rewrite|summarize|summarise|help)\b")),
    # 4. Complex: comparison and filtering ----------------------------------------------
    Rule("complex.compare", COMPLEX, None, "compares or filters objects before answering (several steps)",
         _r(r"\b(?:more|fewer|less|bigger|smaller|larger|taller|shorter|longer|older|younger|heavier|lighter|faster|"
            r"slower|wider|narrower|thicker|thinner|darker|brighter|cheaper|better|worse|greater)\s+(?:[\w-]+\s+){0,3}than\b",
            r"\bmore of\b", r"\bthe same\b", r"\bsame (?:[\w-]+ )?as\b", r"\bdifferen(?:t|ce)\b", r"\bcompar",
            r"\bboth\b", r"\beither\b", r"\bneither\b", r"\bcombined\b", r"\baltogether\b",
            r"\btotal number of [\w ]+ and\b", r"\bsum of\b", r"\bexcluding\b", r"\bnot counting\b",
            r"\bapart from\b", r"\bother than\b", r"\bexcept\b", r"^among\b", r"\bhow many other\b")),
    # 5-6. Object before Spatial ----------------------------------------------------------
    Rule("object.attribute", OBJECT, None, "asks an attribute or count of an object (a location only picks it)",
         _r(r"^(?:what|which) (?:colou?rs?|material|shape|pattern|size|type|kind|sort|breed|species|flavou?r)\b",
            r"^what is the (?:colou?r|material|shape|pattern|size)\b", r"^how many\b", r"\bmade (?:of|from|out of)\b")),
    Rule("object.scene_place", OBJECT, None, "asks what kind of place the photo shows",
         _r(rf"\bwhere (?:is|was|are|were) (?:this|these|the {_PIC})\b(?: {_PIC})?(?: (?:taken|shot|located))?\W*$",
            r"\bwhere (?:was|is) (?:this|the) \w+ taken\b")),
    # 7. Spatial -------------------------------------------------------------------------
    Rule("spatial.relation", SPATIAL, None, "asks about relative position",
         _r(r"\b(?:to|on|at) the (?:left|right)\b", r"\b(?:left|right)(?:-hand)? (?:of|side|hand|corner|edge|half)\b",
            r"\b(?:leftmost|rightmost|topmost|bottommost|uppermost|lowermost)\b", r"\bleft or (?:to the )?right\b",
            r"\bright or (?:to the )?left\b", r"\b(?:which|what) side\b", r"\babove\b", r"\bbelow\b",
            r"\bunder(?:neath)?\b", r"\bbeneath\b", r"\bbehind\b", r"\bin front\b", r"\bnext to\b", r"\bbeside\b",
            r"\bnear(?:by|est|er)?\b", r"\bclose (?:to|by)\b", r"\bclos(?:est|er)\b", r"\bfar(?:ther|thest)? from\b",
            r"\bfurthest\b", r"\bfurther (?:left|right|up|down|away)\b", r"\bbetween\b", r"\bacross from\b",
            r"\bopposite\b", r"\bon top\b", r"\batop\b", r"\bsurround", r"\badjacent\b", r"\balongside\b",
            r"\bfacing\b", r"\b(?:higher|highest|lower|lowest)\b",
            r"\b(?:at|in|on) the (?:top|bottom|center|centre|middle|corner|edge|side|back|front|foreground|background)\b",
            r"\b(?:top|bottom) (?:of|left|right|half|part)\b", r"\bin which part\b", r"\bwhat part of\b",
            r"\bposition", r"\blocat(?:ed|ion)\b", r"\borientation\b", r"\bdirection\b", r"\binside\b",
            r"\boutside of\b")),
    Rule("spatial.where", SPATIAL, None, "asks where something is", _r(r"^where\b", r"\bwhere (?:is|are|was|were|do|does|did|can)\b")),
    Rule("spatial.placement", SPATIAL, None, "asks what something rests on or is placed in",
         _r(r"\b(?:sitting|standing|lying|laying|resting|perched|mounted|hanging|leaning|parked|placed|sits|stands|"
            r"rests|lies|hangs|leans|kept|stored|stacked|piled|seated|floating|attached) (?:on|in|at|against|from|"
            r"atop|inside|by|over|onto|upon)\b")),
    Rule("spatial.on_in", SPATIAL, None, "asks whether or what is on or in another object",
         _r(rf"\b(?:is|are) {_DET} (?:[\w'-]+ ){{1,3}}?(?:on|in|at|over|onto|off) {_DET}\b(?! {_PIC}\b)",
            rf"^what(?: is|'s| are) (?:on|in|atop|over|inside) {_DET}\b(?! {_PIC}\b)")),
)

_DEFAULT_OBJECT = (
    ("object.count", re.compile(r"\bhow many\b|\bnumber of\b"), "counts objects"),
    ("object.yes_no", re.compile(r"^(?:is|are|does|do|can|was|were|has|have|did)\b"), "a yes/no question about what is shown"),
    ("object.identify", re.compile(r""), "asks to recognise an object, an activity or an attribute"),
)


def classify(question: str, answer: str | None = None) -> tuple[Label, str]:
    """(label, rule id) for one question; ``answer`` is optional extra evidence."""
    q = normalise(question)
    for rule in RULES:
        text = q if rule.on == "question" else answer
        if not text:
            continue
        m = rule.pattern.search(text)
        if m:
            return Label(rule.category, rule.subcategory, f"{rule.id}: {rule.why} (matched {m.group(0)!r})",
                         rule.id), rule.id
    for rule_id, pat, why in _DEFAULT_OBJECT:
        if pat.search(q):
            return Label(OBJECT, None, f"{rule_id}: no Bounding/OCR/Complex/Spatial cue; {why}", rule_id), rule_id
    raise AssertionError("unreachable: the last default rule matches everything")


class RuleCategorizer:
    """Fast deterministic categoriser (method ``rules``)."""

    method = "rules"

    def __init__(self, **_opts):
        pass

    def categorize(self, questions: list[str], answers: list[str] | None = None) -> list[Label]:
        if answers is not None and len(answers) != len(questions):
            raise ValueError("questions and answers must have the same length")
        if answers is None:
            return [classify(q)[0] for q in questions]
        return [classify(q, a)[0] for q, a in zip(questions, answers)]
