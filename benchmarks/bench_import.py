"""Benchmark: `data import` (streaming) vs a plain `json.load` of the same LLaVA-format file.

Generates LLaVA-format files of two sizes (default 100k and 200k
conversations, ~1.5 KB per record like the real mix665k file, multi-turn,
with VQA / GQA / OCR-VQA / bounding-box / free-form / text-only turns and a
pool of small shared images), then measures side by side, each in a fresh
subprocess that reports its own peak RSS (``resource.getrusage``):

  json.load   the baseline: parse the whole list into memory (nothing else)
  reader      our streaming reader alone (``iter_records``), no database
  import      the full ``import_dataset`` into a fresh SQLite file
              (validation, turn split, dependent-turn filter, image hashing,
              batched inserts with the FTS index, one transaction)

Peak RSS of the streaming paths must not grow with the file size; the
baseline's does. The script prints a table and writes
benchmarks/out/bench_import.json.

Target (benchmarks/checks.py; exit 1 when missed): the peak RSS extrapolated to the
1 GB mix665k file (from the growth between the two sizes) at least TARGET x lower for
``import`` than for ``json.load``.

    .venv/bin/python benchmarks/bench_import.py                # 100k and 200k
    .venv/bin/python benchmarks/bench_import.py --sizes 20000,40000   # quick
    .venv/bin/python benchmarks/bench_import.py --sizes 665000 --methods reader,import \
        --out benchmarks/out/bench_import_665k.json                          # real scale, ~1 GB
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from checks import Ratio, finish

OUT = Path(__file__).resolve().parent / "out"
TARGET = 10.0   # extrapolated peak RSS at 1 GB of JSON: json.load / import

# ---------------------------------------------------------------- data generation

OBJECTS = ["bus", "dog", "cat", "man", "woman", "table", "car", "umbrella", "horse", "boat", "tree", "sign",
           "bicycle", "plate", "clock", "bench", "kite", "train", "laptop", "giraffe"]
COLOURS = ["red", "blue", "white", "black", "green", "yellow", "brown", "gray"]
SHORT = "\nAnswer the question using a single word or phrase."
WORDS = ("the a image shows scene person people standing near next to large small several appears might "
         "because likely suggests outdoor indoor background foreground street city field water sky building "
         "wearing holding looking sitting walking playing together area view setting light day").split()


def _sentence(rng: random.Random, n_words: int) -> str:
    w = [rng.choice(WORDS) for _ in range(n_words)]
    return " ".join(w).capitalize() + "."


def _para(rng: random.Random, n_chars: int) -> str:
    out = []
    while sum(len(s) + 1 for s in out) < n_chars:
        out.append(_sentence(rng, rng.randint(8, 20)))
    return " ".join(out)


def _box(rng: random.Random) -> str:
    x1, y1 = rng.random() * 0.6, rng.random() * 0.6
    return f"[{x1:.2f}, {y1:.2f}, {x1 + rng.random() * 0.4:.2f}, {y1 + rng.random() * 0.4:.2f}]"


def make_record(i: int, rng: random.Random) -> dict:
    kind = rng.random()
    turns: list[tuple[str, str]] = []
    image = f"coco/train2017/{rng.randrange(64):012d}.png"
    if kind < 0.30:        # VQA / GQA packed short questions
        image = f"gqa/images/{rng.randrange(64)}.png" if rng.random() < 0.5 else image
        for _ in range(rng.randint(3, 10)):
            o = rng.choice(OBJECTS)
            q = rng.choice([f"What color is the {o}?", f"Is the {o} on the left or right?",
                            f"How many {o}s are there?", f"What is the {o} made of?"])
            turns.append((q + SHORT, rng.choice(COLOURS + ["Left", "Right", "2", "Wood"])))
    elif kind < 0.45:      # LLaVA-Instruct conversation, long answers
        for _ in range(rng.randint(2, 5)):
            o = rng.choice(OBJECTS)
            q = rng.choice([f"What might be the purpose of the {o} in this scene?",
                            f"What can you infer about the {o} and its surroundings?",
                            f"Where is the {o} located in the image?"])
            turns.append((q, _para(rng, rng.randint(250, 700))))
        if rng.random() < 0.2:
            turns.append(("Why?", _para(rng, 200)))  # a dependent follow-up: dropped by the filter
    elif kind < 0.50:      # detailed description
        turns.append(("Describe the following image in detail.", _para(rng, rng.randint(500, 1100))))
    elif kind < 0.70:      # RefCOCO / VG bounding boxes
        image = f"vg/VG_100K/{rng.randrange(64)}.png"
        for _ in range(rng.randint(3, 10)):
            phrase = f"{rng.choice(COLOURS)} {rng.choice(OBJECTS)} {rng.choice(['on the left', 'in front', 'near the top'])}"
            if rng.random() < 0.5:
                turns.append(("Please provide the bounding box coordinate of the region this sentence "
                              f"describes: {phrase}.", _box(rng)))
            else:
                turns.append((f"Please provide a short description for this region: {_box(rng)}.", phrase))
    elif kind < 0.85:      # OCR-VQA book covers
        image = f"ocr_vqa/images/{rng.randrange(64):010d}.png"
        for q, a in rng.sample([("Who wrote this book?", "Jane Author"), ("What is the title of this book?",
                               "A Long Title About Things"), ("What type of book is this?", "Cookbooks, Food & Wine"),
                               ("Is this a sci-fi book?", "No"), ("Is this book related to Travel?", "Yes")], 5):
            turns.append((q + SHORT, a))
    else:                  # text-only (ShareGPT-like)
        image = None
        for _ in range(rng.randint(1, 3)):
            turns.append((_sentence(rng, rng.randint(8, 25)).rstrip(".") + "?", _para(rng, rng.randint(300, 1500))))
    conv = []
    for t, (q, a) in enumerate(turns):
        if t == 0 and image:
            q = "<image>\n" + q if rng.random() < 0.8 else q + "\n<image>"
        conv += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
    rec = {"id": f"{i:09d}", "conversations": conv}
    if image:
        rec["image"] = image
    return rec


def write_images(root: Path) -> None:
    from PIL import Image

    rng = random.Random(0)
    for sub, names in (("coco/train2017", [f"{k:012d}.png" for k in range(64)]),
                       ("gqa/images", [f"{k}.png" for k in range(64)]),
                       ("vg/VG_100K", [f"{k}.png" for k in range(64)]),
                       ("ocr_vqa/images", [f"{k:010d}.png" for k in range(64)])):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for n in names:
            Image.new("RGB", (16, 16), tuple(rng.randrange(256) for _ in range(3))).save(root / sub / n)


def write_file(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("[\n")
        for i in range(n):
            fh.write(("" if i == 0 else ",\n") + json.dumps(make_record(i, rng)))
        fh.write("\n]\n")


# ---------------------------------------------------------------- measured children

CHILD = {
    "json.load": """
