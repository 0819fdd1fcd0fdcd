"""Benchmark: the rule categoriser's throughput, this tree's rules against main's, side by side.

Main's ``vlmdyn_cli/data/rules.py`` and ``categories.py`` are read from git (``--base``, default
``main``) and loaded as separate modules, so both run in the same process on the same corpora,
``--repeats`` times each, the side that runs first alternating; a ratio is the median of the
per-repeat ratios (robust to a burst of load from other processes), a rate the best run. Times
are this process's CPU seconds (one thread, pure Python: another program taking the core stops
the clock instead of inflating a run; wall clocks scattered by +-20% at load 5).

Corpora (questions only, answers where the data has them):
  synthetic  every QA pair of a generated 2,000-image synthetic benchmark (~27k, many repeats,
             like LLaVA's templated questions)
  varied     ~100k distinct LLaVA-style questions: the hand-written test questions with their
             nouns swapped (no two alike, so the per-question cache never hits)
  eval       the eval-benchmark questions of tests/data (TextVQA, MME, POPE, LLaVA-Bench, ...)
             with their image paths, repeated to ~20k, cache cleared: the source rule
             (``pair_source`` / main's ``ocr_source``) plus the rules, as ``data categorize``
             runs them per pair

Methods per corpus: ``classify`` with its cache cleared before each run (the fast, gated path),
for this tree and for the base; ``classify_reference`` (every rule, no gates) of this tree as
the slow baseline the gates are measured against.

Targets (ratios in this run, benchmarks/checks.py; exit 1 when one is missed):
  this tree / base >= 0.9 on every corpus   (the categoriser must not get slower; single runs on
                                             the shared 2-core machine scatter by about +-8%)
  gated / reference >= 5 on the varied corpus (the word gates keep paying)

    .venv/bin/python benchmarks/bench_categorize_rules.py [--base main] [--repeats 3]
    .venv/bin/python benchmarks/bench_categorize_rules.py --quick   # 500 images, 10k varied, 5k eval
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from checks import Must, Ratio, finish

from vlmdyn_cli.data import categories, rules

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
NOUNS = ("man", "woman", "cat", "dog", "bus", "car", "table", "cup", "plate", "umbrella", "bench", "horse",
         "laptop", "sign", "tree", "fence", "bed", "lamp", "bottle", "bag", "bicycle", "clock", "train", "boat",
         "kite", "pizza", "giraffe", "zebra", "bird", "chair", "phone", "truck", "sink", "shirt", "helmet")
VS_BASE_TARGET = 0.9
GATES_TARGET = 5.0


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


def eval_items(n: int) -> list[tuple[str, str | None, str | None]]:
    """(question, image, source) of every eval-benchmark question file, repeated to n, each text made distinct."""
    base = [(r["question"], r.get("image"), r.get("source"))
            for f in sorted((ROOT / "tests" / "data").glob("eval_*.jsonl"))
            for line in f.read_text().splitlines() if line.strip() for r in [json.loads(line)]]
    return [(f"{q} ({i})" if i >= len(base) else q, img, src)
            for i, (q, img, src) in ((i, base[i % len(base)]) for i in range(n))]


def load_base(ref: str):
    """Main's categories.py and rules.py as modules of their own (rules bound to main's categories)."""
    mods = {}
    for name in ("categories", "rules"):
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:vlmdyn_cli/data/{name}.py"],
                              capture_output=True, text=True, check=True).stdout
        text = text.replace("from vlmdyn_cli.data.categories import", "from _base_categories import")
        spec = importlib.util.spec_from_loader(f"_base_{name}", loader=None)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[f"_base_{name}"] = mod
        exec(compile(text, f"{ref}:vlmdyn_cli/data/{name}.py", "exec"), mod.__dict__)
        mods[name] = mod
    return mods["categories"], mods["rules"]


def run_rules(mod, classify, items) -> float:
    mod._CACHE.clear()
    t0 = time.process_time()
    for q, a in items:
        classify(q, a)
    return len(items) / (time.process_time() - t0)


def run_eval(cats_mod, rules_mod, items, new: bool) -> float:
    """Per pair: the source rule, then the rules for pairs it leaves open (as label_pairs does)."""
    rules_mod._CACHE.clear()
    t0 = time.process_time()
    if new:
        for q, img, src in items:
            if cats_mod.pair_source(src, img, q) is None:
                rules_mod.classify(q)
    else:  # a base from before pair_source
        for q, img, src in items:
            if cats_mod.ocr_source(src, img) is None:
                rules_mod.classify(q)
    return len(items) / (time.process_time() - t0)


def side_by_side(this, base, repeats: int) -> tuple[list[float], list[float]]:
    """Rates of both sides, ``repeats`` runs each; the side that runs first alternates."""
    a, b = [], []
    for i in range(repeats):
        if i % 2:
            b.append(base())
            a.append(this())
        else:
            a.append(this())
            b.append(base())
    return a, b


def median_ratio(this: list[float], base: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(this, base))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="main", help="git ref of the rules to compare against")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="500 images, 10k varied and 5k eval questions")
    args = ap.parse_args(argv)
    from vlmdyn_cli.data.synth import generate

    try:
        base_cats, base_rules = load_base(args.base)
    except subprocess.CalledProcessError as e:
        return finish("bench_categorize_rules", [Must(f"rule categoriser: base {args.base!r} readable from git", False,
                                                      e.stderr.strip()[:80], "git show works")])
    tmp = Path(tempfile.mkdtemp(prefix="bench_cat_"))
    res = generate(tmp / "synth", n_images=500 if args.quick else 2000, seed=0)
    synthetic = [(r["conversations"][2 * i]["value"], r["conversations"][2 * i + 1]["value"])
                 for r in json.loads(res.json_path.read_text()) for i in range(len(r["vlmdyn_truth"]))]
    corpora = {"synthetic": synthetic, "varied": varied(10_000 if args.quick else 100_000)}
    table = []
    for name, items in corpora.items():
        this, base = side_by_side(lambda: run_rules(rules, rules.classify, items),
                                  lambda: run_rules(base_rules, base_rules.classify, items), args.repeats)
        reference = run_rules(rules, rules.classify_reference, items)
        table.append({"corpus": name, "questions": len(items), "distinct": len({q for q, _ in items}),
                      "this_q_per_s": round(max(this)), f"{args.base}_q_per_s": round(max(base)),
                      "this_vs_base": round(median_ratio(this, base), 3),
                      "reference_q_per_s": round(reference),
                      "gated_vs_reference": round(max(this) / reference, 2)})
        print(table[-1])
    items = eval_items(5_000 if args.quick else 20_000)
    base_new = hasattr(base_cats, "pair_source")
    this, base = side_by_side(lambda: run_eval(categories, rules, items, True),
                              lambda: run_eval(base_cats, base_rules, items, base_new), args.repeats)
    table.append({"corpus": "eval (source rule + rules)", "questions": len(items),
                  "this_q_per_s": round(max(this)), f"{args.base}_q_per_s": round(max(base)),
                  "this_vs_base": round(median_ratio(this, base), 3)})
    print(table[-1])
    import shutil

    shutil.rmtree(tmp)
    # the per-repeat median ratio is the check; ours/baseline shown are the best rates
    checks = [Ratio(f"rule categoriser: this tree vs {args.base} ({row['corpus']})", row["this_q_per_s"],
                    row[f"{args.base}_q_per_s"], "q/s", VS_BASE_TARGET, higher_is_better=True,
                    note=f"median of {args.repeats} per-repeat ratios {row['this_vs_base']:.3f}", robust_ratio=row["this_vs_base"])
              for row in table]
    varied_row = next(r for r in table if r["corpus"] == "varied")
    checks.append(Ratio("rule categoriser: word-gated vs every rule walked (varied)", varied_row["this_q_per_s"],
                        varied_row["reference_q_per_s"], "q/s", GATES_TARGET, higher_is_better=True,
                        note=f"{varied_row['questions']:,} distinct questions, cache cleared"))
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_categorize_rules.json").write_text(json.dumps({"table": table}, indent=2))
    return finish("bench_categorize_rules", checks)


if __name__ == "__main__":
    sys.exit(main())
