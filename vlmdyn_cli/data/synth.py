"""`vlmdyn data synth`: a procedural multitask VLM benchmark in LLaVA format.

Writes, under ``out_dir``::

    llava.json        LLaVA conversation records; each carries "vlmdyn_truth",
                      one {"category", "subcategory", "template"} per QA turn
    images/scenes/    PNG scenes of simple objects (Object, Spatial, Bounding, Complex)
    images/books/     PNG book covers (OCR recognition and semantic)
    synth_meta.json   parameters and the realised category mix (written last:
                      its presence with the same parameters means "done")

Design (what the tiny model must be able to show, METHOD.md section 5):
- 55% of the pictures are used by one conversation, the others by 4-5, each of
  3-6 independent turns;
- every picture has a name and one hidden two-way fact that every conversation
  about it asks once, in other words each time (synth_keys): memorised only by
  training on that picture, so trained-on questions and unseen questions about
  re-used pictures beat unseen questions about new pictures (findings 1-3);
- book genres are signalled by cover colour and emblem (learnable early),
  titles and authors are image-specific and must be read or memorised;
- boxes are exact two-decimal coordinates (hard, learned slowly);
- Complex questions are "why / what might" questions that the question alone
  answers, or chain two steps (count after a condition, compare, "if...").
The category mix over QA pairs follows the paper's Table 1 (PAPER_MIX), the
named-fact turns counted in their category (Object, Spatial, OCR).

Deterministic for a seed: every random choice happens in the parent process
with one ``random.Random(seed)``; worker processes only draw the specs.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vlmdyn_cli.atomic import write_text
from vlmdyn_cli.data.categories import BOUNDING, CATEGORIES, OCR, PAPER_MIX
from vlmdyn_cli.data.synth_books import Book, draw_book, sample_book
from vlmdyn_cli.data.synth_keys import EDITION, Key, sample_key, scene_kind
from vlmdyn_cli.data.synth_questions import Template, templates_for
from vlmdyn_cli.data.synth_scenes import Scene, draw_scene, sample_scene
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.progress import NullReporter, Reporter

GENERATOR_VERSION = 2
JSON_NAME, META_NAME, IMAGES_DIR = "llava.json", "synth_meta.json", "images"
MAX_IMAGE_SIZE = 1024     # px per edge: 3 MB of pixels per image while drawing
SINGLE_USE = 0.55                # share of pictures used by one conversation only (the rest: 4-5)
CONVS_PER_REUSED_IMAGE = (4, 4, 5)  # the others: sampled per picture
TURNS_PER_CONV = (3, 6)          # inclusive range
# Rendering a 64 px PNG takes ~1 ms: below this many images a process pool costs more than it saves
# (benchmarks/bench_synth.py: 2,000 images 5.4 s with 1 process vs 8.2 s with 2 on a loaded machine).
PARALLEL_FROM = 5000


@dataclass
class SynthResult:
    out_dir: Path
    json_path: Path
    images_dir: Path
    meta_path: Path
    n_images: int
    n_scenes: int
    n_books: int
    n_conversations: int
    n_qa: int
    mix: dict[str, float]                 # category -> % of QA pairs
    submix: dict[str, dict[str, float]]   # category -> sub-category -> % within the category
    seconds: float
    skipped: bool = False                 # True when an identical benchmark was already there
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("out_dir", "json_path", "images_dir", "meta_path"):
            d[k] = str(d[k])
        return d


def checked_output(out_dir, n_images: int, image_size: int) -> Path:
    """The output folder of a generator, after checking its size arguments (bad input: exit 2)."""
    if n_images < 10:
        raise BadInput(f"--images must be at least 10 (got {n_images})")
    if image_size < 32:
        raise BadInput(f"image size must be at least 32 px (got {image_size})")
    if image_size > MAX_IMAGE_SIZE:
        raise BadInput(f"image size must be at most {MAX_IMAGE_SIZE} px (got {image_size})")
    if str(out_dir).strip() in ("", "."):   # typer turns an empty --out into Path(".")
        raise BadInput("--out: the path is empty; name a folder for the benchmark")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} exists and is not a folder")
    return out


def finished_meta(out: Path, params: dict) -> dict | None:
    """The stored meta of a finished generation into ``out`` with these ``params`` (None: generate)."""
    meta_path = out / META_NAME
    if not (meta_path.is_file() and (out / JSON_NAME).is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return meta if meta.get("params") == params else None


def generate(out_dir: str | os.PathLike, n_images: int = 2000, seed: int = 0, workers: int | None = None,
             reporter: Reporter = NullReporter(), image_size: int = 64, force: bool = False) -> SynthResult:
    """Generate the benchmark into ``out_dir`` (see the module docstring).

    Re-running with the same parameters on a finished directory does nothing
    (``skipped=True``) unless ``force``; an interrupted run is simply redone.
    """
    out = checked_output(out_dir, n_images, image_size)
    params = {"generator_version": GENERATOR_VERSION, "n_images": n_images, "seed": seed,
              "image_size": image_size}
    meta = None if force else finished_meta(out, params)
    if meta is not None:
        reporter.info(f"synthetic benchmark already in {out} (same parameters): nothing to do")
        return _result_from_meta(out, meta, skipped=True)

    t0 = time.monotonic()
    rng = random.Random(seed)
    specs = _sample_images(rng, n_images, image_size)
    records = _conversations(rng, specs)
    (out / IMAGES_DIR / "scenes").mkdir(parents=True, exist_ok=True)
    (out / IMAGES_DIR / "books").mkdir(parents=True, exist_ok=True)
    meta_path = out / META_NAME
    if meta_path.exists():
        meta_path.unlink()  # not "done" until rewritten at the end
    _remove_stale(out / IMAGES_DIR, {rel for rel, _ in specs})
    _render_all(out / IMAGES_DIR, specs, workers, reporter)
    write_text(out / JSON_NAME, json.dumps(records, ensure_ascii=False))
    seconds = time.monotonic() - t0

    meta = _meta(params, specs, records, seconds)
    write_text(meta_path, json.dumps(meta, indent=2))
    reporter.info(f"wrote {meta['n_conversations']} conversations, {meta['n_qa']} QA pairs, "
                  f"{n_images} images to {out} in {seconds:.1f} s")
    return _result_from_meta(out, meta, skipped=False)


# ------------------------------------------------------------------ sampling
def _sample_images(rng: random.Random, n: int, size: int) -> list[tuple[str, Scene | Book]]:
    """(relative path, spec) per image; OCR's share of QA pairs sets the share of books."""
    n_books = max(1, round(n * PAPER_MIX[OCR] / 100))
    kinds = ["book"] * n_books + ["scene"] * (n - n_books)
    rng.shuffle(kinds)
    titles: set[str] = set()
    specs: list[tuple[str, Scene | Book]] = []
    for i, kind in enumerate(kinds):
        if kind == "book":
            specs.append((f"books/{i:06d}.png", sample_book(rng, size, titles)))
        else:
            specs.append((f"scenes/{i:06d}.png", sample_scene(rng, size)))
    return specs


