"""Question templates of the synthetic benchmark, one function per template.

Each template takes a scene or a book and the caller's ``random.Random`` and
returns ``(question, answer)`` or None when it does not apply to that image
(e.g. "what colour is the circle?" needs exactly one circle). Every question
names its objects in full, so each turn is answerable on its own. Answers are
short and lower case: a word, a number, yes/no, an option letter, a box.

Phrasings follow LLaVA-1.5's data (the fixed RefCOCO/VG box prompts, OCR-VQA's
book templates, GQA/VQAv2's "Answer the question using a single word or
phrase." suffix, A-OKVQA's lettered options) and vary around them, so a
categoriser cannot key on strings only this generator uses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from vlmdyn_cli.data.categories import (BBOX, BOUNDING, COMPLEX, DESCRIBE, OBJECT, OCR, RECOGNITION,
                                        SEMANTIC, SPATIAL)
from vlmdyn_cli.data.synth_books import GENRE_ADJ, GENRE_TOPIC, GENRES, Book
from vlmdyn_cli.data.synth_scenes import COLORS, SHAPES, Scene, SceneObject

SHORT_SUFFIX = "Answer the question using a single word or phrase."
MC_SUFFIX = "Answer with the option's letter from the given choices directly."
BOX_PROMPT = "Please provide the bounding box coordinate of the region this sentence describes: "
REGION_PROMPT = "Please provide a short description for this region: "

QA = tuple[str, str]


@dataclass(frozen=True)
class Template:
    id: str
    category: str
    subcategory: str | None
    weight: float
    kind: str  # "scene" or "book"
    fn: Callable[[object, random.Random], QA | None]


TEMPLATES: list[Template] = []


def template(id: str, category: str, weight: float, kind: str = "scene", sub: str | None = None):
    def deco(fn):
        TEMPLATES.append(Template(id, category, sub, weight, kind, fn))
        return fn
    return deco


# ---------------------------------------------------------------- helpers
def short(q: str, rng: random.Random, p: float = 0.5) -> str:
    """Append LLaVA's single-word instruction with probability p."""
    return f"{q}\n{SHORT_SUFFIX}" if rng.random() < p else q


def choice_question(q: str, answer: str, pool: list[str], rng: random.Random) -> QA:
    """A lettered multiple-choice question (A-OKVQA style); the answer is the letter."""
    others = [x for x in dict.fromkeys(pool) if x != answer]
    opts = rng.sample(others, min(3, len(others))) + [answer]
    rng.shuffle(opts)
    letters = "ABCD"
    lines = [f"{letters[i]}. {o}" for i, o in enumerate(opts)]
    return f"{q}\n" + "\n".join(lines) + f"\n{MC_SUFFIX}", letters[opts.index(answer)]


def fmt_box(box: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in box) + "]"


def ref(o: SceneObject, rng: random.Random, article: bool = True) -> str:
    """A unique description of an object: "the red circle", sometimes with its size."""
    body = f"{o.size} {o.name}" if rng.random() < 0.25 else o.name
    return f"the {body}" if article else body


def plural(shape: str) -> str:
    return shape + "s"


def yn(b: bool) -> str:
    return "yes" if b else "no"


def _gap(scene: Scene) -> float:
    """Minimum centre distance (px) for a relation to count as clear."""
    return 4 * scene.size / 64


def region_of(o: SceneObject, s: int) -> str:
    col = ("left", "", "right")[min(2, int(3 * o.cx / s))]
    row = ("top", "", "bottom")[min(2, int(3 * o.cy / s))]
    return " ".join(w for w in (row, col) if w) or "center"


def _pair(scene: Scene, rng: random.Random) -> tuple[SceneObject, SceneObject]:
    a, b = rng.sample(scene.objects, 2)
    return a, b


