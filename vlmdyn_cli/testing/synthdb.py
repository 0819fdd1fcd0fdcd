"""A synthetic but schema-true experiment, written through the pipeline's own writers.

``fill_synthetic(db, ...)`` creates what the whole pipeline would have
produced -- dataset, images, conversations, QA pairs with categories, one run
per seed with its order manifest, checkpoints, loss/LR metrics, Seen@k and
unseen evaluation sets, generations, triples, judge specs and judgements --
without training or judging anything. Plots, the report, the TUI and their
benchmarks use it; the numbers follow an accuracy model that shows the paper's
findings (METHOD.md section 5), so figures drawn from it look like the real
thing:

* every item's chance of a "yes" depends on its category/subcategory, the
  checkpoint step, whether the item was trained on by then (its conversation's
  step in this seed's order), how recently, the learning rate when it was
  trained, and whether its *image* was trained on by then (the de-dup effect);
* per-seed offsets make the 1-sigma bands real;
* about 1.5% of judgements are unscored (with a reason and raw text).

Every row goes through the writer the pipeline uses for its table (the
importer's row types in store/datasets.py, training/runs.py, evalsets/build.py,
inference/store.py, store/judgements.py, store/labels.py), so a schema change
is made once. Speed: those writers join ONE transaction opened here, on a
rollback journal with synchronous off and a large page cache; the triggers on
the loaded tables (FTS, the plots' change counter) are dropped for the load,
the FTS indexes rebuilt once at the end and the triggers put back exactly.
An interrupted fill leaves nothing behind. See notes/synthdb.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.evalsets.build import SetSpec, insert_set
from vlmdyn_cli.inference.config import GenConfig
from vlmdyn_cli.inference.items import GenItem
from vlmdyn_cli.inference.store import save_config, write_batch
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.store import datasets as ds_rows
from vlmdyn_cli.store import judgements
from vlmdyn_cli.store.db import fixed_now, now, sha256_text, triple_hash
from vlmdyn_cli.store.judgements import JudgementRow
from vlmdyn_cli.store.labels import save_label
from vlmdyn_cli.training import runs

CATEGORIES = ("Bounding", "Complex", "Object", "OCR", "Spatial")
#: Table 1 of the paper: share of QA pairs per category.
CATEGORY_SHARES = {"Bounding": 0.345, "Complex": 0.138, "Object": 0.198, "OCR": 0.142, "Spatial": 0.177}
SUBCATEGORY_SHARES = {"Bounding": {"bbox": 0.6, "describe": 0.4}, "OCR": {"recognition": 0.55, "semantic": 0.45}}
DEFAULT_CHECKPOINTS = (51, 357, 765, 1275, 2550, 3825)
UNSCORED_RATE = 0.015
GEN_BATCH = 4096    # generations per write (one SQL IN list each)
UNSCORED_REASONS = (
    ("parse failure: no verdict key in the output", "Sure! The prediction looks mostly right to me."),
    ("parse failure: verdict 'maybe' is not yes/no", "{'p': 'maybe', 'MS': 3, 'MD': 3, 'H': 4}"),
    ("refusal", "I can't help with evaluating that."),
    ("error: backend timeout after 3 retries", ""),
)


@dataclass(frozen=True)
class Curve:
    """Accuracy of never-seen items: start + (end - start) * (1 - exp(-step / tau))."""

    start: float
    end: float
    tau: float
    gap: float        # extra accuracy once the item itself was trained on (scaled by LR and recency)
    image: float      # extra accuracy when only the item's image was trained on (de-dup effect)
    recency: float    # how fast the seen-gap fades with steps since training (0 = never)


# (category, subcategory) -> curve; the numbers are chosen to reproduce METHOD.md section 5.
CURVES = {
    ("Object", None): Curve(0.05, 0.60, 600, 0.10, 0.07, 1500),
    ("Spatial", None): Curve(0.05, 0.58, 700, 0.08, 0.06, 1500),
    ("OCR", "recognition"): Curve(0.02, 0.60, 1300, 0.26, 0.10, 700),
    ("OCR", "semantic"): Curve(0.10, 0.76, 250, 0.12, 0.08, 700),
    ("Bounding", "bbox"): Curve(0.005, 0.26, 2600, 0.0, 0.01, 0),
    ("Bounding", "describe"): Curve(0.01, 0.31, 2600, 0.0, 0.01, 0),
    ("Complex", None): Curve(0.22, 0.46, 150, 0.0, 0.03, 0),
}


def lr_at(step: int, total_steps: int, peak: float = 2e-5, warmup_frac: float = 0.03) -> float:
    """Cosine schedule with linear warm-up (what the synthetic runs 'used')."""
    warm = max(1, int(total_steps * warmup_frac))
    if step <= warm:
        return peak * step / warm
    x = (step - warm) / max(1, total_steps - warm)
    return 0.5 * peak * (1 + math.cos(math.pi * min(1.0, x)))


# --------------------------------------------------------------------------- texts

_OBJECTS = ("bus", "dog", "cat", "bicycle", "umbrella", "man", "woman", "car", "train", "horse", "kite",
            "pizza", "laptop", "bench", "clock", "boat", "giraffe", "sign", "cup", "table", "chair", "tree")
_COLOURS = ("red", "blue", "green", "white", "black", "yellow", "brown", "gray", "orange", "pink")
_PLACES = ("left", "right", "behind", "in front of", "next to", "on top of", "under")
_ADJ = ("small", "large", "old", "new", "wooden", "striped", "tall", "short", "shiny", "dirty", "empty", "busy")
_FIRST = ("Mary", "John", "Ana", "Wei", "Peter", "Sara", "Tom", "Ines", "Kofi", "Yuki", "Omar", "Lena",
          "Ravi", "Olga", "Liam", "Nora", "Ivan", "Aiko", "Paul", "Rosa")
_LAST = ("Smith", "Carter", "Lopez", "Zhang", "Novak", "Ahmed", "Baker", "Moreau", "Mensah", "Tanaka",
         "Haddad", "Berg", "Iyer", "Petrova", "Walsh", "Keane", "Sokol", "Mori", "Klein", "Diaz")
_T1 = ("Quiet", "Lost", "Modern", "Small", "Winter", "Last", "Hidden", "Simple", "Golden", "Wild",
       "Northern", "Practical", "Little", "Secret", "Complete", "Brief", "Endless", "Urban", "Gentle", "Open")
_T2 = ("Garden", "Key", "Birdwatching", "Houses", "Soups", "Map", "River", "Kitchen", "Python", "Trains",
       "Sky", "Harbor", "Forest", "Letters", "Islands", "Recipes", "Mountains", "Physics", "Songs", "Roads")
_GENRES = ("Cookbooks, Food & Wine", "History", "Computers & Technology", "Children's Books",
           "Literature & Fiction", "Travel", "Science & Math", "Arts & Photography")
_COMPLEX_A = ("They are probably waiting for the {} to arrive.", "It seems cold, so they keep the {} close.",
              "It is likely a birthday party with a {}.", "They may be waiting for the owner of the {}.",
              "The {} suggests a busy morning commute.", "They might be cleaning the {} together.")
_CONTEXT = ("on the left", "on the right", "in the background", "in the foreground", "near the window",
            "by the road", "on the table", "in the middle", "at the top", "at the bottom", "in the corner",
            "behind the fence", "next to the door", "under the tree", "on the grass", "in the water")
_SINGLE = "\nAnswer the question using a single word or phrase."


def _box(rng) -> list[float]:
    x1, y1 = rng.uniform(0, 0.6, 2)
    w, h = rng.uniform(0.1, 0.4, 2)
    return [round(float(v), 2) for v in (x1, y1, min(0.99, x1 + w), min(0.99, y1 + h))]


def _qa_text(rng, cat: str, sub: str | None) -> tuple[str, str, list[str]]:
    """A (question, answer, plausible wrong answers) triple for one category."""
    o = f"{_ADJ[rng.integers(len(_ADJ))]} {_OBJECTS[rng.integers(len(_OBJECTS))]}"
    o2 = f"{_ADJ[rng.integers(len(_ADJ))]} {_OBJECTS[rng.integers(len(_OBJECTS))]}"
    if cat == "Bounding" and sub == "bbox":
        b = _box(rng)
        q = f"Please provide the bounding box coordinate of the region this sentence describes: the {o} near the {o2}."
        return q, str(b), [str(_box(rng)), str(_box(rng))]
    if cat == "Bounding":
        c = _COLOURS[rng.integers(len(_COLOURS))]
        q = f"Please provide a short description for this region: {_box(rng)}."
        return q, f"a {c} {o} next to a {o2}", [f"a {o2}", f"the {c} {o2} on the ground"]
    if cat == "OCR" and sub == "recognition":
        if rng.random() < 0.5:
            a, w1, w2 = (f"{_FIRST[rng.integers(len(_FIRST))]} {chr(65 + rng.integers(26))}. "
                         f"{_LAST[rng.integers(len(_LAST))]}" for _ in range(3))
            return "Who wrote this book?", a, [w1, w2]
        a, w1, w2 = (f"The {_T1[rng.integers(len(_T1))]} {_T2[rng.integers(len(_T2))]}: "
                     f"{_T1[rng.integers(len(_T1))]} {_T2[rng.integers(len(_T2))]}" for _ in range(3))
        return "What is the title of this book?", a, [w1, w2]
    if cat == "OCR":
        if rng.random() < 0.5:
            g = _GENRES[rng.integers(len(_GENRES))]
            return "What is the genre of this book?", g, [x for x in _GENRES if x != g][:2]
        yes = rng.random() < 0.3
        return "Is this a children's book?", "Yes" if yes else "No", ["No" if yes else "Yes"]
    if cat == "Object":
        if rng.random() < 0.5:
            c = _COLOURS[rng.integers(len(_COLOURS))]
            ctx = _CONTEXT[rng.integers(len(_CONTEXT))]
            return f"What color is the {o} {ctx}?" + _SINGLE, c, [x for x in _COLOURS if x != c][:2]
        n = int(rng.integers(1, 6))
        ctx = _CONTEXT[rng.integers(len(_CONTEXT))]
        return f"How many {o}s are {ctx}?" + _SINGLE, str(n), [str(n + 1), str(max(0, n - 1))]
    if cat == "Spatial":
        p = _PLACES[rng.integers(len(_PLACES))]
        return (f"Where is the {o} relative to the {o2}?" + _SINGLE, p, [x for x in _PLACES if x != p][:2])
    a, w1, w2 = (_COMPLEX_A[i].format(o2) for i in rng.choice(len(_COMPLEX_A), 3, replace=False))
    q = f"What might the people near the {o} be doing, and why?"
    return q, a, [w1, w2]


# Phrasings so that each (seed, checkpoint) produces its own prediction text for
# the same item, as a real model does: every generation gets its own triple.
_FRAMES = ("{}", "{}.", "It is {}.", "The answer is {}", "I think {}", "{} (most likely)",
           "Looks like {}.", "Answer: {}")
_ENDS = ("", " ", "  ", "\u00a0", " .", " !", "\t", " ;")


# --------------------------------------------------------------------------- fill

_LOADED_TABLES = ("qa_pairs", "triples", "generations", "judgements", "eval_sets", "eval_set_members")


def _hash_json(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


class _TriggerPause:
    """Drop the triggers of the bulk-loaded tables; afterwards rebuild FTS indexes, restore the
    triggers exactly and bump the plots' change counter once (instead of once per row).
    The TUI's browse_rows triggers (migration m230) stay: they add each row as it is loaded."""

    def __init__(self, db, tables):
        self.db, self.tables = db, tables
        self.saved: list[tuple[str, str]] = []

    def __enter__(self):
        for t in self.tables:
            rows = self.db.execute(
                "SELECT name, sql FROM sqlite_master WHERE type='trigger' AND tbl_name=? "
                "AND name NOT LIKE 'browse\\_%' ESCAPE '\\'", [t]).fetchall()
            for name, sql in rows:
                self.db.execute(f"DROP TRIGGER [{name}]")
                self.saved.append((name, sql))
        return self

    def finish(self):
        for t in self.tables:
            if self.db[f"{t}_fts"].exists():
                self.db.execute(f"INSERT INTO [{t}_fts]([{t}_fts]) VALUES('rebuild')")
        for _name, sql in self.saved:
            self.db.execute(sql)
        self.saved = []
        if self.db["plot_data_version"].exists():
            self.db.execute("UPDATE plot_data_version SET n = n + 1")

    def __exit__(self, *exc):
        return False


