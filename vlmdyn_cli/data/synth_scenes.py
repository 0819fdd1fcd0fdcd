"""Scenes of simple objects for the synthetic benchmark: sampling and drawing.

A scene is a light background with 2-5 objects. Each object has a shape, a
colour, a size (small/large) and a square pixel box. Within a scene every
(colour, shape) pair is unique, so "the red circle" always names one object.
Sampling is done with the caller's ``random.Random`` (deterministic per seed);
drawing is a pure function of the spec, so it can run in worker processes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (140, 50, 180),
    "orange": (245, 130, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
SIZES: tuple[str, ...] = ("small", "large")
# object edge length in pixels on a 64 px canvas (scaled for other sizes)
SIZE_RANGE_64 = {"small": (9, 12), "large": (17, 22)}


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    size: str
    x0: int  # pixel box, top-left corner inclusive
    y0: int
    w: int   # edge length (the box is square)
    rgb: tuple[int, int, int]

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"

    @property
    def cx(self) -> float:
        return self.x0 + self.w / 2

    @property
    def cy(self) -> float:
        return self.y0 + self.w / 2

    def box(self, canvas: int) -> list[float]:
        """Normalised [x1, y1, x2, y2] at two decimals."""
        return [round(v / canvas, 2) for v in (self.x0, self.y0, self.x0 + self.w, self.y0 + self.w)]


@dataclass(frozen=True)
class Scene:
    size: int
    background: tuple[int, int, int]
    objects: tuple[SceneObject, ...]


def sample_scene(rng: random.Random, size: int = 64) -> Scene:
    """Draw 2-5 non-overlapping objects with unique (colour, shape) pairs."""
    n = rng.choice((2, 3, 3, 4, 4, 5))
    scale = size / 64
    margin = max(1, round(2 * scale))
    pairs = [(c, s) for c in COLORS for s in SHAPES]
    rng.shuffle(pairs)
    placed: list[SceneObject] = []
    for color, shape in pairs:
        if len(placed) == n:
            break
        sz = rng.choice(SIZES)
        lo, hi = SIZE_RANGE_64[sz]
        w = max(3, round(rng.randint(lo, hi) * scale))
        for _attempt in range(30):
            x0 = rng.randint(1, size - w - 1)
            y0 = rng.randint(1, size - w - 1)
            if all(_apart(x0, y0, w, o, margin) for o in placed):
                jitter = tuple(max(0, min(255, v + rng.randint(-12, 12))) for v in COLORS[color])
                placed.append(SceneObject(shape, color, sz, x0, y0, w, jitter))  # type: ignore[arg-type]
                break
    g = rng.randint(225, 240)
    return Scene(size, (g, g, g), tuple(placed))


def _apart(x0: int, y0: int, w: int, o: SceneObject, margin: int) -> bool:
    return (x0 + w + margin <= o.x0 or o.x0 + o.w + margin <= x0
            or y0 + w + margin <= o.y0 or o.y0 + o.w + margin <= y0)


def draw_scene(scene: Scene):
    """Render a Scene to a PIL RGB image."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (scene.size, scene.size), scene.background)
    d = ImageDraw.Draw(img)
    for o in scene.objects:
        x0, y0, x1, y1 = o.x0, o.y0, o.x0 + o.w - 1, o.y0 + o.w - 1
        if o.shape == "circle":
            d.ellipse((x0, y0, x1, y1), fill=o.rgb)
        elif o.shape == "square":
            d.rectangle((x0, y0, x1, y1), fill=o.rgb)
        elif o.shape == "triangle":
            d.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=o.rgb)
        elif o.shape == "diamond":
            mx, my = (x0 + x1) / 2, (y0 + y1) / 2
            d.polygon([(mx, y0), (x1, my), (mx, y1), (x0, my)], fill=o.rgb)
        else:  # pragma: no cover - SHAPES is closed
            raise ValueError(o.shape)
    return img
