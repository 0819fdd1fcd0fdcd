"""Tiny datasets written straight into the experiment DB (no importer needed).

``make_dataset(db, folder, n_conversations=...)`` draws small coloured-shape
PNGs into ``folder`` and inserts datasets / images / conversations /
qa_pairs rows the way the importer does: image paths relative to
``datasets.image_root``, questions without the ``<image>`` marker.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

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
    from vlmdyn_cli.store.db import now

    with db.conn:
        cur = db.conn.execute(
            "INSERT INTO datasets(name, source_path, source_sha256, image_root, imported_at) VALUES (?,?,?,?,?)",
            (name, str(folder / "data.json"), "0" * 64, str(folder), now()))
        ds = cur.lastrowid
        n_qa = 0
        picture = None
        for i in range(n_conversations + n_text_only):
            text_only = i >= n_conversations
            if not text_only and (picture is None or i % images_per_picture == 0):
                colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
                rel = f"img/{name}_{i:05d}.png"
                data = _draw(folder / rel, colour, shape)
                sha = hashlib.sha256(data).hexdigest()
                db.conn.execute("INSERT OR IGNORE INTO images(sha256, path, width, height, n_bytes) VALUES (?,?,?,?,?)",
                                (sha, rel, 24, 24, len(data)))
                image_id = db.conn.execute("SELECT id FROM images WHERE sha256=?", (sha,)).fetchone()[0]
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
            cur = db.conn.execute(
                "INSERT INTO conversations(dataset_id, idx, source_id, source, image_id, image_path, n_turns, kept)"
                " VALUES (?,?,?,?,?,?,?,1)", (ds, i, f"c{i}", "text-only" if text_only else "toy", image_id, rel, len(qa)))
            cid = cur.lastrowid
            for t, (q, a, cat) in enumerate(qa):
                db.conn.execute(
                    "INSERT INTO qa_pairs(dataset_id, conversation_id, turn, question, answer, image_id, category,"
                    " true_category) VALUES (?,?,?,?,?,?,?,?)", (ds, cid, t, q + suffix, a, image_id, cat, cat))
                n_qa += 1
        n = n_conversations + n_text_only
        db.conn.execute("UPDATE datasets SET n_conversations=?, n_kept=?, n_qa=? WHERE id=?", (n, n, n_qa, ds))
    return ds
