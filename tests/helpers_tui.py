"""A small, fixed experiment database for the TUI tests (no timestamps that change), written
through the pipeline's writers (``vlmdyn_cli.testing.factories``).

Two runs (seeds 1 and 2), checkpoints 51 and 357, sets ``seen@51`` and
``unseen`` per run, five categories, two judges (``rules`` and ``local``) that
disagree on some items, one unscored judgement, a calibration sample ``pilot``
of four items, a tiny PNG image for the first question, and predictions that
contain Rich markup and ANSI escapes (they must be displayed literally).
"""

from __future__ import annotations

from pathlib import Path

from vlmdyn_cli.store import open_db
from vlmdyn_cli.store.db import triple_hash
from vlmdyn_cli.testing import factories as f

T0 = "2026-01-01T00:00:00+00:00"
MARKUP = "[bold red]x[/] and [link=http://evil]click[/link]"
ANSI = "\x1b[31mred\x1b[0m text\x07"

# (question, answer, category, subcategory)
QAS = [
    ("What colour is the cup?", "red", "Object", None),
    ("Is the cat left of the dog?", "yes", "Spatial", None),
    ("What is the title of this book?", "The Long Road", "OCR", "recognition"),
    ("Is this a children's book?", "no", "OCR", "semantic"),
    ("Give the bounding box of the red cup.", "[0.10, 0.20, 0.30, 0.40]", "Bounding", "bbox"),
    ("Why might the man be smiling?", "He won a prize.", "Complex", None),
    ("How many birds are there?", "3", "Object", None),
    ("What is behind the car?", "a tree", "Spatial", None),
]
SETS = {"seen@51": [0, 1, 2, 3], "unseen": [4, 5, 6, 7]}
STEPS = [51, 357]
RUNS = [("seed1", 1, "done"), ("seed2", 2, "running")]


def prediction(run_i: int, step: int, qa_i: int) -> str:
    """Deterministic predictions: correct at step 357 for even items, some nasty text."""
    q, a, cat, _ = QAS[qa_i]
    if qa_i == 5 and step == 357 and run_i == 0:
        return MARKUP
    if qa_i == 6 and step == 51 and run_i == 0:
        return ANSI
    if step == 357 and qa_i % 2 == 0:
        return a
    return f"not {a}" if run_i == 0 else f"maybe {a}"


def _png(path: Path) -> None:
    from PIL import Image

    img = Image.new("RGB", (8, 6))
    for x in range(8):
        for y in range(6):
            img.putpixel((x, y), (x * 32, y * 40, 128))
    img.save(path)


def build_db(path: Path, *, with_image: bool = True) -> Path:
    """Create the fixture database at ``path`` (its images next to it) and return the path."""
    root = path.parent / "images"
    root.mkdir(parents=True, exist_ok=True)
    if with_image:
        _png(root / "cup.png")
    db = open_db(path)
    with f.fixed_now(T0), f.immediate(db):
        ds = f.dataset(db, "tiny", source_path="tiny.json", source_sha256="0", image_root=str(root),
                       counts=(0, 0, len(QAS)))
        img_id = f.image(db, "imghash", "cup.png", 8, 6, 100)
        qa_ids = []
        for i, (q, a, cat, sub) in enumerate(QAS):
            img = img_id if i == 0 else None
            _, (qa_id,) = f.conversation(db, ds, i, [f.qa(q, a, category=cat, subcategory=sub,
                                                          category_method="synth-truth")],
                                         source_id=f"c{i}", source="synth", image_id=img,
                                         image_path="cup.png" if img else None)
            qa_ids.append(qa_id)
        gen_config = f.gen_config(db)
        for spec in ("rules", "local"):
            f.judge_spec(db, f"spec-{spec}", spec)
        for r_i, (name, seed, status) in enumerate(RUNS):
            run_id = f.run(db, name, ds, seed=seed, status=status, total_steps=400, global_batch=8,
                           checkpoint_steps=STEPS, checkpoints={step: f"out/{name}/{step}" for step in STEPS})
            for s_name, members in SETS.items():
                kind = "seen" if s_name.startswith("seen") else "unseen"
                f.eval_set(db, run_id, s_name, kind, [qa_ids[i] for i in members],
                           k_step=51 if kind == "seen" else None)
            for step in STEPS:
                f.generations(db, run_id, step, [(qa_ids[i], q, a) for i, (q, a, _, _) in enumerate(QAS)],
                              [prediction(r_i, step, i) for i in range(len(QAS))], config_hash=gen_config)
        # judgements: rules = exact match; local = agrees except on items 1 and 3, unscored on the ANSI one
        rows = []
        for (h, q, a, p) in db.conn.execute("SELECT hash, question, answer, prediction FROM triples ORDER BY id"):
            qa_i = [x[0] for x in QAS].index(q)
            v_rules = "yes" if p.strip() == a else "no"
            rows.append(_judgement("rules", h, "scored", v_rules, raw=v_rules))
            if p == ANSI:
                rows.append(_judgement("local", h, "unscored", None, raw="I cannot [b]tell[/b]",
                                       reason="parse failure"))
                continue
            v_local = ("no" if v_rules == "yes" else "yes") if qa_i in (1, 3) else v_rules
            rows.append(_judgement("local", h, "scored", v_local, raw=f"{{'p': '{v_local}', 'MS': 4, 'MD': 3, 'H': 5}}",
                                   scores=(4, 3, 5), p_yes=0.9 if v_local == "yes" else 0.2))
        f.judgements(db, rows)
        items = []
        for k, qa_i in enumerate([0, 2, 5, 7]):
            q, a, cat, sub = QAS[qa_i]
            items.append(f.CalibrationItem("pilot", f"item{k + 1}", triple_hash(q, a, prediction(0, 357, qa_i)),
                                           cat, sub, f"run:seed1:357:{qa_i + 1}"))
        f.calibration_items(db, items)
    db.close()
    return path