# ---------------------------------------------------------------- Object
@template("obj.color", OBJECT, 3)
def obj_color(sc: Scene, rng):
    shapes = [o.shape for o in sc.objects]
    cands = [o for o in sc.objects if shapes.count(o.shape) == 1]
    if not cands:
        return None
    o = rng.choice(cands)
    word = rng.choice(("color", "color", "colour"))
    q = rng.choice((f"What {word} is the {o.shape}?", f"What is the {word} of the {o.shape}?",
                    f"What {word} is the {o.shape} in the image?", f"Which {word} does the {o.shape} have?"))
    if rng.random() < 0.12:
        return choice_question(f"What {word} is the {o.shape}?", o.color, list(COLORS), rng)
    return short(q, rng), o.color


@template("obj.shape", OBJECT, 3)
def obj_shape(sc: Scene, rng):
    colors = [o.color for o in sc.objects]
    cands = [o for o in sc.objects if colors.count(o.color) == 1]
    if not cands:
        return None
    o = rng.choice(cands)
    q = rng.choice((f"What shape is the {o.color} object?", f"What is the shape of the {o.color} object?",
                    f"Which shape is {o.color}?", f"What kind of shape is {o.color} in this picture?"))
    if rng.random() < 0.12:
        return choice_question(f"What shape is the {o.color} object?", o.shape, list(SHAPES), rng)
    return short(q, rng), o.shape


@template("obj.count_shape", OBJECT, 2)
def obj_count_shape(sc: Scene, rng):
    shape = rng.choice(SHAPES)
    n = sum(o.shape == shape for o in sc.objects)
    q = rng.choice((f"How many {plural(shape)} are there?", f"How many {plural(shape)} are in the image?",
                    f"How many {plural(shape)} can you see?"))
    return short(q, rng), str(n)


@template("obj.count_color", OBJECT, 1.5)
def obj_count_color(sc: Scene, rng):
    color = rng.choice([o.color for o in sc.objects] + list(COLORS))
    n = sum(o.color == color for o in sc.objects)
    q = rng.choice((f"How many {color} objects are there?", f"How many {color} shapes are in the picture?"))
    return short(q, rng), str(n)


@template("obj.count_all", OBJECT, 1)
def obj_count_all(sc: Scene, rng):
    q = rng.choice(("How many objects are in the image?", "How many shapes are there in total?",
                    "How many objects can be seen in this picture?"))
    return short(q, rng), str(len(sc.objects))


@template("obj.exists", OBJECT, 1.5)
def obj_exists(sc: Scene, rng):
    present = {(o.color, o.shape) for o in sc.objects}
    if rng.random() < 0.5:
        c, s = rng.choice(sorted(present))
    else:
        absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
        c, s = rng.choice(absent)
    q = rng.choice((f"Is there a {c} {s} in the image?", f"Is there a {c} {s}?",
                    f"Does the picture contain a {c} {s}?"))
    return short(q, rng), yn((c, s) in present)


@template("obj.size", OBJECT, 1.5)
def obj_size(sc: Scene, rng):
    o = rng.choice(sc.objects)
    q = rng.choice((f"Is the {o.name} small or large?", f"What size is the {o.name}?",
                    f"How big is the {o.name}, small or large?"))
    return short(q, rng), o.size


@template("obj.is_color", OBJECT, 1)
def obj_is_color(sc: Scene, rng):
    shapes = [o.shape for o in sc.objects]
    cands = [o for o in sc.objects if shapes.count(o.shape) == 1]
    if not cands:
        return None
    o = rng.choice(cands)
    c = o.color if rng.random() < 0.5 else rng.choice([c for c in COLORS if c != o.color])
    return short(f"Is the {o.shape} {c}?", rng), yn(c == o.color)


# ---------------------------------------------------------------- Spatial
@template("spa.left_of", SPATIAL, 2.5)
def spa_left_of(sc: Scene, rng):
    a, b = _pair(sc, rng)
    if abs(a.cx - b.cx) < _gap(sc):
        return None
    if rng.random() < 0.5:
        q = rng.choice((f"Is {ref(a, rng)} to the left of {ref(b, rng)}?", f"Is {ref(a, rng)} left of {ref(b, rng)}?"))
        return short(q, rng), yn(a.cx < b.cx)
    q = rng.choice((f"Is {ref(a, rng)} to the right of {ref(b, rng)}?", f"Is {ref(a, rng)} on the right of {ref(b, rng)}?"))
    return short(q, rng), yn(a.cx > b.cx)


