"""Book covers for the synthetic benchmark's OCR questions: sampling and drawing.

A cover shows a two-word title at the top, the author at the bottom and a
genre emblem in the middle, on a background whose colour also signals the
genre. So the genre ("semantic" OCR) can be guessed from colour and emblem
without reading, while title and author ("recognition" OCR) must be read or
memorised per image: at 32 px the text is a blur that only identifies the book.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# genre -> (cover colour, emblem, fiction?)
GENRES: dict[str, tuple[tuple[int, int, int], str, bool]] = {
    "travel": ((50, 150, 80), "mountain", False),
    "cooking": ((240, 140, 40), "plate", False),
    "history": ((130, 85, 50), "column", False),
    "science": ((45, 85, 195), "diamond", False),
    "romance": ((205, 45, 85), "heart", True),
    "fantasy": ((125, 55, 165), "star", True),
    "children": ((245, 210, 60), "sun", True),
    "mystery": ((55, 55, 65), "cross", True),
}
# how questions name a genre: "Is this a {adj} book?", "Is this book related to {Topic}?"
GENRE_ADJ = {"travel": "travel", "cooking": "cooking", "history": "history", "science": "science",
             "romance": "romance", "fantasy": "fantasy", "children": "children's", "mystery": "mystery"}
GENRE_TOPIC = {"travel": "Travel", "cooking": "Cooking", "history": "History", "science": "Science",
               "romance": "Romance", "fantasy": "Fantasy", "children": "Children's Books",
               "mystery": "Mystery"}

TITLE_ADJ = ("silent", "golden", "hidden", "broken", "last", "secret", "winter", "lost", "bright",
             "little", "dark", "quiet", "wild", "lonely", "ancient", "hollow", "crimson", "frozen",
             "distant", "gentle")
TITLE_NOUN = ("river", "garden", "key", "island", "forest", "mirror", "tower", "road", "letter",
              "harbor", "lantern", "kingdom", "storm", "village", "shadow", "voyage", "bridge",
              "crown", "meadow", "castle")
FIRST_NAMES = ("anna", "ben", "eva", "finn", "hugo", "ida", "ivy", "lena", "leo", "max", "mia",
               "nora", "omar", "rosa", "tom", "zoe")  # <= 4 letters: "first last" fits a 64 px cover
LAST_NAMES = ("berg", "cole", "dunn", "ellis", "frost", "gray", "hart", "kent", "lane", "moss",
              "nash", "park", "reed", "shaw", "stone", "wolf")


@dataclass(frozen=True)
class Book:
    size: int
    genre: str
    title: str    # lower case, two words
    author: str   # lower case, "first last"
    rgb: tuple[int, int, int]

    @property
    def fiction(self) -> bool:
        return GENRES[self.genre][2]


def sample_book(rng: random.Random, size: int = 64, used_titles: set[str] | None = None) -> Book:
    """A random cover; titles are unique while the 400 combinations last."""
    genre = rng.choice(sorted(GENRES))
    for _ in range(50):
        title = f"{rng.choice(TITLE_ADJ)} {rng.choice(TITLE_NOUN)}"
        if used_titles is None or title not in used_titles:
            break
    if used_titles is not None:
        used_titles.add(title)
    author = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    base = GENRES[genre][0]
    rgb = tuple(max(0, min(255, v + rng.randint(-15, 15))) for v in base)
    return Book(size, genre, title, author, rgb)  # type: ignore[arg-type]


def _font(size: int):
    from PIL import ImageFont

    if size < 128:
        return ImageFont.load_default_imagefont()  # 6x11 px bitmap font: deterministic, crisp
    return ImageFont.load_default(size=round(11 * size / 64))


def draw_book(book: Book):
    """Render a Book cover to a PIL RGB image."""
    from PIL import Image, ImageDraw

    s = book.size
    k = s / 64
    img = Image.new("RGB", (s, s), book.rgb)
    d = ImageDraw.Draw(img)
    light = sum(book.rgb) > 450
    ink = (20, 20, 20) if light else (245, 245, 245)
    spine = tuple(int(v * 0.6) for v in book.rgb)
    d.rectangle((0, 0, round(4 * k) - 1, s - 1), fill=spine)
    font = _font(s)
    words = book.title.split()
    for i, w in enumerate(words[:2]):
        _center_text(d, w.capitalize(), round((2 + 11 * i) * k), s, font, ink)
    _center_text(d, book.author.title(), round(51 * k), s, font, ink, shift=0)
    _emblem(d, GENRES[book.genre][1], s / 2 + 2 * k, 37 * k, 7 * k, ink)
    return img


def _center_text(d, text: str, y: int, s: int, font, ink, shift: float = 2) -> None:
    """Centre ``text`` horizontally (``shift`` px right of centre on a 64 px cover, past the spine)."""
    x0, _, x1, _ = d.textbbox((0, 0), text, font=font)
    d.text(((s - (x1 - x0)) / 2 + shift * s / 64, y), text, font=font, fill=ink)


def _emblem(d, kind: str, cx: float, cy: float, r: float, ink) -> None:
    """A small genre emblem centred at (cx, cy) with radius r."""
    if kind == "mountain":
        d.polygon([(cx - r, cy + r), (cx - r / 3, cy - r), (cx + r / 5, cy + r / 4),
                   (cx + r / 2, cy - r / 3), (cx + r, cy + r)], fill=ink)
    elif kind == "plate":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=ink, width=max(1, round(r / 4)))
        d.ellipse((cx - r / 3, cy - r / 3, cx + r / 3, cy + r / 3), fill=ink)
    elif kind == "column":
        d.rectangle((cx - r, cy - r, cx + r, cy - r * 0.6), fill=ink)
        d.rectangle((cx - r / 3, cy - r * 0.6, cx + r / 3, cy + r * 0.6), fill=ink)
        d.rectangle((cx - r, cy + r * 0.6, cx + r, cy + r), fill=ink)
    elif kind == "diamond":
        d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=ink)
    elif kind == "heart":
        h = r / 2
        d.ellipse((cx - r, cy - r, cx, cy), fill=ink)
        d.ellipse((cx, cy - r, cx + r, cy), fill=ink)
        d.polygon([(cx - r, cy - h), (cx + r, cy - h), (cx, cy + r)], fill=ink)
    elif kind == "star":
        import math

        pts = []
        for i in range(10):
            rr = r if i % 2 == 0 else r * 0.45
            a = -math.pi / 2 + i * math.pi / 5
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        d.polygon(pts, fill=ink)
    elif kind == "sun":
        d.ellipse((cx - r / 2, cy - r / 2, cx + r / 2, cy + r / 2), fill=ink)
        w = max(1, round(r / 5))
        d.line((cx - r, cy, cx + r, cy), fill=ink, width=w)
        d.line((cx, cy - r, cx, cy + r), fill=ink, width=w)
        d.line((cx - r * 0.7, cy - r * 0.7, cx + r * 0.7, cy + r * 0.7), fill=ink, width=w)
        d.line((cx - r * 0.7, cy + r * 0.7, cx + r * 0.7, cy - r * 0.7), fill=ink, width=w)
    elif kind == "cross":
        t = r / 3
        d.rectangle((cx - t, cy - r, cx + t, cy + r), fill=ink)
        d.rectangle((cx - r, cy - t, cx + r, cy + t), fill=ink)
    else:  # pragma: no cover - GENRES is closed
        raise ValueError(kind)
