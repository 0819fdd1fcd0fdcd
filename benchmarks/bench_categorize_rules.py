"""Benchmark: the rule categoriser's throughput, fast path vs the plain rule walk, side by side.

Corpora (questions only, answers where the data has them):
  synthetic  every QA pair of a generated 2,000-image synthetic benchmark (~27k, many repeats,
             like LLaVA's templated questions)
  varied     ~100k distinct LLaVA-style questions: the hand-written test questions with their
             nouns swapped (no two alike, so the per-question cache never hits)

Methods:
  reference  ``classify_reference``: walk every rule's full pattern list in order (the baseline)
  gated      ``classify`` with its cache cleared before each run: word-gated alternatives
  cached     ``classify`` with a warm cache (what a second pass over repeated texts costs)
  database   ``categorize_dataset`` on the imported synthetic benchmark (reads, labels, batched UPDATEs)

    /work/venv/bin/python benchmarks/bench_categorize_rules.py
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path

from vlmdyn_cli.data import rules

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
NOUNS = ("man", "woman", "cat", "dog", "bus", "car", "table", "cup", "plate", "umbrella", "bench", "horse",
         "laptop", "sign", "tree", "fence", "bed", "lamp", "bottle", "bag", "bicycle", "clock", "train", "boat",
         "kite", "pizza", "giraffe", "zebra", "bird", "chair", "phone", "truck", "sink", "shirt", "helmet")


def varied(n: int, seed: int = 0) -> list[tuple[str, str | None]]:
    rng = random.Random(seed)
    base = []
    for f in ("llava_style_questions.jsonl", "llava_style_questions_heldout.jsonl"):
        for line in (ROOT / "tests" / "data" / f).read_text().splitlines():
            r = json.loads(line)
            base.append((r["question"], r.get("answer")))
    seen, out = set(), []
    while len(out) < n:
        q, a = rng.choice(base)
        words = q.split(" ")
        idx = [i for i, w in enumerate(words) if w.strip("?.,").lower() in NOUNS]
        for i in idx:
            words[i] = words[i].lower().replace(words[i].strip("?.,").lower(), rng.choice(NOUNS))
        q2 = " ".join(words) + " " + " ".join(rng.choice(NOUNS) for _ in range(2)) if not idx else " ".join(words)
        q2 = f"{q2} ({len(out)})" if q2 in seen else q2
        seen.add(q2)
        out.append((q2, a))
    return out


def rate(fn, items, clear_cache: bool) -> float:
    if clear_cache:
        rules._CACHE.clear()
    t0 = time.perf_counter()
    for q, a in items:
        fn(q, a)
    return len(items) / (time.perf_counter() - t0)


def main() -> None:
    from vlmdyn_cli.data.categorize import categorize_dataset
    from vlmdyn_cli.data.importer import import_dataset
    from vlmdyn_cli.data.synth import generate
    from vlmdyn_cli.store import open_db

    tmp = Path(tempfile.mkdtemp(prefix="bench_cat_"))
    res = generate(tmp / "synth", n_images=2000, seed=0)
    synthetic = [(r["conversations"][2 * i]["value"], r["conversations"][2 * i + 1]["value"])
                 for r in json.loads(res.json_path.read_text()) for i in range(len(r["vlmdyn_truth"]))]
    corpora = {"synthetic": synthetic, "varied": varied(100_000)}
    table = []
    for name, items in corpora.items():
        row = {"corpus": name, "questions": len(items), "distinct": len({q for q, _ in items})}
        row["reference_q_per_s"] = round(rate(rules.classify_reference, items, False))
        row["gated_q_per_s"] = round(rate(rules.classify, items, True))
        row["cached_q_per_s"] = round(rate(rules.classify, items, False))
        row["gated_vs_reference"] = round(row["gated_q_per_s"] / row["reference_q_per_s"], 2)
        table.append(row)
        print(row)
    db = open_db(tmp / "exp.db")
    import_dataset(db, res.json_path, res.images_dir, name="synth")
    rules._CACHE.clear()
    r = categorize_dataset(db, "rules")
    row = {"corpus": "database", "questions": r.n_labelled, "seconds": r.seconds, "q_per_s": round(r.rate),
           "agreement": r.agreement.to_dict() if r.agreement else None}
    table.append(row)
    print({k: v for k, v in row.items() if k != "agreement"}, "agreement", r.agreement.category, r.agreement.subcategory)
    db.close()
    import shutil

    shutil.rmtree(tmp)
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_categorize_rules.json").write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