@template("spa.above", SPATIAL, 2)
def spa_above(sc: Scene, rng):
    a, b = _pair(sc, rng)
    if abs(a.cy - b.cy) < _gap(sc):
        return None
    if rng.random() < 0.5:
        return short(f"Is {ref(a, rng)} above {ref(b, rng)}?", rng), yn(a.cy < b.cy)
    q = rng.choice((f"Is {ref(a, rng)} below {ref(b, rng)}?", f"Is {ref(a, rng)} under {ref(b, rng)}?"))
    return short(q, rng), yn(a.cy > b.cy)


@template("spa.above_or_below", SPATIAL, 1.5)
def spa_above_or_below(sc: Scene, rng):
    a, b = _pair(sc, rng)
    if rng.random() < 0.5:
        if abs(a.cy - b.cy) < _gap(sc):
            return None
        q = f"Is {ref(a, rng)} above or below {ref(b, rng)}?"
        return short(q, rng), "above" if a.cy < b.cy else "below"
    if abs(a.cx - b.cx) < _gap(sc):
        return None
    q = rng.choice((f"Is {ref(a, rng)} to the left or to the right of {ref(b, rng)}?",
                    f"Which side of {ref(b, rng)} is {ref(a, rng)} on?"))
    return short(q, rng), "left" if a.cx < b.cx else "right"


@template("spa.side", SPATIAL, 1.5)
def spa_side(sc: Scene, rng):
    o = rng.choice(sc.objects)
    if abs(o.cx - sc.size / 2) < _gap(sc):
        return None
    q = rng.choice((f"Is {ref(o, rng)} on the left or right side of the image?",
                    f"On which side of the picture is {ref(o, rng)}?"))
    return short(q, rng), "left" if o.cx < sc.size / 2 else "right"


@template("spa.where", SPATIAL, 1.5)
def spa_where(sc: Scene, rng):
    o = rng.choice(sc.objects)
    q = rng.choice((f"Where is {ref(o, rng)} in the image?", f"Where is {ref(o, rng)} located?",
                    f"In which part of the image is {ref(o, rng)}?"))
    return short(q, rng), region_of(o, sc.size)


@template("spa.extreme", SPATIAL, 1.5)
def spa_extreme(sc: Scene, rng):
    key, phrasings = rng.choice((
        (lambda o: o.cx, ("What is the leftmost object?", "Which object is furthest to the left?")),
        (lambda o: -o.cx, ("What is the rightmost object?", "Which object is furthest to the right?")),
        (lambda o: o.cy, ("Which object is at the top of the image?", "What is the highest object in the picture?")),
        (lambda o: -o.cy, ("Which object is at the bottom of the image?", "What is the lowest object in the picture?")),
    ))
    ranked = sorted(sc.objects, key=key)
    if abs(key(ranked[0]) - key(ranked[1])) < _gap(sc):
        return None
    return short(rng.choice(phrasings), rng), ranked[0].name


@template("spa.neighbor", SPATIAL, 1)
def spa_neighbor(sc: Scene, rng):
    if len(sc.objects) < 3:
        return None
    o = rng.choice(sc.objects)
    others = sorted((x for x in sc.objects if x is not o),
                    key=lambda x: (x.cx - o.cx) ** 2 + (x.cy - o.cy) ** 2)
    d0 = ((others[0].cx - o.cx) ** 2 + (others[0].cy - o.cy) ** 2) ** 0.5
    d1 = ((others[1].cx - o.cx) ** 2 + (others[1].cy - o.cy) ** 2) ** 0.5
    if d1 - d0 < 2 * _gap(sc):
        return None
    q = rng.choice((f"What is the object closest to {ref(o, rng)}?", f"Which object is next to {ref(o, rng)}?",
                    f"What is near {ref(o, rng)}?"))
    return short(q, rng), others[0].name