import json, resource, sys, time
t0 = time.perf_counter()
with open(sys.argv[1], encoding="utf-8") as fh:
    data = json.load(fh)
n = len(data)
dt = time.perf_counter() - t0
print(json.dumps({"n": n, "seconds": dt, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""",
    "reader": """
import json, resource, sys, time
from vlmdyn_cli.data.llava import iter_records
t0 = time.perf_counter()
n = sum(1 for _ in iter_records(sys.argv[1]))
dt = time.perf_counter() - t0
print(json.dumps({"n": n, "seconds": dt, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""",
    "import": """
import json, resource, sys, time
from vlmdyn_cli.data.importer import import_dataset
from vlmdyn_cli.store import open_db
db = open_db(sys.argv[3])
t0 = time.perf_counter()
res = import_dataset(db, sys.argv[1], sys.argv[2], workers=2)
dt = time.perf_counter() - t0
print(json.dumps({"n": res.n_conversations, "kept": res.n_kept, "qa": res.n_qa, "images": res.n_images,
                  "seconds": dt, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""",
}


def run_child(kind: str, *args: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD[kind], *args], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,200000", help="comma-separated numbers of conversations")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--methods", default="json.load,reader,import",
                    help="subset to run, e.g. 'reader,import' for a full-scale 665k check without json.load")
    ap.add_argument("--out", default=str(OUT / "bench_import.json"), help="where to write the JSON results")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="vlmdyn-bench-import-"))
    write_images(tmp / "images")
    results = []
    try:
        for n in sizes:
            f = tmp / f"llava_{n}.json"
            t0 = time.perf_counter()
            write_file(f, n)
            mb = f.stat().st_size / 2**20
            print(f"generated {n} conversations, {mb:.0f} MB in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            for kind in args.methods.split(","):
                extra = (str(tmp / "images"), str(tmp / f"db_{n}.sqlite")) if kind == "import" else ()
                r = run_child(kind, str(f), *extra)
                r.update(method=kind, conversations=n, file_mb=round(mb, 1),
                         conversations_per_s=round(n / r["seconds"], 1))
                if kind == "import":
                    r["db_mb"] = round((tmp / f"db_{n}.sqlite").stat().st_size / 2**20, 1)
                results.append(r)
                print(f"  {kind:10s} {r['seconds']:7.2f} s  {r['conversations_per_s']:10.0f} conv/s  "
                      f"peak RSS {r['peak_rss_mb']:7.0f} MB", file=sys.stderr)
            f.unlink() if not args.keep else None
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    # RSS growth per MB of JSON, and extrapolation to the ~1 GB mix665k file
    summary = {}
    for kind in ("json.load", "reader", "import"):
        rs = [r for r in results if r["method"] == kind]
        if len(rs) >= 2:
            a, b = rs[0], rs[-1]
            slope = (b["peak_rss_mb"] - a["peak_rss_mb"]) / (b["file_mb"] - a["file_mb"])
            summary[kind] = {"rss_mb_per_json_mb": round(slope, 3),
                             "extrapolated_peak_rss_mb_at_1gb": round(b["peak_rss_mb"] + slope * (1024 - b["file_mb"]))}
    base = {r["conversations"]: r for r in results if r["method"] == "json.load"}
    print()
    print(f"{'conversations':>13} {'file MB':>8} {'method':>10} {'seconds':>8} {'conv/s':>10} {'peak RSS MB':>12} "
          f"{'RSS vs json.load':>17}")
    for r in results:
        b = base.get(r["conversations"])
        ratio = f"{r['peak_rss_mb'] / b['peak_rss_mb']:.2f}x" if b else "-"
        print(f"{r['conversations']:>13} {r['file_mb']:>8.0f} {r['method']:>10} {r['seconds']:>8.2f} "
              f"{r['conversations_per_s']:>10.0f} {r['peak_rss_mb']:>12.0f} {ratio:>17}")
    for kind, s in summary.items():
        print(f"{kind:>10}: {s['rss_mb_per_json_mb']:+.3f} MB RSS per MB of JSON; "
              f"extrapolated peak at 1 GB: {s['extrapolated_peak_rss_mb_at_1gb']} MB")
    out = {"results": results, "rss_growth": summary, "python": sys.version.split()[0],
           "cpu_count": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"\nwrote {args.out}")
    if "json.load" not in summary or "import" not in summary:
        return finish("bench_import", [])  # a subset of methods or one size: nothing to compare
    peak = {k: summary[k]["extrapolated_peak_rss_mb_at_1gb"] for k in ("json.load", "import")}
    return finish("bench_import", [Ratio(
        "import: peak RSS extrapolated to a 1 GB file, streaming import vs json.load", peak["import"],
        peak["json.load"], "MB", TARGET, note=f"sizes {args.sizes}; growth per MB of JSON: import "
        f"{summary['import']['rss_mb_per_json_mb']:+.3f}, json.load {summary['json.load']['rss_mb_per_json_mb']:+.3f}")])


if __name__ == "__main__":
    sys.exit(main())
