"""The rule categoriser: ordered cue rules over LLaVA-style questions.

A question is first normalised (``<image>`` marker, LLaVA's fixed answer-format
instructions and multiple-choice option lines removed, lower case). Then the
rules below are tried in order; the first one that matches decides, and its id
and a sentence saying why become the label's ``rule`` and ``reason``. If none
matches, the question is an Object question (recognising, counting, attributes).

The policy is the paper's (METHOD.md section 2, its Figure 6 examples): label a
question by its goal, what it asks to find out. The source rule (a pair from
OCR-VQA or TextVQA is OCR; a pair from an MME subtask folder gets that subtask's
skill) is applied in front of these rules by ``categorize.label_pairs``. Order:

1. Bounding: box coordinates in the question (describe) or the answer (bbox),
   or an explicit request for box coordinates (bbox). A box merely drawn in the
   image ("the person inside the red box") is not a Bounding question.
2. Object, recognition by a proposed name: "Is this movie titled X?", "Is the
   actor inside the red box named X?", "Does this artwork belong to the type of
   X?". X is a candidate answer, so words inside it ("why", "left") decide nothing.
3. Complex before OCR: translating a text or interpreting what a message
   intends ("What message is the poster trying to convey?") needs knowledge
   beyond reading it.
4. OCR: reading text. Recognition = transcribe text (title, author, a sign, a
   number on a shirt, a value on a display or label, 'is the word in the logo
   "x"?'); semantic = knowledge about the text's object (genre, "is this a X book").
5. Complex, strong cues: why / might / could / would / if, inference, intention,
   advice (also "what can I cook with these?"), calculation and code, science and
   world knowledge (ScienceQA style), description, caption and writing or
   building requests, prompts of 30 words or more. These decide even when the
   question also mentions a place ("why is the bus next to the tree?").
6. Complex, comparison: "more X than Y", "the same colour", "in common",
   "excluding": two things compared, several steps. Not "either/or" or "both"
   over existence: "Are there either any doors or windows made of metal?" is
   Object in the paper.
7. Object before Spatial where the location only picks the object: a visual
   attribute or a count ("what colour is the car on the right?", "how many
   cups are on the table?"), an activity or clothing ("is the man on the left
   wearing a hat?"), an on/off state ("are the lights on in this room?"), the
   object a drawn box marks, the place a photo shows.
8. Spatial: where things are, and things identified by where they are (the
   paper: "What kind of device is to the left of the computer monitor?", "What
   is near the bottle of alcohol?", "Who is in the water on the beach?"). "In
   the painting" names the picture, not a place in it.
9. Object: what kind of thing it is ("which kind of appliance is it?"), and
   everything else (recognition, existence, yes/no about what is shown).

Speed: every pattern alternative is searched only when the question contains
one of its gate keys (``_gate``: derived from the pattern's leading words, or
named in a leading ``(?#gate:...)`` comment; symbols like "," and "=" and the
``LONG`` key of 30-word prompts are gates too); ``classify_reference`` walks
every rule without gates and a test checks both always agree.
"""

from __future__ import annotations

import re

from vlmdyn_cli.data.categories import (BBOX, BOUNDING, COMPLEX, DESCRIBE, OBJECT, OCR, RECOGNITION,
                                        SEMANTIC, SPATIAL, Label)

# ------------------------------------------------------------------ normalisation
_NUM = r"-?\d*\.?\d+"
# a box: [x1, y1, x2, y2] (normalised or 0-1000 integers), or two corner points (x1,y1),(x2,y2)
COORDS = re.compile(rf"[\[(]\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*[\])]"
                    rf"|\(\s*{_NUM}\s*,\s*{_NUM}\s*\)\s*,\s*\(\s*{_NUM}\s*,\s*{_NUM}\s*\)")
_INSTRUCTIONS = re.compile(
    r"answer the question using a single word or phrase\.?|"
    r"answer with the option'?s letter from the given choices directly\.?|"
    r"please answer this question with a single word or phrase\.?|"
    r"answer with a single word or phrase\.?|"
    r"answer (?:the question )?(?:with|in) (?:a )?(?:single|one) (?:word|sentence)\.?|"
    r"reference ocr tokens?:.*$",
    re.M)
_OPTION_LINE = re.compile(r"^\s*\(?[a-h][.)]\s+.*$", re.M)
# a "Context: ..." line (ScienceQA style) describes the item; the question is the line that asks
_CONTEXT_LINE = re.compile(r"^\s*context:.*$", re.M)


def normalise(question: str) -> str:
    """Lower-case question stem without image marker, format instructions or options."""
    q = question.lower()
    if "<image>" in q:
        q = q.replace("<image>", " ")
    if "answer" in q or "reference ocr" in q:
        q = _INSTRUCTIONS.sub(" ", q)
    if "\n" in q:
        q = _OPTION_LINE.sub(" ", q)
        if "context:" in q:
            q = _CONTEXT_LINE.sub(" ", q)
    q = " ".join(q.split())
    if q.startswith("please "):
        q = q[7:]
    return q


# ------------------------------------------------------------------ rules
class Rule:
    """One cue rule: a list of alternative patterns; any match decides.

    For speed, an alternative is searched only when the question contains a
    word it can start with (its "gate", derived from the pattern text by
    ``_gate``); alternatives whose first word cannot be derived always run.
    """

    def __init__(self, id: str, category: str, subcategory: str | None, why: str, cues: tuple[str, ...],
                 on: str = "question"):
        self.id, self.category, self.subcategory, self.why, self.on = id, category, subcategory, why, on
        self.cues = cues
        self.alternatives = tuple((re.compile(c), _gate(c)) for c in cues)

    def search(self, text: str) -> re.Match | None:
        """Ungated search over all alternatives (reference behaviour, used in tests)."""
        for pattern, _gate_keys in self.alternatives:
            m = pattern.search(text)
            if m:
                return m
        return None