@template("spa.relation_what", SPATIAL, 1.5)
def spa_relation_what(sc: Scene, rng):
    o = rng.choice(sc.objects)
    g = _gap(sc)
    rel, test = rng.choice((
        ("to the left of", lambda x: x.cx < o.cx - g),
        ("to the right of", lambda x: x.cx > o.cx + g),
        ("above", lambda x: x.cy < o.cy - g),
        ("below", lambda x: x.cy > o.cy + g),
    ))
    hits = [x for x in sc.objects if x is not o and test(x)]
    if len(hits) != 1:
        return None
    q = rng.choice((f"What is {rel} {ref(o, rng)}?", f"Which object is {rel} {ref(o, rng)}?"))
    return short(q, rng), hits[0].name


@template("spa.which_higher", SPATIAL, 0.8)
def spa_which_higher(sc: Scene, rng):
    a, b = _pair(sc, rng)
    if rng.random() < 0.5:
        if abs(a.cy - b.cy) < _gap(sc):
            return None
        q = f"Which is higher in the image, {ref(a, rng)} or {ref(b, rng)}?"
        return short(q, rng), (a if a.cy < b.cy else b).name
    if abs(a.cx - b.cx) < _gap(sc):
        return None
    q = f"Which is further left, {ref(a, rng)} or {ref(b, rng)}?"
    return short(q, rng), (a if a.cx < b.cx else b).name


# ---------------------------------------------------------------- Bounding
@template("box.bbox", BOUNDING, 5, sub=BBOX)
def box_bbox(sc: Scene, rng):
    o = rng.choice(sc.objects)
    desc = ref(o, rng, article=rng.random() < 0.5)
    r = rng.random()
    if r < 0.8:
        q = f"{BOX_PROMPT}{desc}."
    elif r < 0.9:
        q = f"Give the bounding box coordinates of {ref(o, rng)}."
    else:
        q = f"Locate {ref(o, rng)} in the image and output its box as [x1, y1, x2, y2]."
    return q, fmt_box(o.box(sc.size))


@template("box.describe", BOUNDING, 4, sub=DESCRIBE)
def box_describe(sc: Scene, rng):
    o = rng.choice(sc.objects)
    b = fmt_box(o.box(sc.size))
    r = rng.random()
    if r < 0.8:
        q = f"{REGION_PROMPT}{b}."
    elif r < 0.9:
        q = f"What object is inside the region {b}?"
    else:
        q = f"Describe the area {b} in a few words."
    return q, o.name


# ---------------------------------------------------------------- Complex
# Complex questions as in LLaVA's data: "why / what might" questions whose answer common sense
# gives from the question alone (METHOD.md: "often answerable without the image"), and two-step
# yes/no questions about the picture (a condition, then a count or a comparison). A tiny model learns
# the first kind, and the usual answer of the second, early in the epoch, and little after:
# Complex plateaus early (finding 4c).
WHY = (("Why might someone put shapes like these on a table?", "to play a game"),
       ("What might a child do with shapes like these?", "sort them by color"),
       ("What could a teacher use a picture like this for?", "to teach shapes and colors"))


@template("cpx.why", COMPLEX, 4.5)
def cpx_why(sc: Scene, rng):
    return rng.choice(WHY)


YES_SHARE = 0.75   # two-step yes/no questions: the share answered "yes" (a stable usual answer)


def _yes_or_no(rng: random.Random, cases: list[tuple[str, bool]]) -> tuple[str, bool] | None:
    """One of (question, answer) ``cases``, answered "yes" with chance YES_SHARE where both exist."""
    want = rng.random() < YES_SHARE
    pick = [c for c in cases if c[1] == want] or None
    return rng.choice(pick) if pick else None


@template("cpx.remove_any", COMPLEX, 1.5)
def cpx_remove_any(sc: Scene, rng):
    cases = [(f"If all {c} objects were removed, would any {plural(sh)} remain?",
              any(o.shape == sh and o.color != c for o in sc.objects))
             for c in sorted({o.color for o in sc.objects}) for sh in SHAPES]
    got = _yes_or_no(rng, cases)
    return None if got is None else (short(got[0], rng, 0.3), yn(got[1]))


