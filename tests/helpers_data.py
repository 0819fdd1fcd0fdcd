"""Tiny datasets written into the experiment DB through the importer's row writers.

``make_dataset(db, folder, n_conversations=...)`` draws small coloured-shape
PNGs into ``folder`` and writes datasets / images / conversations / qa_pairs
rows with ``vlmdyn_cli.testing.factories`` (store/datasets.py, as the importer
does): image paths relative to ``datasets.image_root``, questions without the
``<image>`` marker.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from vlmdyn_cli.testing import factories as f

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}
SHAPES = ("square", "circle")


def _draw(path: Path, colour: str, shape: str, size: int = 24) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (245, 245, 245))
    d = ImageDraw.Draw(img)
    box = (4, 4, size - 4, size - 4)
    (d.rectangle if shape == "square" else d.ellipse)(box, fill=COLOURS[colour])
    img.save(path, format="PNG")
    return path.read_bytes()


def make_dataset(db, folder: Path, n_conversations: int = 40, turns: int = 2, seed: int = 0,
                 name: str = "toy", n_text_only: int = 0, images_per_picture: int = 1,
                 suffix: str = "") -> int:
    """Insert a dataset; returns its id. Every conversation asks colour then shape (then repeats).

    ``images_per_picture`` > 1 makes several conversations share one image.
    ``suffix`` is appended to every question (e.g. a fixed template instruction).
    """
    rng = random.Random(seed)
    folder = Path(folder)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    with f.immediate(db):
        ds = f.dataset(db, name, source_path=str(folder / "data.json"), source_sha256="0" * 64,
                       image_root=str(folder))
        n_qa = 0
        picture = None
        for i in range(n_conversations + n_text_only):
            text_only = i >= n_conversations
            if not text_only and (picture is None or i % images_per_picture == 0):
                colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
                rel = f"img/{name}_{i:05d}.png"
                data = _draw(folder / rel, colour, shape)
                image_id = f.image(db, hashlib.sha256(data).hexdigest(), rel, 24, 24, len(data))
                picture = (colour, shape, rel, image_id)
            qa = []
            if text_only:
                a, b = rng.randint(1, 4), rng.randint(1, 4)
                qa = [(f"What is {a} plus {b}?", str(a + b), "Complex")]
                image_id, rel = None, None
            else:
                colour, shape, rel, image_id = picture
                for t in range(turns):
                    qa.append((f"What colour is the {shape}?", colour, "Object") if t % 2 == 0
                              else ("What shape is shown?", shape, "Object"))
            f.conversation(db, ds, i, [f.qa(q + suffix, a, category=cat, true_category=cat) for q, a, cat in qa],
                           source_id=f"c{i}", source="text-only" if text_only else "toy", image_id=image_id,
                           image_path=rel)
            n_qa += len(qa)
        n = n_conversations + n_text_only
        f.set_counts(db, ds, n, n, n_qa)
    return ds
