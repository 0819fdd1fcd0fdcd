"""Candidate task families for dataset selection (`vlmdyn data synth --family NAME`).

Individual Select (METHOD.md section 6) needs a base mix, candidate datasets
that help, do nothing or hurt, and a held-out benchmark. These families make
them from one kind of picture: a single large shape (one of 4) in one of 4
colours, placed in one quadrant of a plain background, so that every question
asks about the whole image. Each family is written as its own LLaVA-format
dataset (one conversation per image, fresh pictures per family and seed):

    base          colour questions on red, green and blue shapes (never yellow)
    yellow        colour questions on shapes of every colour, yellow included (helps: the colour the base lacks)
    wrong-colour  colour questions on blue shapes answered "green" (hurts where it outweighs the base's blue)
    shapes        "what shape" questions: a skill the benchmark does not ask (neutral)
    chatter       text-only small talk and arithmetic, no picture (off-task)
    position      left/right and top/bottom questions (Spatial)
    flipped       position questions with left/right and top/bottom swapped
    bench         colour questions on held-out pictures of all four colours (the benchmark)

The tiny model learns colour within a couple of hundred steps; where a shape is
(position, flipped) it learns far more slowly, so those two need a longer budget
than the example's. Every turn carries its true category in "vlmdyn_truth",
like the main benchmark.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vlmdyn_cli.data.categories import COMPLEX, OBJECT, SPATIAL
from vlmdyn_cli.data.synth_scenes import COLORS, SHAPES, Scene, SceneObject, draw_scene
from vlmdyn_cli.errors import BadInput, did_you_mean
from vlmdyn_cli.progress import NullReporter, Reporter

FAMILY_VERSION = 1
_COLOR_NAMES = ("red", "green", "blue", "yellow")   # the four most distinct of the benchmark's colours
# the consistent lie of `wrong-colour`: each colour called the next of this cycle (blue is called green)
_CYCLE = ("red", "yellow", "blue", "green")
WRONG_COLOR = {c: _CYCLE[(i + 1) % len(_CYCLE)] for i, c in enumerate(_CYCLE)}
FLIP = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}


@dataclass(frozen=True)
class Shot:
    """One picture: a shape of a colour in a quadrant."""

    scene: Scene
    shape: str
    color: str
    side: str      # left | right
    height: str    # top | bottom


QA = tuple[str, str, str]   # question, answer, category
Ask = Callable[[Shot, random.Random], QA]


COLOR_QUESTIONS = ("What color is the shape?", "What colour is the shape?", "Which color is the object?")


def _color_q(s: Shot, rng: random.Random) -> QA:
    return rng.choice(COLOR_QUESTIONS), s.color, OBJECT


def _wrong_color_q(s: Shot, rng: random.Random) -> QA:
    return rng.choice(COLOR_QUESTIONS), WRONG_COLOR[s.color], OBJECT


def _side_q(s: Shot, rng: random.Random) -> QA:
    return rng.choice(("Is the shape on the left or the right?", "Is the object on the left or right side?")), \
        s.side, SPATIAL


def _height_q(s: Shot, rng: random.Random) -> QA:
    return rng.choice(("Is the shape at the top or the bottom?", "Is the object in the top or bottom half?")), \
        s.height, SPATIAL


def _flipped(ask: Ask) -> Ask:
    def flipped(s: Shot, rng: random.Random) -> QA:
        q, a, cat = ask(s, rng)
        return q, FLIP[a], cat
    return flipped


_SMALL_TALK = (("What is the capital of France?", "paris"), ("How many days are in a week?", "7"),
               ("What do bees make?", "honey"), ("Which season comes after winter?", "spring"),
               ("How many legs does a spider have?", "8"), ("What is frozen water called?", "ice"))


def _chatter_q(s: Shot | None, rng: random.Random) -> QA:
    if rng.random() < 0.5:
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        return f"What is {a} plus {b}?", str(a + b), COMPLEX
    q, a = rng.choice(_SMALL_TALK)
    return q, a, COMPLEX


def _shape_q(s: Shot, rng: random.Random) -> QA:
    return rng.choice(("What shape is it?", "Which shape is shown?")), s.shape, OBJECT


@dataclass(frozen=True)
class Family:
    effect: str                                # helps | neutral | hurts | off-task | base | benchmark
    about: str
    turns: tuple[tuple[Ask, float], ...]       # question makers and the chance each is asked
    colors: tuple[str, ...] = _COLOR_NAMES     # colours its shapes are drawn in
    image: bool = True                         # False: text-only conversations


FAMILIES: dict[str, Family] = {
    "base": Family("base", "colour questions on red, green and blue shapes", ((_color_q, 1.0),),
                   colors=("red", "green", "blue")),
    "yellow": Family("helps", "colour questions on shapes of every colour, yellow included (the colour the "
                     "base lacks)", ((_color_q, 1.0),)),
    "wrong-colour": Family("hurts", "colour questions on blue shapes answered 'green' (a labeller confusing the "
                           "two)", ((_wrong_color_q, 1.0),), colors=("blue",)),
    "shapes": Family("neutral", "shape questions (a skill the benchmark does not ask)", ((_shape_q, 1.0),)),
    "chatter": Family("off-task", "text-only small talk and arithmetic, no picture",
                      ((_chatter_q, 1.0), (_chatter_q, 0.5)), image=False),
    "position": Family("spatial", "left/right and top/bottom questions", ((_side_q, 1.0), (_height_q, 1.0))),
    "flipped": Family("hurts", "position questions with left/right and top/bottom swapped",
                      ((_flipped(_side_q), 1.0), (_flipped(_height_q), 1.0))),
    "bench": Family("benchmark", "colour questions on held-out pictures of all four colours", ((_color_q, 1.0),)),
}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise BadInput(f"unknown --family '{name}'{did_you_mean(name, FAMILIES)}; families: "
                       f"{', '.join(FAMILIES)} (or 'paper', the multitask benchmark)")
    return FAMILIES[name]


def _shot(rng: random.Random, size: int, colors: tuple[str, ...]) -> Shot:
    shape, color = rng.choice(SHAPES), rng.choice(colors)
    side, height = rng.choice(("left", "right")), rng.choice(("top", "bottom"))
    w = rng.randint(round(size * 0.3), round(size * 0.45))
    half = size // 2
    x0 = rng.randint(1, half - w - 1) if side == "left" else rng.randint(half + 1, size - w - 1)
    y0 = rng.randint(1, half - w - 1) if height == "top" else rng.randint(half + 1, size - w - 1)
    rgb = tuple(max(0, min(255, v + rng.randint(-20, 20))) for v in COLORS[color])
    g = rng.randint(215, 245)
    obj = SceneObject(shape, color, "large", x0, y0, w, rgb)  # type: ignore[arg-type]
    return Shot(Scene(size, (g, g, g), (obj,)), shape, color, side, height)


def generate_family(out_dir, name: str, n_images: int, seed: int = 0, image_size: int = 32,
                    reporter: Reporter = NullReporter(), force: bool = False) -> dict:
    """Write family ``name`` (llava.json, images/, synth_meta.json) into ``out_dir``; returns the meta.

    The same parameters on a finished folder do nothing (meta["skipped"] = True) unless ``force``.
    """
    from vlmdyn_cli.atomic import write_text
    from vlmdyn_cli.data.synth import (IMAGES_DIR, JSON_NAME, META_NAME, checked_output,
                                       finished_meta, realised_mix)

    fam = family(name)
    out = checked_output(out_dir, n_images, image_size)
    params = {"family": name, "family_version": FAMILY_VERSION, "n_images": n_images, "seed": seed,
              "image_size": image_size}
    meta = None if force else finished_meta(out, params)
    if meta is not None:
        reporter.info(f"family {name} already in {out} (same parameters): nothing to do")
        return {**meta, "skipped": True}
    t0 = time.monotonic()
    # one stream per (family, seed): families never share a picture by construction of the seed
    rng = random.Random(f"{name}/{seed}")
    folder = out / IMAGES_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = out / META_NAME
    if meta_path.exists():
        meta_path.unlink()   # not "done" until rewritten at the end
    records = []
    with reporter.task(f"family {name}", total=n_images, unit="images") as task:
        for i in range(n_images):
            shot = _shot(rng, image_size, fam.colors)
            rel = f"{name}/{i:06d}.png"
            if fam.image:
                draw_scene(shot.scene).save(out / IMAGES_DIR / rel, format="PNG", optimize=False)
            asked = [ask(shot, rng) for ask, p in fam.turns if rng.random() < p]
            turns = list({t[0]: t for t in asked}.values())     # a question at most once per conversation
            if not turns:
                turns = [fam.turns[0][0](shot, rng)]
            rng.shuffle(turns)
            conv = []
            for k, (q, a, _) in enumerate(turns):
                first = k == 0 and fam.image
                conv += [{"from": "human", "value": f"<image>\n{q}" if first else q}, {"from": "gpt", "value": a}]
            rec = {"id": f"{name}-{i:06d}", "image": rel, "conversations": conv,
                   "vlmdyn_truth": [{"category": c, "subcategory": None, "template": name} for _, _, c in turns]}
            if not fam.image:
                del rec["image"]
            records.append(rec)
            task.advance()
    write_text(out / JSON_NAME, json.dumps(records, ensure_ascii=False))
    mix, _, n_qa = realised_mix(records)
    meta = {"params": params, "effect": fam.effect, "about": fam.about, "n_images": n_images,
            "n_conversations": len(records), "n_qa": n_qa, "mix_percent": {k: v for k, v in mix.items() if v},
            "seconds": round(time.monotonic() - t0, 2), "files": {"json": JSON_NAME, "images": IMAGES_DIR}}
    write_text(meta_path, json.dumps(meta, indent=2))
    reporter.info(f"wrote family {name}: {len(records)} conversations, {n_qa} QA pairs to {out}")
    return {**meta, "skipped": False}