@template("cpx.more_than", COMPLEX, 1.5)
def cpx_more_than(sc: Scene, rng):
    count = {sh: sum(o.shape == sh for o in sc.objects) for sh in SHAPES}
    cases = [(f"Are there more {plural(a)} than {plural(b)} in the image?", count[a] > count[b])
             for a in SHAPES for b in SHAPES if a != b]
    got = _yes_or_no(rng, cases)
    return None if got is None else (short(got[0], rng, 0.3), yn(got[1]))


@template("cpx.same_color", COMPLEX, 1)
def cpx_same_color(sc: Scene, rng):
    cases = [(f"Does any other object have the same color as {ref(o, rng)}?",
              any(x.color == o.color for x in sc.objects if x is not o)) for o in sc.objects]
    got = _yes_or_no(rng, cases)
    return None if got is None else (short(got[0], rng, 0.3), yn(got[1]))


@template("cpx.compare_size", COMPLEX, 1)
def cpx_compare_size(sc: Scene, rng):
    a, b = _pair(sc, rng)
    if a.size == b.size:
        return None
    bigger = rng.random() < 0.5
    word = "bigger" if bigger else "smaller"
    q = f"Is {ref(a, rng)} {word} than {ref(b, rng)}?"
    return short(q, rng, 0.3), yn((a.size == "large") == bigger)


@template("cpx.describe", COMPLEX, 0.6)
def cpx_describe(sc: Scene, rng):
    names = [o.name for o in sorted(sc.objects, key=lambda o: o.cx)]
    q = rng.choice(("Describe the image briefly, listing the objects from left to right.",
                    "Can you describe what this picture shows, from left to right?"))
    return q, ", ".join(names[:-1]) + " and " + names[-1]


# ---------------------------------------------------------------- OCR (book covers)
@template("ocr.author", OCR, 2.2, kind="book", sub=RECOGNITION)
def ocr_author(b: Book, rng):
    q = rng.choice(("Who wrote this book?", "Who is the author of this book?", "Who is the author of this book?",
                    "Whose name is printed at the bottom of this cover?"))
    return short(q, rng, 0.4), b.author


@template("ocr.title", OCR, 2.2, kind="book", sub=RECOGNITION)
def ocr_title(b: Book, rng):
    q = rng.choice(("What is the title of this book?", "What is the title of this book?",
                    "What is the name of this book?", "What title is written on the cover?"))
    return short(q, rng, 0.4), b.title


@template("ocr.title_word", OCR, 0.6, kind="book", sub=RECOGNITION)
def ocr_title_word(b: Book, rng):
    first, last = b.title.split()
    if rng.random() < 0.5:
        return "What is the first word of the title on this cover?", first
    return "What is the last word written in the title of this book?", last


@template("ocr.genre", OCR, 2, kind="book", sub=SEMANTIC)
def ocr_genre(b: Book, rng):
    q = rng.choice(("What is the genre of this book?", "What type of book is this?",
                    "What kind of book is this?", "What is this book about?"))
    if rng.random() < 0.1:
        return choice_question("What is the genre of this book?", b.genre, sorted(GENRES), rng)
    return short(q, rng, 0.4), b.genre


@template("ocr.is_genre", OCR, 2, kind="book", sub=SEMANTIC)
def ocr_is_genre(b: Book, rng):
    g = b.genre if rng.random() < 0.5 else rng.choice([g for g in GENRES if g != b.genre])
    if g == "cooking" and rng.random() < 0.5:
        q = "Is this a cookbook?"
    elif rng.random() < 0.5:
        q = f"Is this a {GENRE_ADJ[g]} book?"
    else:
        q = f"Is this book related to {GENRE_TOPIC[g]}?"
    return short(q, rng, 0.3), yn(g == b.genre)


@template("ocr.fiction", OCR, 1, kind="book", sub=SEMANTIC)
def ocr_fiction(b: Book, rng):
    if rng.random() < 0.5:
        return short("Is this book fiction or nonfiction?", rng, 0.3), "fiction" if b.fiction else "nonfiction"
    return short("Is this a work of fiction?", rng, 0.3), yn(b.fiction)


def templates_for(kind: str, category: str | None = None) -> list[Template]:
    return [t for t in TEMPLATES if t.kind == kind and (category is None or t.category == category)]