def fill_synthetic(db, seeds: int = 8, checkpoints=DEFAULT_CHECKPOINTS, set_size: int = 5000,
                   judges=("rules",), seed: int = 0, *, dedup_size: int | None = None,
                   total_steps: int = 5120, turns: tuple[int, int] = (3, 7), human_labels: int = 0,
                   name: str = "synth", reporter: Reporter | None = None) -> dict:
    """Fill a migrated database with one synthetic experiment; returns a summary dict.

    seeds        number of runs (one per seed), named ``{name}-s{i}``
    checkpoints  checkpoint steps; one Seen@k set per step
    set_size     QA pairs per Seen@k set and in ``unseen`` (image de-dup)
    dedup_size   size of ``unseen-pair`` and ``unseen-none`` (default set_size // 5; 0 = leave them out)
    judges       judge names; the first judge's verdicts follow the accuracy model, later
                 judges agree with it on ~90% of items (and report P(yes))
    human_labels number of triples (from the first run) to give 4 synthetic human ratings
    Sizes: seeds x len(checkpoints) x (len(checkpoints)+1) x set_size generations, each with its
    own triple and one judgement per judge (8 x 6 x 7 x 5000 = 1.68M with the defaults).
    """
    import numpy as np

    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    checkpoints = tuple(sorted(int(k) for k in checkpoints))
    if not checkpoints or checkpoints[0] < 1 or checkpoints[-1] >= total_steps:
        raise BadInput(f"checkpoints must be between 1 and total_steps-1 ({total_steps - 1}): {checkpoints}")
    if seeds < 1 or set_size < 1 or not judges:
        raise BadInput("fill_synthetic needs seeds >= 1, set_size >= 1 and at least one judge")
    if dedup_size is None:
        dedup_size = max(1, set_size // 5)
    if db["datasets"].exists() and db.execute("SELECT 1 FROM datasets WHERE name=?", [name]).fetchone():
        raise BadInput(f"dataset '{name}' already exists in this database: use another name or a fresh file")
    rng = np.random.default_rng(seed)
    mean_turns = (turns[0] + turns[1]) / 2
    # conversations per step: enough that the steps up to the first checkpoint hold set_size pairs
    batch = max(1, math.ceil(1.25 * set_size / (mean_turns * checkpoints[0])))
    n_conv = total_steps * batch
    stamp = now()
    conn = db.conn

    old_journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.execute("PRAGMA journal_mode = DELETE")  # a fresh-file bulk load journals almost nothing
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")  # ~1 GB page cache during the load
    conn.execute("PRAGMA temp_store = MEMORY")
    summary: dict = {}
    try:
        conn.execute("BEGIN")   # the library's writers below join this one transaction
        with fixed_now(stamp), _TriggerPause(db, _LOADED_TABLES) as fts:
            summary = _fill(db, np, rng, seeds, checkpoints, set_size, dedup_size, judges, total_steps,
                            turns, human_labels, name, batch, n_conv, stamp, reporter, seed)
            reporter.info("rebuilding full-text indexes")
            fts.finish()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_mode = {old_journal}")
        conn.execute("PRAGMA cache_size = -2000")
    conn.execute("ANALYZE")
    summary["seconds"] = round(time.monotonic() - t0, 1)
    reporter.info(f"synthetic experiment '{name}': {summary['generations']} generations, "
                  f"{summary['judgements']} judgements in {summary['seconds']} s")
    return summary


def _fill(db, np, rng, seeds, checkpoints, set_size, dedup_size, judges, total_steps, turns,
          n_human, name, batch, n_conv, stamp, reporter, seed) -> dict:
    conn = db.conn
    cats = list(CATEGORIES)

    # ---- dataset, images, conversations, qa pairs -------------------------------------------
    dataset_id = ds_rows.create_dataset(conn, name, f"synthetic:{name}", sha256_text("synthetic", name, str(seed)),
                                        "synth-images")
    img_base = ds_rows.next_id(conn, "images") - 1
    conv_base = ds_rows.next_id(conn, "conversations") - 1
    qa_base = ds_rows.next_id(conn, "qa_pairs") - 1

    n_img = max(1, n_conv // 3)  # images are reused by ~3 conversations on average (METHOD.md 3)
    conv_img = rng.integers(0, n_img, n_conv)
    kind_p = [CATEGORY_SHARES["Bounding"], CATEGORY_SHARES["OCR"]]
    kind_p.append(1 - sum(kind_p))
    conv_kind = rng.choice(3, n_conv, p=kind_p)  # 0 Bounding (vg), 1 OCR (ocr_vqa), 2 mixed (coco/gqa)
    conv_turns = rng.integers(turns[0], turns[1] + 1, n_conv)
    mixed_cats = ["Complex", "Object", "Spatial"]
    mixed_p = np.array([CATEGORY_SHARES[c] for c in mixed_cats])
    mixed_p /= mixed_p.sum()
    sources = {0: "vg", 1: "ocr_vqa"}
    with reporter.task("synth: images", total=n_img, unit="images") as t:
        ds_rows.add_images(conn, (ds_rows.ImageRow(hashlib.sha256(f"{name}-image-{i}".encode()).hexdigest(),
                                                   f"synth/{i:08d}.jpg", 640, 480, 50_000 + (i * 7919) % 90_000,
                                                   img_base + i + 1) for i in range(n_img)))
        t.advance(n_img)
    conv_rows, qa_rows = [], []
    qa_conv, qa_cat, qa_sub, qa_texts = [], [], [], []
    qa_id = qa_base
    with reporter.task("synth: QA pairs", total=n_conv, unit="conversations") as t:
        for c in range(n_conv):
            kind = int(conv_kind[c])
            src = sources.get(kind) or ("coco" if rng.random() < 0.6 else "gqa")
            img_id = img_base + int(conv_img[c]) + 1
            cid = conv_base + c + 1
            conv_rows.append(ds_rows.ConversationRow(dataset_id, c, int(conv_turns[c]) * 2, f"synth-{c}", src, img_id,
                                                     f"synth/{conv_img[c]:08d}.jpg", id=cid))
            for turn in range(int(conv_turns[c])):
                if kind == 0:
                    cat = "Bounding"
                    sub = "bbox" if rng.random() < SUBCATEGORY_SHARES["Bounding"]["bbox"] else "describe"
                elif kind == 1:
                    cat = "OCR"
                    sub = "recognition" if rng.random() < SUBCATEGORY_SHARES["OCR"]["recognition"] else "semantic"
                else:
                    cat, sub = mixed_cats[int(rng.choice(3, p=mixed_p))], None
                q, a, wrong = _qa_text(rng, cat, sub)
                qa_id += 1
                qa_rows.append(ds_rows.QaRow(dataset_id, cid, turn, q, a, img_id, cat, sub, "synth-truth", None,
                                             cat, sub, qa_id))
                qa_conv.append(c)
                qa_cat.append(cats.index(cat))
                qa_sub.append(sub)
                qa_texts.append((q, a, wrong))
            if (c + 1) % 20000 == 0:
                t.advance(20000)
        t.advance(n_conv % 20000)
    ds_rows.add_conversations(conn, conv_rows)
    ds_rows.add_qa_pairs(conn, qa_rows)
    n_qa = len(qa_rows)
    ds_rows.set_counts(conn, dataset_id, n_conv, n_conv, n_qa,
                       {"generator": __name__, "seed": seed, "global_batch": batch, "total_steps": total_steps})
    del conv_rows, qa_rows
    qa_conv = np.array(qa_conv)
    qa_cat = np.array(qa_cat)
    qa_img = conv_img[qa_conv]
    curve_keys = [(cats[ci], s if cats[ci] in SUBCATEGORY_SHARES else None) for ci, s in zip(qa_cat, qa_sub)]
    key_index = {k: i for i, k in enumerate(CURVES)}
    qa_curve = np.array([key_index[k] for k in curve_keys])
    curve_arr = {f: np.array([getattr(CURVES[k], f) for k in CURVES]) for f in
                 ("start", "end", "tau", "gap", "image", "recency")}

    # ---- judge specs and generation config ---------------------------------------------------
    specs = []
    for jn in judges:
        backend = jn.split("/", 1)[0] if "/" in jn else jn
        spec = {"name": jn, "backend": backend, "model": jn.split("/", 1)[-1], "synthetic": True,
                "output": "verdict" if backend == "rules" else "rubric-dict"}
        h = _hash_json(spec)
        judgements.register_spec(db, h, jn, spec, stamp)
        specs.append((h, jn, backend))
    gen_hash = save_config(db, GenConfig())

    # ---- runs --------------------------------------------------------------------------------
    last_k = checkpoints[-1]
    peak_lr = 2e-5
    lr_table = np.array([lr_at(s, total_steps, peak_lr) for s in range(total_steps + 1)])
    n_sets = len(checkpoints) + 1 + (2 if dedup_size else 0)
    totals = {"generations": 0, "judgements": 0, "unscored": 0}
    run_names = []
    human_pool: list[tuple[str, str]] = []
    work = seeds * len(checkpoints)
    with reporter.task("synth: judgements", total=work, unit="checkpoints") as task:
        for s in range(seeds):
            rname = f"{name}-s{s}"
            run_names.append(rname)
            rs = np.random.default_rng([seed, s])
            cfg = {"seed": s, "model": "tiny", "lr": peak_lr, "schedule": "cosine", "warmup_frac": 0.03,
                   "global_batch": batch, "total_steps": total_steps, "checkpoints": list(checkpoints),
                   "synthetic": True}
            rid = runs.create_run(db, name=rname, dataset_id=dataset_id, seed=s, model_id="tiny", cfg=cfg,
                                  out_dir=f"runs/{rname}", total_steps=total_steps, global_batch=batch,
                                  checkpoint_steps=list(checkpoints), init_from=None)
            # order manifest: a seed-specific permutation of the conversations
            perm = rs.permutation(n_conv)
            conv_step = np.empty(n_conv, dtype=np.int64)
            conv_step[perm] = np.arange(n_conv) // batch + 1
            conv_pos = np.empty(n_conv, dtype=np.int64)
            conv_pos[perm] = np.arange(n_conv) % batch
            steps = np.arange(1, total_steps + 1)
            loss = (1.05 + 2.4 * np.exp(-steps / 120) + 0.35 * np.exp(-steps / 1500)
                    + rs.normal(0, 0.06, total_steps) + 0.02 * s)
            runs.write_progress(db, rid, zip((conv_base + 1 + np.arange(n_conv)).tolist(), conv_step.tolist(),
                                             conv_pos.tolist()),
                                zip(steps.tolist(), np.round(loss, 4).tolist(), lr_table[1:].tolist(),
                                    [180.0] * total_steps, [20000.0] * total_steps, [stamp] * total_steps))
            for k in checkpoints:
                runs.write_progress(db, rid, [], [], (k, f"runs/{rname}/checkpoints/step-{k}"))
            runs.set_status(db, rid, "done", finished_at=stamp, train_seconds=3600.0 + 60 * s, samples_per_s=180.0)

            # when each qa pair (through its conversation) and its image were first trained on
            qa_step = conv_step[qa_conv]
            img_first = np.full(n_img, total_steps + 1, dtype=np.int64)
            np.minimum.at(img_first, conv_img, conv_step)
            qa_img_first = img_first[qa_img]

            # evaluation sets
            sets: list[tuple[str, str, int | None, str | None, np.ndarray]] = []
            order = np.lexsort((-conv_pos[qa_conv], -qa_step))  # most recently trained first
            sorted_steps = qa_step[order]
            for k in checkpoints:
                start = np.searchsorted(-sorted_steps, -k, side="left")
                members = order[start:start + set_size]
                sets.append((f"seen@{k}", "seen", k, None, members))
            tail = np.nonzero(qa_step > last_k)[0]
            clean = tail[qa_img_first[tail] > last_k]
            sets.append(("unseen", "unseen", None, "image", rs.permutation(clean)[:set_size]))
            if dedup_size:
                dirty = tail[qa_img_first[tail] <= last_k]
                sets.append(("unseen-pair", "unseen", None, "pair", rs.permutation(dirty)[:dedup_size]))
                sets.append(("unseen-none", "unseen", None, "none", rs.permutation(tail)[:dedup_size]))
            items = np.unique(np.concatenate([m for *_, m in sets]))
            for sname, kind, k, dedup, members in sets:
                defn = {"kind": kind, "k_step": k, "dedup": dedup, "after_step": last_k if kind == "unseen" else None,
                        "requested": set_size if sname in ("unseen",) or kind == "seen" else dedup_size,
                        "synthetic": True}
                insert_set(conn, rid, SetSpec(sname, kind, len(members), k_step=k, dedup=dedup, seed=s,
                                              definition=defn), (qa_base + 1 + members).tolist())

            # per-seed skill offsets: the spread behind the 1-sigma bands
            seed_off = rs.normal(0, 0.02, len(CURVES))
            ci = qa_curve[items]
            for si, step in enumerate(checkpoints):
                st, en, tau = curve_arr["start"][ci], curve_arr["end"][ci], curve_arr["tau"][ci]
                p = st + (en - st) * (1 - np.exp(-step / tau)) + seed_off[ci] + rs.normal(0, 0.01, len(CURVES))[ci]
                trained = qa_step[items] <= step
                t_step = qa_step[items]
                lr_fac = 0.3 + 0.7 * lr_table[np.minimum(t_step, total_steps)] / peak_lr
                rec = curve_arr["recency"][ci]
                fade = np.where(rec > 0, 0.55 + 0.45 * np.exp(-np.maximum(step - t_step, 0) / np.maximum(rec, 1)), 1.0)
                gap = curve_arr["gap"][ci] * lr_fac * fade
                is_complex = qa_cat[items] == cats.index("Complex")
                # Complex: later-trained sets end up worse than unseen (odd gap, METHOD.md 5.5/5.6)
                gap = np.where(is_complex, 0.04 - 0.10 * t_step / total_steps, gap)
                p = p + np.where(trained, gap, 0.0)
                p = p + np.where(~trained & (qa_img_first[items] <= step), curve_arr["image"][ci], 0.0)
                p = np.clip(p, 0.002, 0.97)
                correct = rs.random(len(items)) < p
                unscored = rs.random(len(items)) < UNSCORED_RATE
                why = rs.integers(0, len(UNSCORED_REASONS), len(items))
                pick = rs.integers(0, 2, len(items))
                frame = _FRAMES[s % len(_FRAMES)]
                end = _ENDS[si % len(_ENDS)] if s < len(_FRAMES) and si < len(_ENDS) else f" [{s}.{si}]"
                gen_items, preds, hashes = [], [], []
                for j, it in enumerate(items.tolist()):
                    q, a, wrong = qa_texts[it]
                    pred = frame.format(a if correct[j] else wrong[pick[j] % len(wrong)]) + end
                    hashes.append(triple_hash(q, a, pred))
                    gen_items.append(GenItem(qa_base + 1 + it, q, a, None))
                    preds.append(pred)
                for i in range(0, len(gen_items), GEN_BATCH):     # as `vlmdyn infer` stores its batches
                    totals["generations"] += write_batch(db, rid, step, gen_items[i:i + GEN_BATCH],
                                                         preds[i:i + GEN_BATCH], gen_hash, "synth")
                if s == 0 and n_human:
                    human_pool.extend((h, "yes" if c else "no") for h, c in zip(hashes, correct))
                for jx, (spec_hash, jname, backend) in enumerate(specs):
                    verdict_yes = correct if jx == 0 else np.where(rs.random(len(items)) < 0.9, correct, ~correct)
                    rows = _judgement_rows(np, rs, spec_hash, jname, backend, hashes, verdict_yes, unscored, why,
                                           stamp)
                    # identical triples share one judgement: the first verdict stands
                    totals["judgements"] += judgements.insert_new(db, rows)
                    totals["unscored"] += int(unscored.sum())
                task.advance(1)

    # ---- optional synthetic human ratings ---------------------------------------------------
    n_labels = 0
    if n_human and human_pool:
        idx = rng.choice(len(human_pool), min(n_human, len(human_pool)), replace=False)
        labelled = set()
        for i in idx.tolist():
            h, truth = human_pool[i]
            for r in range(4):
                lab = truth if rng.random() < 0.85 else ("no" if truth == "yes" else "yes")
                if (h, r) not in labelled:   # a triple drawn twice (identical triples) keeps its first labels
                    labelled.add((h, r))
                    save_label(conn, h, f"rater{r + 1}", lab, "synthetic", stamp)
        n_labels = len(idx)
    return {"dataset": name, "dataset_id": dataset_id, "runs": run_names, "checkpoints": list(checkpoints),
            "n_sets_per_run": n_sets, "qa_pairs": n_qa, "conversations": n_conv, "images": n_img,
            "global_batch": batch, "judges": [j for _, j, _ in specs], "human_labelled": n_labels, **totals}


def _judgement_rows(np, rs, spec_hash, jname, backend, hashes, yes, unscored, why, stamp) -> list[JudgementRow]:
    """One judge's rows for one checkpoint's triples, in the shape its real backend writes: the rules
    judge has no raw text, no tokens and no cost; model judges a rubric dict, tokens, P(yes), and the
    OpenAI-like one a cost."""
    n = len(hashes)
    rules = backend == "rules"
    conf = None if rules else np.abs(rs.normal(2.0, 1.0, n))
    ms = rs.integers(1, 6, n)
    lat = rs.gamma(2.0, 0.4 if backend == "openai" else (0.15 if not rules else 0.00002), n)
    pt = rs.integers(550, 800, n)
    rows = []
    for j in range(n):
        y = bool(yes[j])
        if unscored[j]:
            reason, raw = UNSCORED_REASONS[int(why[j])]
            rows.append(JudgementRow(spec_hash, hashes[j], jname, jname, "unscored", None, reason, jname,
                                     None if rules else raw, None, None, None, None, 0 if rules else int(pt[j]),
                                     0 if rules else None, 0.0 if rules else None, float(lat[j]), stamp))
            continue
        verdict = "yes" if y else "no"
        if rules:
            rows.append(JudgementRow(spec_hash, hashes[j], jname, jname, "scored", verdict, None, jname, None,
                                     None, None, None, None, 0, 0, 0.0, float(lat[j]), stamp))
            continue
        p_yes = float(1 / (1 + math.exp(-(conf[j] if y else -conf[j]))))
        m1 = int(ms[j]) if not y else max(3, int(ms[j]))
        m2, m3 = max(1, m1 - 1), min(5, m1 + 1)
        raw = f"{{'p': '{verdict}', 'MS': {m1}, 'MD': {m2}, 'H': {m3}}}"
        ptok, ctok = int(pt[j]), 24
        cost = (ptok * 0.15 + ctok * 0.6) / 1e6 if backend == "openai" else 0.0
        rows.append(JudgementRow(spec_hash, hashes[j], jname, jname, "scored", verdict, None, jname, raw, m1, m2, m3,
                                 p_yes, ptok, ctok, cost, float(lat[j]), stamp))
    return rows