def _scene_quota(rng: random.Random, n_slots: int, placed: Counter | None = None) -> list[str]:
    """Shuffled categories for the free scene turns, so that with the turns already ``placed``
    (the named-fact questions) the scene turns follow the paper's mix exactly."""
    cats = [c for c in CATEGORIES if c != OCR]
    placed = placed or Counter()
    total_slots = n_slots + sum(placed.values())
    total = sum(PAPER_MIX[c] for c in cats)
    raw = {c: max(0.0, total_slots * PAPER_MIX[c] / total - placed[c]) for c in cats}
    counts = {c: int(v) for c, v in raw.items()}
    short_by = n_slots - sum(counts.values())
    for c in sorted(cats, key=lambda c: raw[c] - counts[c], reverse=True)[:max(0, short_by)]:
        counts[c] += 1
    out = [c for c in cats for _ in range(counts[c])]
    rng.shuffle(out)
    return out[:n_slots]


def _pick(rng: random.Random, pool: list[Template]) -> Template:
    return rng.choices(pool, weights=[t.weight for t in pool])[0]


def _keys(rng: random.Random, specs) -> list[Key]:
    """One name and hidden fact per picture (synth_keys)."""
    taken: set[str] = set()
    return [sample_key(rng, EDITION if isinstance(spec, Book) else scene_kind(rng), taken)
            for _, spec in specs]


def _ask(rng: random.Random, pool: list[Template], spec, seen: set[str], path: str) -> tuple[str, str, dict]:
    """A question from ``pool`` about ``spec`` not yet asked in this conversation, its answer and truth."""
    for _attempt in range(50):
        tpl = _pick(rng, pool)
        qa = tpl.fn(spec, rng)
        if qa is not None and qa[0] not in seen:
            return qa[0], qa[1], {"category": tpl.category, "subcategory": tpl.subcategory, "template": tpl.id}
    raise RuntimeError(f"no question could be made for {path}")  # pragma: no cover - pools always apply


def _conversations(rng: random.Random, specs) -> list[dict]:
    keys = _keys(rng, specs)
    plan = []  # (image index, conversation number, n_turns, turn that asks the named fact)
    for i, _ in enumerate(specs):
        n_conv = 1 if rng.random() < SINGLE_USE else rng.choice(CONVS_PER_REUSED_IMAGE)
        for c in range(n_conv):
            n_turns = rng.randint(*TURNS_PER_CONV)
            plan.append((i, c, n_turns, rng.randrange(n_turns)))
    scene_plan = [p for p in plan if isinstance(specs[p[0]][1], Scene)]
    placed = Counter(keys[i].kind.category for i, *_ in scene_plan)
    quota = iter(_scene_quota(rng, sum(t - 1 for _, _, t, _ in scene_plan), placed))
    pools = {c: templates_for("scene", c) for c in CATEGORIES if c != OCR}
    book_pool = templates_for("book")

    records = []
    for i, c, n_turns, key_turn in plan:
        path, spec = specs[i]
        is_book = isinstance(spec, Book)
        conv, truth, seen = [], [], set()
        for turn in range(n_turns):
            if turn == key_turn:
                q, a = keys[i].question(c)
                kind = keys[i].kind
                truth_row = {"category": kind.category, "subcategory": kind.subcategory, "template": kind.id}
            else:
                q, a, truth_row = _ask(rng, book_pool if is_book else pools[next(quota)], spec, seen, path)
            seen.add(q)
            if turn == 0:
                q = f"<image>\n{q}" if rng.random() < 0.9 else f"{q}\n<image>"
            conv += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
            truth.append(truth_row)
        records.append({"id": f"synth-{i:06d}-{c}", "image": path, "conversations": conv,
                        "vlmdyn_truth": truth})
    rng.shuffle(records)
    return records


# ------------------------------------------------------------------ rendering
def _render_one(item: tuple[str, str, Scene | Book]) -> None:
    root, rel, spec = item
    img = draw_book(spec) if isinstance(spec, Book) else draw_scene(spec)
    img.save(os.path.join(root, rel), format="PNG", optimize=False)


def _render_chunk(chunk: list[tuple[str, str, Scene | Book]]) -> int:
    for item in chunk:
        _render_one(item)
    return len(chunk)


def _render_all(root: Path, specs, workers: int | None, reporter: Reporter) -> None:
    items = [(str(root), rel, spec) for rel, spec in specs]
    chunks = [items[k:k + 100] for k in range(0, len(items), 100)]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    with reporter.task("rendering images", total=len(items), unit="images") as task:
        if workers <= 1 or len(items) < PARALLEL_FROM:
            for ch in chunks:
                task.advance(_render_chunk(ch))
            return
        import multiprocessing as mp

        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        with ctx.Pool(workers) as pool:
            for n in pool.imap_unordered(_render_chunk, chunks):
                task.advance(n)


def _remove_stale(root: Path, keep: set[str]) -> None:
    """Delete images an earlier, larger run left behind (only our NNNNNN.png names)."""
    for sub in ("scenes", "books"):
        for p in (root / sub).glob("[0-9][0-9][0-9][0-9][0-9][0-9].png"):
            if f"{sub}/{p.name}" not in keep:
                p.unlink()


# ------------------------------------------------------------------ outputs
def realised_mix(records: list[dict]) -> tuple[dict[str, float], dict[str, dict[str, float]], int]:
    """Category % over QA pairs, sub-category % within each category, number of QA pairs."""
    cats = Counter(t["category"] for r in records for t in r["vlmdyn_truth"])
    subs = Counter((t["category"], t["subcategory"]) for r in records for t in r["vlmdyn_truth"]
                   if t["subcategory"])
    n = sum(cats.values())
    mix = {c: round(100 * cats[c] / n, 2) for c in CATEGORIES}
    submix = {c: {s: round(100 * k / cats[c], 2) for (cc, s), k in sorted(subs.items()) if cc == c}
              for c in (BOUNDING, OCR)}
    return mix, submix, n


def _meta(params: dict, specs, records: list[dict], seconds: float) -> dict:
    mix, submix, n_qa = realised_mix(records)
    convs_per_image = Counter(r["image"] for r in records)
    turns = [len(r["vlmdyn_truth"]) for r in records]
    n_books = sum(isinstance(s, Book) for _, s in specs)
    return {
        "params": params,
        "n_images": len(specs), "n_scenes": len(specs) - n_books, "n_books": n_books,
        "n_conversations": len(records), "n_qa": n_qa,
        "conversations_per_image": round(sum(convs_per_image.values()) / len(convs_per_image), 3),
        "turns_per_conversation": round(sum(turns) / len(turns), 3),
        "mix_percent": mix, "target_mix_percent": PAPER_MIX, "submix_percent": submix,
        "templates": dict(sorted(Counter(t["template"] for r in records for t in r["vlmdyn_truth"]).items())),
        "seconds": round(seconds, 2),
        "files": {"json": JSON_NAME, "images": IMAGES_DIR},
    }


def _result_from_meta(out: Path, meta: dict, skipped: bool) -> SynthResult:
    return SynthResult(
        out_dir=out, json_path=out / JSON_NAME, images_dir=out / IMAGES_DIR, meta_path=out / META_NAME,
        n_images=meta["n_images"], n_scenes=meta["n_scenes"], n_books=meta["n_books"],
        n_conversations=meta["n_conversations"], n_qa=meta["n_qa"], mix=meta["mix_percent"],
        submix=meta["submix_percent"], seconds=meta["seconds"], skipped=skipped, params=meta["params"],
    )
