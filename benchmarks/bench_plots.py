"""Benchmark: figure data from the plots cache vs the join it replaces, on a paper-scale database.

    python benchmarks/bench_plots.py [--db PATH] [--seeds 8] [--set-size 5000]   # full: 1.68M generations
    python benchmarks/bench_plots.py --quick                                      # 2 seeds x 300

1. Fills the database with ``testing.synthdb.fill_synthetic`` (once: skipped if the file already
   holds the synthetic dataset; the full one takes ~12 minutes).
2. Side by side, interleaved, best of --reps:
   baseline  the per-run join generations -> judgements -> sets -> categories for every run,
             without the cache (``compute_cells``: what every figure would pay without plot_cells);
   ours      what a figure pays with the cache up to date: ``ensure_cells`` (finds nothing to do)
             and the frontiers figure's three ``seed_stats`` queries over ``plot_cells``.
   Also timed (informative): the cold aggregation after a data change (``ensure_cells`` after the
   change counter moved) and each figure end-to-end through the CLI in a fresh process.

Target (benchmarks/checks.py; exit 1 when missed): the cached figure data at least TARGET x
faster than the join.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from checks import Ratio, best_of, finish

OUT = Path(__file__).resolve().parent / "out"
TARGET = 10.0   # join without the cache / figure data from the cache


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default=None, help="database (default: benchmarks/out/plots_s{seeds}_n{size}.db)")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--set-size", type=int, default=5000)
    ap.add_argument("--quick", action="store_true", help="2 seeds x 300, no CLI figures")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default=None, help="where the CLI writes figures (default: a temporary folder)")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.set_size = 2, 300

    from vlmdyn_cli.plots import aggregate as A
    from vlmdyn_cli.progress import PlainReporter
    from vlmdyn_cli.store import open_db
    from vlmdyn_cli.testing.synthdb import fill_synthetic

    path = Path(args.db) if args.db else OUT / f"plots_s{args.seeds}_n{args.set_size}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    result: dict = {"load_avg_start": os.getloadavg()[0]}
    db = open_db(path)
    if not db.execute("SELECT 1 FROM datasets WHERE name = 'synth'").fetchone():
        t = time.monotonic()
        summary = fill_synthetic(db, seeds=args.seeds, set_size=args.set_size, reporter=PlainReporter(interval=15))
        result["fill_s"] = round(time.monotonic() - t, 1)
        result["fill"] = {k: summary[k] for k in ("qa_pairs", "generations", "judgements", "unscored")}
    counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("generations", "judgements")}
    sel = A.selection(db)

    def without_cache():
        return sum(len(A.compute_cells(db, sel.judge.hash, r.id)) for r in sel.runs)

    def from_cache():  # what the frontiers figure reads once the cells are up to date
        A.ensure_cells(db, sel)
        A.seed_stats(db, sel, ["s.name"], "s.kind = 'seen'", cells_ready=True)
        A.seed_stats(db, sel, ["'validation'"], A.VALIDATION, cells_ready=True)
        A.seed_stats(db, sel, ["'training'"], A.SEEN_AT_STEP, best_of="s.name", cells_ready=True)

    with db.conn:
        db.execute("UPDATE plot_data_version SET n = n + 1")
    t = time.monotonic()
    A.ensure_cells(db, sel)                      # cold: after any change, once
    result["cold_cells_s"] = round(time.monotonic() - t, 2)
    best = best_of({"baseline": without_cache, "ours": from_cache}, args.reps)
    result.update(rows=counts, runs=len(sel.runs), no_cache_join_s=round(best["baseline"], 3),
                  cached_figure_data_s=round(best["ours"], 4))
    db.close()

    figs = {}
    if not args.quick:
        out = args.out or tempfile.mkdtemp(prefix="vlmdyn-bench-figures-")
        for name in ("frontiers", "categories", "seen-sets", "subcategories", "dedup", "loss"):
            t = time.monotonic()
            p = subprocess.run([sys.executable, "-m", "vlmdyn_cli", "plot", name, "--db", str(path), "--out", out,
                                "-q"], capture_output=True, text=True)
            figs[name] = round(time.monotonic() - t, 2)
            if p.returncode != 0:
                print(p.stderr, file=sys.stderr)
                raise SystemExit(f"plot {name} failed with exit {p.returncode}")
    result["figure_s_warm_cli"] = figs
    result["load_avg_end"] = os.getloadavg()[0]
    print(f"rows: {counts}, {len(sel.runs)} runs; load avg {result['load_avg_start']:.1f} -> {result['load_avg_end']:.1f}")
    if "fill_s" in result:
        print(f"fill: {result['fill_s']} s")
    print(f"aggregation cold (once after any change): {result['cold_cells_s']} s")
    for name, s in figs.items():
        print(f"  vlmdyn plot {name:<14} {s:6.2f} s (fresh process, warm cache)")
    return finish("bench_plots", [Ratio(
        "plots: a figure's data from the cache vs the join without it", best["ours"], best["baseline"], "s",
        TARGET, note=f"{counts['generations']:,} generations, {len(sel.runs)} runs; cold aggregation "
                     f"{result['cold_cells_s']} s")], result)


if __name__ == "__main__":
    sys.exit(main())