def _judgement(name, h, status, verdict, *, raw, scores=(None, None, None), p_yes=None, reason=None):
    return f.JudgementRow(f"spec-{name}", h, name, name, status, verdict, reason, None, raw, *scores, p_yes, 10, 5,
                          0.0001 if name == "local" else 0.0, 0.25, T0)


# ---------------------------------------------------------------- driving the app in tests

def _busy(app) -> bool:
    """Work still pending anywhere: a worker not finished, or a message not yet handled by the
    app or by any widget of any screen on the stack (not only the top one: a modal over the
    main screen must not hide the main screen's pending loads)."""
    if any(not w.is_finished for w in app.workers):
        return True
    nodes = [app]
    for screen in app.screen_stack:
        nodes.extend(screen.walk_children(with_self=True))
    return any(n.message_queue_size for n in nodes)


async def settle(pilot, rounds: int = 3) -> None:
    """Let workers finish and their messages be handled (they can start further workers),
    until nothing is pending for ``rounds`` checks in a row (30 s at most)."""
    import time

    deadline = time.monotonic() + 30
    quiet = 0
    while quiet < rounds and time.monotonic() < deadline:
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        quiet = 0 if _busy(pilot.app) else quiet + 1


async def settle_screen(pilot, rounds: int = 3) -> None:
    """Settle, then wait until nothing is pending and the screenshot has not changed for
    ``rounds`` checks in a row, 50 ms apart (a loaded machine can still be laying out after
    the workers are done; two CI runs failed on a snapshot taken too early)."""
    import time

    await settle(pilot)
    deadline = time.monotonic() + 30
    last = pilot.app.export_screenshot()
    same = 0
    while same < rounds and time.monotonic() < deadline:
        await pilot.pause(0.05)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        now = pilot.app.export_screenshot()
        same = same + 1 if now == last and not _busy(pilot.app) else 0
        last = now


def screen_text(app) -> str:
    """What the terminal shows, as plain text lines (from the SVG screenshot, so it is
    exactly what a user sees: markup that had been interpreted would be missing here)."""
    import html
    import re

    svg = app.export_screenshot()
    rows: dict[int, dict[int, str]] = {}
    for m in re.finditer(r'<text class="[^"]*-r\d+" x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]*)</text>', svg):
        col = round(float(m.group(1)) / 12.2)
        row = round((float(m.group(2)) - 20) / 24.4)
        rows.setdefault(row, {})[col] = html.unescape(m.group(3))
    lines = []
    for row in sorted(rows):
        s = ""
        for col in sorted(rows[row]):
            s = s.ljust(col) + rows[row][col]
        lines.append(s.replace("\xa0", " ").rstrip())
    return "\n".join(lines)


def asyncrun(fn):
    """Run an async test function with asyncio.run (no pytest-asyncio here); fixtures still work."""
    import asyncio
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper
