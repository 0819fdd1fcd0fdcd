"""Benchmark: the fitted judge's text features, with the per-text token cache against without it.

Every feature of the `lexical` group reads the same three texts of an item (question, references,
prediction); `judging/features.py` repairs and tokenises each text once (`tokens`, `_refs_of`:
LRU caches). The baseline is the same code with both caches bypassed (every feature tokenising its
texts again, as before the cache), in the same process on the same items, the side that runs first
alternating, timed in CPU seconds; a ratio is the median of the per-repeat ratios, a rate the best run. Items: the
731 distinct answers of judges/data/nq-dev.jsonl, repeated ``--copies`` times with the caches
cleared before each pass (so a pass only reuses what one item's features share).

Targets (benchmarks/checks.py; exit 1 when one is missed):
  cached / uncached >= 2 items/s       (the cache must keep paying)
  the same feature values both ways    (Must)

    .venv/bin/python benchmarks/bench_features.py [--copies 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from checks import Must, Ratio, finish

from vlmdyn_cli.judging import features as F
from vlmdyn_cli.judging.backends.base import Item
from vlmdyn_cli.judging.references import encode

ROOT = Path(__file__).resolve().parents[1]


def load_items(copies: int) -> list[Item]:
    seen, items = set(), []
    for line in (ROOT / "judges/data/nq-dev.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        it = Item(r["id"], r["question"], encode(r["references"]), r["prediction"])
        if (it.question, it.answer, it.prediction) not in seen:
            seen.add((it.question, it.answer, it.prediction))
            items.append(it)
    return items * copies


def run(items: list[Item], names: list[str], cached: bool) -> tuple[float, list[list[float]]]:
    """CPU seconds to compute every feature of every item (item by item, as the fitted backend does;
    CPU time, so that other processes on a shared machine do not slow one side only)."""
    saved = F.tokens, F._refs_of
    if not cached:                          # the same functions without their caches
        F.tokens, F._refs_of = F.tokens.__wrapped__, F._refs_of.__wrapped__
    try:
        saved[0].cache_clear()
        saved[1].cache_clear()
        t0 = time.process_time()
        rows = [[F.TEXT_FEATURES[f](it) for f in names] for it in items]
        return time.process_time() - t0, rows
    finally:
        F.tokens, F._refs_of = saved


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    items = load_items(a.copies)
    names = F.expand(["lexical"])
    ratios, best = [], {True: float("inf"), False: float("inf")}
    same = True
    for rep in range(a.repeats):
        order = (True, False) if rep % 2 == 0 else (False, True)
        took, rows = {}, {}
        for cached in order:
            took[cached], rows[cached] = run(items, names, cached)
            best[cached] = min(best[cached], took[cached])
        same = same and rows[True] == rows[False]
        ratios.append(took[False] / took[True])
    n = len(items)
    print(f"{n} items x {len(names)} features; cached {n / best[True]:.0f} items/s, "
          f"uncached {n / best[False]:.0f} items/s", flush=True)
    checks = [
        Ratio("text features: token cache vs none (items/s)", n / best[True], n / best[False], "items/s", 2.0,
              higher_is_better=True, robust_ratio=statistics.median(ratios)),
        Must("text features: same values with and without the cache", same, "identical" if same else "DIFFERENT",
             "identical"),
    ]
    return finish("bench_features", checks)


if __name__ == "__main__":
    sys.exit(main())