def _r(*alternatives: str) -> tuple[str, ...]:
    return alternatives


_NOT_WORD = str.maketrans({c: " " for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\n\t"})
KEY = 5  # gate keys are the first KEY letters of a word ("image" and "imagine" differ)
_TOKEN = re.compile(r"\(\?:((?:[a-z0-9]+\|)*[a-z0-9]+)\)|([a-z0-9]+)")
# words too frequent to be useful gates: when a pattern starts with them, gate on a later word
_COMMON = frozenset("what which who how is are was were does do the a an this that in on at to of".split())


# the gate of patterns that need a long question: classify adds it when the question has LONG_WORDS words
LONG, LONG_WORDS = "#long", 30
_EXPLICIT_GATE = re.compile(r"^\(\?#gate:([^)]*)\)")


def _gate(alt: str) -> frozenset[str] | None:
    """Keys one of which must be in the question for ``alt`` to possibly match, or None.

    A pattern may name its keys itself in a leading regex comment, ``(?#gate:code|progr|+)``
    (the regex engine ignores it): each key is the first KEY letters of a word the pattern cannot
    match without, or a symbol (``+``, ``=``) it needs. The gate test checks that they are right.

    The pattern's leading literal words are read one by one (a word, or a
    group of plain alternatives like ``(?:left|right)``, separated by single
    spaces). Every one of them must occur in a matching question, so any can
    gate it: the first that is not a very common word is used. A word followed
    by more pattern (``explain`` in ``\\bexplain``) is a stem and gates by its
    first KEY letters; a stem shorter than that cannot gate.
    """
    if alt == COORDS.pattern:
        return frozenset([","])  # coordinates need commas: classify adds "," as a key when present
    explicit = _EXPLICIT_GATE.match(alt)
    if explicit:
        return frozenset(k if not k.isalnum() or k == LONG else k[:KEY] for k in explicit.group(1).split("|"))
    pos = 0
    while alt.startswith(("^", "\\b"), pos):
        pos += 1 if alt[pos] == "^" else 2
    tokens: list[frozenset[str] | None] = []
    while True:
        m = _TOKEN.match(alt, pos)
        if not m:
            break
        rest = alt[m.end():]
        if rest[:1] in ("?", "*", "{"):
            if m.group(2) is not None:  # "comes?" -> the stem "come"
                w = m.group(2)[:-1]
                tokens.append(frozenset([w[:KEY]]) if len(w) >= KEY else None)
            break
        words = m.group(1).split("|") if m.group(1) is not None else [m.group(2)]
        # the word ends here if a space, \\b, \\s or punctuation follows (at the pattern's end: a stem)
        whole = rest.startswith((" ", "\\b", "\\s", "\\W", ",", "\\.", "\\?", "'", "$"))
        if whole:
            common = frozenset(["*common*"]) if _COMMON.issuperset(words) else frozenset()
            tokens.append(frozenset(w[:KEY] for w in words) | common)
        else:
            tokens.append(frozenset(w[:KEY] for w in words) if min(map(len, words)) >= KEY else None)
            break
        if not rest.startswith(" "):
            break
        pos = m.end() + 1
    usable = [t for t in tokens if t is not None]
    if not usable:
        return None
    rare = [t for t in usable if "*common*" not in t]
    return rare[0] if rare else usable[0] - {"*common*"}


_PIC = r"(?:image|picture|photo|photograph|pic|scene|frame|shot|snapshot|video|daytime|day|night|nighttime|morning|afternoon|evening|distance)"
_DET = r"(?:the|a|an|this|that|these|those|his|her|its|their|my|your)"
# what a picture is, not a place in it: "the character in the painting" is not a relation between objects
_MEDIUM = rf"(?:{_PIC}|painting|drawing|artwork|illustration|sketch|cartoon|comic|photos|images|pictures)"
# "what is the man wearing on his head?" asks about clothing, not a relation
_NOT_ACTION = r"(?!(?:wearing|holding|carrying|eating|drinking|doing|playing|riding|using|reading|watching)\b)"
# things that carry text
_TEXT_THING = (r"(?:logo|sign|signs|image|picture|photo|poster|banner|cover|label|screen|shirt|board|wall|building|book|"
               r"page|box|bottle|can|package|menu|paper|card|billboard|plate|jersey|bus|train|truck|door|window|mug|cup)")

RULES: tuple[Rule, ...] = (
    # 1. Bounding: the answer is a box, or the question gives one -----------------------------
    Rule("bounding.coords_in_question", BOUNDING, DESCRIBE,
         "the question gives box coordinates, so the answer describes a region", (COORDS.pattern,)),
    Rule("bounding.box_request", BOUNDING, BBOX, "the question asks for box coordinates",
         _r(r"\bbounding box coordinates?\b", r"\bbounding box (?:of|for|around)\b", r"\bbox coordinates?\b", r"\bbbox\b",
            r"\bx1, ?y1, ?x2, ?y2\b", r"\bregion this sentence describes\b",
            r"\bcoordinates? of (?:the|this|that|each|a|an)\b",
            r"\b(?:output|give|return|provide|predict|draw|generate|find|detect) (?:the |a |its |their |his |her )?(?:bounding )?box(?:es)?\b",
            r"\b(?:give|show|tell) (?:me|us) (?:the |a |its |their |his |her )?(?:bounding )?box(?:es)?\b",
            r"\b(?:output|give|return|provide|predict|find) (?:its|the|their|his|her) (?:box|coordinates|location as)\b",
            r"\b(?:with|as|using) (?:a |the )?bounding box(?:es)?\b")),
    Rule("bounding.region_description", BOUNDING, DESCRIBE, "the question asks to describe a given region",
         _r(r"\bdescription for this region\b", r"\bdescribe (?:this|the given) region\b")),
    Rule("bounding.coords_in_answer", BOUNDING, BBOX, "the answer is box coordinates", (COORDS.pattern,), on="answer"),
    # 2. Object, recognition by a proposed name: the rest of the question is a candidate answer (a
    #    title, a person, a place, a school of art), so words inside it decide nothing (MME's posters,
    #    celebrity, landmark, artwork and scene questions: "Is this movie titled why him? (2016)?")
    Rule("object.named", OBJECT, None, "asks whether the pictured thing has a proposed name, maker or kind (recognition)",
         _r(r"^(?:is|was) this (?:movie|film|artwork|painting|drawing|sculpture|statue|show|series|album|song|game|"
            r"building|landmark|place|monument) (?:titled|named|called|created by|made by|painted by|drawn by|"
            r"sculpted by|designed by|built by|directed by|starring|originated from|displayed in|exhibited in|kept in)\b",
            r"^does this (?:artwork|painting|drawing|sculpture|movie|film) (?:exist in the form of|belong to the "
            r"(?:type|genre|style|school|period|movement) of)\b",
            r"^is this (?:a|an) (?:photo|picture|image|photograph|painting|drawing|sketch) of\b",
            r"(?#gate:named|calle)^is (?:the|this) (?:actor|actress|person|man|woman|boy|girl|player|singer|athlete|character|celebrity|"
            r"politician|musician)\b[^?]{0,50}?\b(?:named|called)\b",
            rf"(?#gate:place)^(?:is|was) (?:this|the) {_PIC} (?:taken|captured|shot|photographed) (?:in|at) a place of\b",
            rf"(?#gate:place)^does (?:this|the) {_PIC} (?:describe|show|depict) a place of\b")),
    # 3. Complex before OCR: translating text, or what a message means or intends, needs knowledge
    #    beyond reading it (MME's text_translation is a cognition subtask; "What message is the
    #    poster trying to convey?" asks an interpretation, not a transcription)
    Rule("complex.text_meaning", COMPLEX, None, "asks to translate or interpret a message: knowledge beyond reading",
         _r(r"\btranslat(?:e|es|ed|ing|ion|ions)\b", r"\bconvey(?:s|ed|ing)?\b",
            r"\btrying to (?:say|tell|express|communicate|show|sell|persuade)\b", r"\bintended (?:message|meaning|effect)\b")),
    # 4. OCR: reading text -------------------------------------------------------------------
    Rule("ocr.author", OCR, RECOGNITION, "asks who wrote the text (author on a cover)",
         _r(r"\bwho (?:wrote|is the author|are the authors|is the writer|authored|penned)\b",
            r"\bauthors? of (?:this|the) (?:book|novel|cover|text|article)\b", r"\bname of the author\b",
            r"\bwho is (?:this|the) book (?:written )?by\b", r"\bwhose name is (?:printed|written|shown)\b")),
    Rule("ocr.title", OCR, RECOGNITION, "asks for the title as written",
         _r(r"\btitle of (?:this|the) (?:book|novel|magazine|album|movie|film|song|article|newspaper|cover|poster)\b",
            r"\btitle\b(?<=what is the title)", r"\btitle\b(?<=what's the title)",
            r"\btitle\b(?<=the book's title)", r"\btitle\b(?<=the book title)", r"\bwhat title\b",
            r"\btitle (?:is )?(?:written|printed|shown)\b", r"\bname of (?:this|the) book\b",
            r"\b(?:first|last|second|third) word of the title\b")),
    Rule("ocr.read_text", OCR, RECOGNITION, "asks to read text, a number or a brand shown in the image",
         _r(r"\b(?:written|printed|engraved|typed|inscribed)\b",
            rf"^what does {_DET}?\s?[\w' -]{{0,30}}?\b(?:say|read|spell)\b",
            r"\bdisplayed on\b(?<=what is displayed on)", r"\bdisplayed on\b(?<=what's displayed on)",
            r"\bwhat (?:word|words|letter|letters|text|message|slogan)\b", r"\bread (?:the|this|it|that)\b",
            r"(?#gate:word|words|lette|text|messa|sloga|phras)^what (?:is|are|was|were) the (?:word|words|letter|letters|text|message|slogan|phrase)\b",
            r"(?#gate:word|text|messa|sloga|phras)^what's the (?:word|text|message|slogan|phrase)\b",
            r"(?#gate:adver|liste|manuf|maker)\b(?:advertised|listed|manufacturer|maker)\b", r"\b(?:is|are) advertising\b",
            # a text-like property printed on a package or label: "what is the flavor on this box?"
            r"(?#gate:name|brand|flavo|title|date|price|numbe|size|model|word|words|text|label)\b(?:name|brand|flavou?r|"
            r"title|date|price|number|size|model|word|words|text|label) (?:on|printed on|written on) (?:the|this|that|my) "
            r"(?:box|package|packet|bottle|can|jar|bag|carton|container|tag|card|cover|wrapper|label|envelope|ticket)\b", r"\bwhat airline\b",
            r"(?#gate:date|dates)\b(?:expiration|expiry|sell[- ]by|use[- ]by|best[- ]before|due) dates?\b",
            r"(?#gate:calor|ounce|oz|fl|ml|milli|grams|mg|liter|litre|pound|lbs|kilom|km|miles|volts|watts|servi|pages|perce)^how many (?:calories|ounces|oz|fl oz|ml|milliliters|millilitres|grams|mg|milligrams|liters|litres|pounds|"
            r"lbs|kilometers|km|miles|volts|watts|servings|pages|percent)\b",
            rf"\b(?:date|time|temperature|price|cost|percentage|weight|reading|setting|channel|station|frequency|"
            rf"volume|amount|balance|total)\b[^?]{{0,25}}\b(?:on|of|in) (?:the|this|that|my) (?:thermostat|screen|display|"
            rf"label|package|packet|receipt|meter|scale|clock|watch|monitor|phone|dial|gauge|sign|card|"
            rf"ticket|bill|tag|tv|television|radio|calculator|dashboard|odometer|speedometer)\b",
            r"\btext (?:on|in|of)\b", r"\bwhat (?:brand|make)\b", r"\bwhich brand\b", r"\bbrand (?:name|of)\b",
            r"\b(?:first|last|second|third) (?:word|letter|number|digit)\b", r"\bwhat page\b",
            r"\b(?:first|last) (?:two|three|four|five|few) (?:words|letters|lines|digits)\b", r"\bnumbers?\b(?<=what number|hat numbers)(?! of\b)", r"\bdigits?\b(?<=what digit|hat digits)",
            r"\b(?:what|which) company (?:made|makes|manufactured|produced|built)\b",
            r"\b(?:name|number) (?:of|on) (?:the|this) (?:store|shop|restaurant|cafe|bar|business|company|hotel|bank|"
            r"street|road|team|airline|website|band|magazine|newspaper|bus|train|boat|ship|plane|player|building|"
            r"product|station|app|game|movie|film|show|book|sign)\b",
            r"\b(?:year|date|price) (?:is|are|was) (?:on|written|printed|shown|displayed)\b",
            r"^(?:what|which) (?:street|road|avenue|highway|route|channel|station)\b(?! (?:is|are) (?:on|in|at|next|near|behind|beside|to)\b)",
            r"\bnumber on (?:the|his|her|this|that)\b", r"\bjersey number\b", r"\blicen[sc]e plate\b",
            r"(?#gate:websi|web|url|email|mail|addre)^(?:what|which|whose) (?:is |are )?(?:the )?(?:web ?site|url|web address|email|e-mail|address)\b",
            r"(?#gate:websi|web|url|email|mail|addre)^what's the (?:web ?site|url|web address|email|e-mail|address)\b",
            r"(?#gate:websi|web|url)\b(?:web ?site|url|web address) (?:is |are )?(?:on|at|listed|shown|written|printed|given|of)\b",
            r"\bphone number\b", r"\bspeed limit\b",
            r"\bwhat is the (?:score|price|date)\b", r"\bwhat's the (?:score|price|date)\b",
            r"\b(?:number|numbers|digits|text|word|words|letter|letters|time|score|price) (?:is |are )?(?:displayed|shown) on\b", r"\bthe logo\b(?<=what is the logo)", r"\bthe logo\b(?<=what's the logo)", r"\b(?:what|whose) logo\b",
            # the text itself is the subject: 'is the word in the logo "x"?', 'is the phrase "x" in the image?'
            rf"\b(?:word|words|phrase|phrases|text|texts|letters|slogan|slogans|sentence|sentences) (?:in|on|of) (?:the|this|that) "
            rf"{_TEXT_THING}\b",
            r"\b(?:word|words|phrase|phrases|text|texts|sentence|sentences|slogan|slogans) [\"“']",
            r"\baccording to the (?:menu|sign|label|text|writing|caption|poster|screen|note|document|receipt|ticket|book|cover)\b",
            r"\bbased on the (?:menu|sign|label|text|writing|caption|poster|screen|note|document|receipt|ticket|book|cover)\b")),
    Rule("ocr.book_semantic", OCR, SEMANTIC, "asks about the kind of book (genre, topic, edition)",
         _r(r"\bgenre\b", r"\bwhat (?:type|kind|sort|category) of book\b",
            r"^is this (?:a|an) [\w'&,.-]+(?: [\w'&,.-]+){0,5} book\b", r"\bis this book\b",
            r"\bbook (?:is )?(?:related|about)\b", r"\bwhat is (?:this|the) book about\b", r"\bcalendar\b",
            r"\b(?:cookbook|textbook|notebook|guidebook)s?\b", r"\bcomic book\b", r"\bfiction(?:al)?\b", r"\bnonfiction\b",
            r"\bedition\b")),
    # 5. Complex: strong cues ------------------------------------------------------
    Rule("complex.why", COMPLEX, None, "asks why: explanation needs reasoning", _r(r"\bwhy\b", r"\bhow come\b")),
    Rule("complex.hypothetical", COMPLEX, None, "a hypothetical or speculative question",
         _r(r"\b(?:might|could|would|should|will)\b", r"\bmay (?:be|have|indicate|suggest)\b",
            r"\bif\b(?<!tell if)(?<!see if)(?<!know if)(?<!check if)", r"\bsuppose\b", r"\bimagine\b", r"\bassum(?:e|ing)\b",
            r"\bhypothetical")),
    Rule("complex.describe", COMPLEX, None, "asks for a description or an explanation of the scene",
         _r(r"\bdescribe\b(?<!image describe)(?<!picture describe)(?<!photo describe)(?<!scene describe)",
            r"\bdescription\b", r"\bexplain", r"\belaborate\b", r"\banaly[sz]", r"\bsummar",
            r"\bcaption\b", r"\bnarrat", r"\bstory\b", r"\binterpret", r"\baccount of\b", r"\bdetail\b(?<=in detail)", r"\bdetail\b(?<=great detail)", r"\bdetail\b(?<=more detail)",
            r"\bdetail\b(?<=full detail)", r"\bdetail\b(?<=much detail)",
            r"\bdetailed\b", r"\bcomprehensive\b", r"\bhappening\b", r"\bgoing on\b",
            r"\bwhat do you (?:see|think|notice)\b", r"\btell me (?:about|what)\b",
            r"\b(?:key|main) (?:elements|features|aspects|points|objects)\b", r"\boverview\b",
            rf"\bwhat is (?:this|the) {_PIC} (?:about|showing|depicting)\b",
            rf"\bwhat (?:does|do) (?:this|the) {_PIC} (?:show|depict|convey|represent|capture)\b")),
    Rule("complex.inference", COMPLEX, None, "asks for an inference or knowledge beyond what is shown",
         _r(r"\binfer", r"\bsuggest", r"\bintent(?:ion|ions|ional)?\b", r"\blessons?\b", r"\blearn from\b",
            r"\bmoral\b", r"\btakeaways?\b", r"\bindicat(?:e|es|ed|ing|ion|ions)\b", r"\bsignif(?:y|ies)\b", r"\bsymboli[sz]",
            r"(?#gate:repre|symbo|stand)^what (?:does|do|might|could) [\w' -]{1,40}? (?:represent|symboli[sz]e|stand for)\b", r"\b(?:imply|implies|implication|implications)\b", r"\bpurpose\b", r"\breasons?\b", r"\bsignifican",
            r"\bimportan", r"\bpotential", r"\blikely\b", r"\bprobabl", r"\bpossibl", r"\bpredict", r"\bexpect",
            r"\bchallenge", r"\bbenefit", r"\badvantage", r"\bconsequence", r"\baffect", r"\beffects?\b", r"\binfluenc",
            r"\bunusual\b", r"\bstrange\b", r"\bfunny\b", r"\b(?:humor|humour|humorous)\b", r"\binteresting\b", r"\bemotion",
            r"\bmood\b", r"\b(?:feel|feels|feeling|feelings)\b", r"\batmosphere\b", r"\bopinion\b", r"\bthink\b", r"\bbelieve\b",
            r"\bguess\b", r"\bused for\b", r"\bcommonly\b", r"\btypically\b", r"\busually\b", r"\borigin\b",
            r"\binvent", r"\bnative to\b", r"\bfamous\b", r"\b(?:safe|safety|safely)\b", r"\bdanger", r"\b(?:risk|risks|risky)\b",
            r"\bprecaution", r"\btip\b", r"\btips\b", r"\badvice\b", r"\brecommend", r"\bfactors?\b", r"\bconsider",
            r"\bcontext\b", r"\boccasion\b", r"\bpopular\b", r"\b(?:come|comes) from\b",
            r"\b(?:what|which) (?:country|city|state|continent|era|century|decade)\b(?! (?:is|are) (?:highlighted|shown|marked|outlined)\b)",
            # judgement or advice: "is it a good idea", "is this a healthy meal"
            r"\b(?:good|bad) idea\b", r"\bnecessary\b", r"\bneed to\b", r"\b(?:good|bad|safe|right) (?:place|time|spot|day|choice) (?:to|for)\b", r"\b(?:wise|advisable|appropriate|suitable)\b", r"\b(?:healthy|unhealthy|nutritious)\b",
            # calculation and code: several steps before the answer
            r"\barithmetic\b", r"\bequations?\b", r"\bcalculat", r"\bcompute\b", r"\bsolve\b", r"\bresult of\b",
            r"\bvalue of the (?:expression|formula|sum|product|function|variable)\b", r"\btotal (?:price|cost|amount|value)\b",
            r"\bvalue of [\"']?[a-z][\"']?(?![\w'])", r"\bequals?\b", r"\bequal to\b", r"(?#gate:plus|minus|multi|divid)\b(?:plus|minus|multiplied by|divided by)\b",
            r"(?#gate:+|*|×|÷|=)\d ?[+*×÷=] ?\d",
            r"\b(?:area|perimeter|circumference|radius|diameter) of (?:the|this|a|an|each) (?:[\w-]+ )?(?:square|rectangle|triangle|"
            r"circle|shape|figure|polygon|parallelogram|trapezoid|hexagon|pentagon|rhombus)\b",
            # a person's state of mind, preferences or status: inferred, not seen
            r"\b(?:fun|enjoy|enjoying|enjoys|happy|sad|angry|bored|excited|scared|afraid|nervous|professional|amateur)\b",
            r"\b(?:like|likes|enjoy|enjoys|love|loves|prefer|prefers|want|wants) to\b",
            r"\bof the (?:code|program)\b", r"(?#gate:code|progr|scrip|snipp)\b(?:python|java|javascript|typescript|sql|html|css|ruby|php|rust|go|"
            r"kotlin|swift|bash|shell|c|c#) (?:code|program|script|snippet)\b", r"(?#gate:code|progr|snipp)\bc\+\+ (?:code|program|snippet)\b",
            # advice or planning for the asker: "what can I cook with these?", "how can we get there?"
            r"(?#gate:can)\b(?:what|how|where) can (?:i|we)\b", r"(?#gate:can|could)\b(?:that|which) (?:i|we) (?:can|could)\b",
            # science and world knowledge (ScienceQA style): the image alone does not answer these
            r"\badapt", r"\bpropert(?:y|ies)\b", r"\bexperiment", r"\bmagnet", r"\bforces?\b", r"\bconcentration\b",
            r"\bparticles?\b", r"\boffspring\b", r"\bgenotype", r"\bphenotype", r"\binherit", r"\bpersuasive\b",
            r"\bstatements? (?:is|are) true\b", r"\bcapital of\b", r"\baverage\b", r"\borganisms?\b", r"\bgenus\b",
            r"\becosystem", r"\bfood (?:web|chain)\b", r"\b(?:producer|consumer)s?\b", r"\btimeline\b", r"\bkinetic\b",
            r"\btemperature\b", r"\bclimate\b", r"\bweather (?:pattern|condition)s\b", r"\benergy\b",
            r"\bsolid,? (?:or )?(?:a )?liquid\b", r"\bliquid,? (?:or )?(?:a )?(?:solid|gas)\b",
            # language arts (ScienceQA style): about the words, not the image
            r"\b(?:rhyme|rhymes|rhyming)\b", r"\btense\b", r"\b(?:compound|complex|simple|declarative|interrogative|exclamatory) sentence\b",
            r"\b(?:syllable|syllables|alliteration|simile|metaphor|idiom|grammar|punctuation|hyperbole|personification)\b",
            r"\bfigures? of speech\b", r"\b(?:allusion|irony|euphemism|oxymoron|paradox|onomatopoeia)\b")),
    Rule("complex.request", COMPLEX, None, "an open-ended writing or planning request",
         _r(r"(?#gate:write|compo|creat|gener|draft|list|give|sugge|plan|desig|trans|rewri|summa|help)"
            r"^(?:can you |could you )?(?:write|compose|create|generate|draft|list|give me|suggest|plan|design|"
            r"translate|rewrite|summarize|summarise|help)\b",
            r"(?#gate:turn|conve|trans|build|imple|code|progr|recre)^(?:can you |could you )?(?:turn|convert|transform|build|implement|code|program|recreate)\b[^?]* (?:into|as|in|using|with)\b")),
    Rule("complex.long_request", COMPLEX, None, "a long free-form prompt (30 words or more), e.g. text-only chat",
         _r(rf"(?#gate:{LONG})^(?:\S+\s+){{{LONG_WORDS - 1}}}\S")),
    # 6. Complex: comparing two things before answering ------------------------------------------
    Rule("complex.compare", COMPLEX, None, "compares or filters objects before answering (several steps)",
         _r(r"\b(?:more|fewer|less|bigger|smaller|larger|taller|shorter|longer|older|younger|heavier|lighter|faster|"
            r"slower|wider|narrower|thicker|thinner|darker|brighter|cheaper|better|worse|greater)\s+(?:[\w-]+\s+){0,3}than\b",
            r"\bmore of\b", r"\bthe same\b", r"\bsame (?:[\w-]+ )?as\b", r"\bdifferen(?:t|ce)\b", r"\bcompar",
            r"\bin common\b", r"\bcombined\b", r"\baltogether\b",
            r"^(?:who|which|what) is (?:taller|shorter|bigger|smaller|larger|older|younger|heavier|lighter|faster|"
            r"slower|longer|wider)\b",
            r"^(?:who|which|what) one is (?:taller|shorter|bigger|smaller|larger|older|younger|heavier|lighter|faster|"
            r"slower|longer|wider)\b",
            r"\btotal number of [\w ]+ and\b", r"\bsum of\b", r"\bexcluding\b", r"\bnot counting\b",
            r"\bapart from\b", r"\bother than\b", r"\bexcept\b", r"^among\b", r"\bhow many other\b")),
    # 7. Object questions that a location does not turn into Spatial ----------------------------
    Rule("object.attribute", OBJECT, None, "asks a visual attribute or a count of a named object (a location only picks it)",
         _r(r"^(?:what|which) (?:colou?rs?|material|shape|pattern|size|flavou?r)\b",
            r"^what is the (?:colou?r|material|shape|pattern|size)\b", r"^how many\b", r"\bmade (?:of|from|out of)\b")),
    Rule("object.marked", OBJECT, None, "asks about the object a box drawn in the image marks (no coordinates)",
         _r(r"\b(?:in|inside|within) the (?:red|green|blue|yellow|white|black|orange) (?:bounding )?box\b",
            r"\b(?:in|inside|within) the bounding box\b")),
    Rule("object.highlighted", OBJECT, None, "asks which thing is highlighted or marked (recognition)",
         _r(r"\b(?:is|are) (?:highlighted|marked|outlined|circled|shaded)\b", r"\bshown\W*$")),
    Rule("object.activity", OBJECT, None, "asks what a person or animal is doing, wearing or holding (a location only picks them)",
         _r(r"\bdoing\b", r"\b(?:wearing|holding|carrying|eating|drinking|playing|riding|using|reading|watching)\W*$",
            # yes/no: "is the person on the left wearing a hat?" asks what they wear, not where they are
            r"(?#gate:weari|holdi|carry|eatin|drink|ridin|using|playi|readi|watch)^(?:is|are|was|were) "
            r"(?:the|this|that|these|those) [\w' -]{1,40}? (?:wearing|holding|carrying|eating|drinking|riding|using|"
            r"playing|reading|watching)\b")),
    Rule("object.state", OBJECT, None, "asks whether something is on or off (a state, not a place)",
         _r(rf"(?#gate:on|off)^(?:is|are|was|were) {_DET} (?:[\w'-]+ ){{1,3}}?(?:turned |switched )?(?:on|off)"
            r"(?:\W*$| (?:in|at|inside|now|right now|or off|or on)\b)")),
    Rule("object.scene_place", OBJECT, None, "asks what kind of place the photo shows",
         _r(rf"\bwhere (?:is|was|are|were) (?:this|these|the {_PIC})\b(?: {_PIC})?(?: (?:taken|shot|located))?\W*$",
            r"\bwhere (?:was|is) (?:this|the) \w+ taken\b",
            rf"\b{_PIC} (?:taken|captured|shot|photographed) (?:in|at) (?:a|an|the) (?:place|location|setting)\b")),
    # 8. Spatial: where things are, or a thing identified by where it is ----------------------------
    Rule("spatial.relation", SPATIAL, None, "asks about relative position",
         _r(r"\b(?:to|on|at) the (?:left|right)\b", r"\b(?:left|right) (?:of|side|hand|corner|edge|half|part)\b", r"\b(?:left|right)\b-hand\b",
            r"\b(?:leftmost|rightmost|topmost|bottommost|uppermost|lowermost)\b", r"\bleft or (?:to the )?right\b",
            r"\bright or (?:to the )?left\b", r"\b(?:which|what) side\b", r"\bwhich (?:hand|arm|leg|foot|direction|way)\b",
            r"\babove\b", r"\bbelow\b",
            r"\bunder(?:neath)?\b", r"\bbeneath\b", r"\bbehind\b", r"\bin front\b", r"\bnext to\b", r"\bbeside\b",
            r"\b(?:near|nearby|nearest|nearer)\b", r"\bclose (?:to|by)\b", r"\b(?:closest|closer)\b", r"\bfar from\b", r"\bfarthest\b", r"\bfarther from\b",
            r"\bfurthest\b", r"\bfurther (?:left|right|up|down|away)\b", r"\bbetween\b", r"\bacross from\b",
            r"\bopposite\b", r"\bon top\b", r"\batop\b", r"\bsurround", r"\badjacent\b", r"\balongside\b",
            r"\bfacing\b", r"\b(?:higher|highest|lower|lowest)\b", r"\b(?:north|south|east|west|northern|southern|eastern|western|"
            r"northernmost|southernmost|easternmost|westernmost|northward|southward|eastward|westward)\b",
            r"\b(?:at|in|on) the (?:top|bottom|center|centre|middle|corner|edge|side|back|front|foreground|background)\b",
            r"\b(?:top|bottom) (?:of|left|right|half|part)\b", r"\bin which part\b", r"\b(?:what|which) part of\b",
            r"\bposition", r"\blocat(?:ed|ion)\b", r"\borientation\b", r"\bdirection\b", r"\binside\b",
            r"\boutside of\b")),
    Rule("spatial.where", SPATIAL, None, "asks where something is", _r(r"^where\b", r"\bwhere (?:is|are|was|were|do|does|did|can)\b")),
    Rule("spatial.placement", SPATIAL, None, "asks what something rests on or is placed in",
         _r(r"\b(?:sitting|standing|lying|laying|resting|perched|mounted|hanging|leaning|parked|placed|sits|stands|"
            r"rests|lies|hangs|leans|kept|stored|stacked|piled|seated|floating|swimming|attached) "
            rf"(?:on|in|at|against|from|atop|inside|by|over|onto|upon)\b(?! (?:the|this|a) {_PIC}\b)")),
    Rule("spatial.on_in", SPATIAL, None, "asks whether or what is on or in another object",
         _r(rf"^(?:is|are) {_DET} (?!{_PIC}\b)(?:{_NOT_ACTION}[\w'-]+ ){{1,3}}?(?:on|in|at|over|onto|off) {_DET}\b(?! {_MEDIUM}\b)",
            rf"^(?:what|who) (?:is|are) (?:on|in|atop|over|inside) {_DET}\b(?! {_MEDIUM}\b)",
            rf"^(?:what|who)'s (?:on|in|atop|over|inside) {_DET}\b(?! {_MEDIUM}\b)",
            rf"^(?:what|which|who) (?:kind of |type of |sort of )?[\w-]+(?: is| are|'s) (?:on|in|atop|over|inside) {_DET}\b(?! {_MEDIUM}\b)",
            rf"^what (?:is|are) the (?:name of the )?[\w-]+ (?:on|in|atop|inside) {_DET}\b(?! {_MEDIUM}\b)",
            rf"^what's the (?:name of the )?[\w-]+ (?:on|in|atop|inside) {_DET}\b(?! {_MEDIUM}\b)",
            rf"^(?:what|which|who) (?:is|are) (?:the )?(?:name of the )?[\w -]{{1,30}}? (?:that|which|who) (?:is|are) "
            rf"(?:on|in|atop|inside) {_DET}\b(?! {_MEDIUM}\b)",
            rf"^(?:what|which|who)'s (?:the )?(?:name of the )?[\w -]{{1,30}}? (?:that|which|who) (?:is|are) "
            rf"(?:on|in|atop|inside) {_DET}\b(?! {_MEDIUM}\b)")),
    # 9. Object: what kind of thing it is (after Spatial: "what kind of device is left of the monitor" is Spatial)
    Rule("object.kind", OBJECT, None, "asks what kind or type of thing an object is",
         _r(r"^(?:what|which) (?:type|kind|sort|breed|species)\b", r"^what is the (?:type|kind|breed|species)\b")),
)

_DEFAULT_OBJECT = tuple(
    (rule_id, re.compile(pattern), Label(OBJECT, None, f"{rule_id}: no Bounding/OCR/Complex/Spatial cue; {why}", rule_id))
    for rule_id, pattern, why in (
        ("object.count", r"\bhow many\b|\bnumber of\b", "counts objects"),
        ("object.yes_no", r"^(?:is|are|does|do|can|was|were|has|have|did)\b", "a yes/no question about what is shown"),
        ("object.identify", r"", "asks to recognise an object, an activity or an attribute"),
    ))


def _build_index():
    """All question alternatives in rule order, key -> their positions, and the ungated positions."""
    alts: list[tuple[Rule, re.Pattern]] = []
    gated: dict[str, list[int]] = {}
    always: list[int] = []
    on_answer: list[tuple[Rule, re.Pattern]] = []
    for rule in RULES:
        for pattern, gate in rule.alternatives:
            if rule.on == "answer":
                on_answer.append((rule, pattern))
                continue
            if gate is None:
                always.append(len(alts))
            else:
                for k in gate:
                    gated.setdefault(k, []).append(len(alts))
            alts.append((rule, pattern))
    return alts, {k: tuple(v) for k, v in gated.items()}, tuple(always), on_answer


_ALTS, _GATED, _ALWAYS, _ON_ANSWER = _build_index()
# gates that are symbols, not words (",", "+", "="): looked up when the question contains them
_SYMBOL_GATES = tuple(k for k in _GATED if not k.isalnum() and k != LONG)
assert all(r.category == BOUNDING for r in RULES[: RULES.index(next(r for r in RULES if r.on == "answer"))]), \
    "the answer rule must follow the question's Bounding rules (classify relies on it)"


_CACHE: dict[str, tuple[Label, str]] = {}
_CACHE_MAX = 200_000  # LLaVA repeats question texts a lot (OCR-VQA, VQAv2 templates)


def classify(question: str, answer: str | None = None) -> tuple[Label, str]:
    """(label, rule id) for one question; ``answer`` is optional extra evidence.

    Same decision as walking RULES in order (``classify_reference``): the only
    answer rule (box coordinates in the answer) sits right after the question's
    Bounding rules, so a non-Bounding question label is overridden by it.
    """
    found = _CACHE.get(question)
    if found is None:
        found = _exam_override(question, _classify_question(normalise(question)))
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[question] = found
    if answer and found[0].category != BOUNDING:
        box = _answer_rule(answer)
        if box:
            return box
    return found


def _classify_question(q: str) -> tuple[Label, str]:
    cands = set(_ALWAYS)
    get = _GATED.get
    for sym in _SYMBOL_GATES:
        if sym in q:
            cands.update(get(sym))
    if q.count(" ") >= LONG_WORDS - 1:   # normalise() leaves single spaces between words
        cands.update(get(LONG, ()))
    for w in q.translate(_NOT_WORD).split():
        hit = get(w[:KEY])
        if hit:
            cands.update(hit)
    for i in sorted(cands):
        rule, pattern = _ALTS[i]
        m = pattern.search(q)
        if m:
            return _label(rule, m), rule.id
    for rule_id, pat, label in _DEFAULT_OBJECT:
        if pat.search(q):
            return label, rule_id
    raise AssertionError("unreachable: the last default rule matches everything")


def classify_reference(question: str, answer: str | None = None) -> tuple[Label, str]:
    """The same decision without the word gates: slow, for tests of the fast path."""
    q = normalise(question)
    for rule in RULES:
        if rule.on == "answer":
            continue
        m = rule.search(q)
        if m:
            return _with_answer(_exam_override(question, (_label(rule, m), rule.id)), answer)
    for rule_id, pat, label in _DEFAULT_OBJECT:
        if pat.search(q):
            return _with_answer(_exam_override(question, (label, rule_id)), answer)
    raise AssertionError("unreachable")


def _with_answer(found: tuple[Label, str], answer: str | None) -> tuple[Label, str]:
    if answer and found[0].category != BOUNDING:
        return _answer_rule(answer) or found
    return found


# A science-exam item (ScienceQA's format: a "Context:" line and lettered options) asks for knowledge
# the image alone does not give: when only Object's weak defaults matched, it is Complex. Attributes,
# things marked on a map ("which country is highlighted?") and positions keep their own rules.
_EXAM_WEAK = frozenset({"object.kind", "object.identify", "object.yes_no"})
_EXAM = Label(COMPLEX, None, "complex.exam: a science-exam item (a Context: line and lettered options) "
                             "that no Object or Spatial cue claims: it needs knowledge beyond the image", "complex.exam")


def _exam_override(question: str, found: tuple[Label, str]) -> tuple[Label, str]:
    if found[1] in _EXAM_WEAK and "ontext:" in question:
        low = question.lower()
        if _CONTEXT_LINE.search(low) and _OPTION_LINE.search(low):
            return _EXAM, _EXAM.rule
    return found


def _answer_rule(answer: str):
    for rule, pattern in _ON_ANSWER:
        m = pattern.search(answer)
        if m:
            return _label(rule, m), rule.id
    return None


_LABELS: dict[tuple[str, str], Label] = {}


def _label(rule: Rule, m: re.Match) -> Label:
    """The label for a match (shared objects: labels are immutable, matched texts repeat)."""
    key = (rule.id, m.group(0))
    lab = _LABELS.get(key)
    if lab is None:
        lab = Label(rule.category, rule.subcategory, f"{rule.id}: {rule.why} (matched {m.group(0)!r})", rule.id)
        if len(_LABELS) < 100_000:
            _LABELS[key] = lab
    return lab


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
