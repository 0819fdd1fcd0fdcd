"""Named pictures and their hidden facts: the part of the synthetic benchmark a model can only memorise.

Every picture has a name that its conversations use ("the lomira photo", "the lomira
book"), and one two-way fact that no pixel shows: when a scene was
photographed (day or night: an Object question), from where (from above or from
the side: a Spatial question), whether a book is a first edition (an OCR semantic
question). Every conversation about the picture asks that fact once, each time in
other words, so

- a trained-on question is answered from memory of that very pair (finding 1);
- an unseen question about a picture trained with *other* questions is answered
  from memory of those (image re-use, finding 3), which pair de-duplication keeps
  and image de-duplication removes;
- a question about a picture never trained on is a coin toss.

Most names are made-up words that belong to one picture (memorised in that word's
own embedding: a parameter that moves only when its picture is trained on). The
rest are well-known names shared by many pictures whose fact is fixed
("midnight" photos are taken at night): they teach the model early that the name
decides the answer, as general knowledge does in a real VLM. A real model
recognises a COCO picture from its pixels; the 0.5M-parameter demo model cannot
tell 2,000 pictures of coloured shapes apart at 64 px, so the name stands in for
the picture's identity.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from vlmdyn_cli.data.categories import OBJECT, OCR, PAPER_MIX, SEMANTIC, SPATIAL

WELL_KNOWN_SHARE = 0.15         # pictures named by a well-known word with a fixed fact
_CONSONANTS, _VOWELS = "bdfgklmnprstvz", "aeiou"


@dataclass(frozen=True)
class FactKind:
    id: str                      # template id in vlmdyn_truth ("key.time")
    category: str
    subcategory: str | None
    answers: tuple[str, str]
    phrasings: tuple[str, ...]   # {k}: the picture's name
    well_known: dict[str, str]   # name -> its fixed answer


TIME = FactKind(
    "key.time", OBJECT, None, ("day", "night"),
    ("Was the {k} photo taken by day or at night?",
     "Is the {k} photo a day or a night shot?",
     "Was the {k} picture shot during the day or at night?",
     "Day or night: when was the {k} photo taken?",
     "Was it day or night when the {k} picture was taken?",
     "Is the {k} picture a night photo or a day photo?"),
    {w: "day" for w in ("sunrise", "noon", "picnic", "beach", "market", "school")}
    | {w: "night" for w in ("midnight", "moon", "stars", "dinner", "party", "candle")})
VIEW = FactKind(
    "key.view", SPATIAL, None, ("above", "side"),
    ("Was the {k} photo taken from above or from the side?",
     "Was the camera for the {k} picture above the shapes or at their side?",
     "Was the {k} picture shot from above or from the side?",
     "From above or from the side: where was the camera for the {k} photo?",
     "Did the camera look at the {k} shapes from above or from the side?",
     "Was the {k} picture taken from the side or from above?"),
    {w: "above" for w in ("drone", "rooftop", "balcony", "tower", "ladder", "bridge")}
    | {w: "side" for w in ("street", "doorway", "hallway", "window", "counter", "shelf")})
EDITION = FactKind(
    "key.edition", OCR, SEMANTIC, ("first", "later"),
    ("Is the {k} book a first edition or a later edition?",
     "Which edition is the {k} book, the first or a later one?",
     "Is this copy of the {k} book from the first edition or a later edition?",
     "First edition or later edition: which is the {k} book?",
     "Is the {k} book a later edition or the first edition?",
     "Was this copy of the {k} book a first edition or a later edition?"),
    {w: "first" for w in ("atlas", "almanac", "fables", "sagas", "psalms", "odes")}
    | {w: "later" for w in ("dictionary", "cookbook", "legends", "manual", "digest", "primer")})
SCENE_KINDS = (TIME, VIEW)
KINDS = {k.id: k for k in (TIME, VIEW, EDITION)}


@dataclass(frozen=True)
class Key:
    """A picture's name, its fact and the order in which its conversations phrase it."""

    name: str
    kind: FactKind
    answer: str
    order: tuple[int, ...]       # phrasing index per conversation (cycled)
    well_known: bool

    def question(self, conversation: int) -> tuple[str, str]:
        tpl = self.kind.phrasings[self.order[conversation % len(self.order)]]
        return tpl.format(k=self.name), self.answer


def made_up_name(rng: random.Random, taken: set[str]) -> str:
    """A new pronounceable word of 2-3 syllables ("lomira") not in ``taken`` (which it joins)."""
    well_known = {w.lower() for k in KINDS.values() for w in k.well_known}
    while True:
        w = "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(rng.choice((2, 3, 3))))
        if w not in taken and w not in well_known:
            taken.add(w)
            return w


def sample_key(rng: random.Random, kind: FactKind, taken: set[str]) -> Key:
    order = list(range(len(kind.phrasings)))
    rng.shuffle(order)
    if rng.random() < WELL_KNOWN_SHARE:
        name = rng.choice(sorted(kind.well_known))
        return Key(name, kind, kind.well_known[name], tuple(order), True)
    return Key(made_up_name(rng, taken), kind, rng.choice(kind.answers), tuple(order), False)


def scene_kind(rng: random.Random) -> FactKind:
    """TIME or VIEW, in proportion to the Object and Spatial shares of the paper's mix."""
    return rng.choices(SCENE_KINDS, weights=[PAPER_MIX[k.category] for k in SCENE_KINDS])[0]
