"""Benchmark: every figure on a paper-scale database (8 seeds x 6 checkpoints x 7 sets x 5,000).

    python benchmarks/bench_plots.py [--db /tmp/vlmdyn-bench-plots.db] [--seeds 8] [--set-size 5000]

1. Fills the database with ``store.synthdb.fill_synthetic`` (skipped if the file already holds
   the synthetic dataset; delete it to re-measure the fill).
2. Cold aggregation: bumps the change counter so every run's cells are stale, then times
   ``ensure_cells`` (the one big GROUP BY per run) -- what the first figure after new
   judgements pays. Side by side, the baseline: the same join computed without the cache for
   the figure (what every figure would pay without plot_cells).
3. Each figure end-to-end through the real CLI in a fresh process (`vlmdyn plot NAME`:
   Python start, imports, selection, SQL, matplotlib, PNG written), warm cache.
Prints a table and one JSON line; the numbers go into notes/plots.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="/tmp/vlmdyn-bench-plots.db")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--set-size", type=int, default=5000)
    ap.add_argument("--out", default="/tmp/vlmdyn-bench-figures")
    args = ap.parse_args()

    from vlmdyn_cli.plots import aggregate as A
    from vlmdyn_cli.progress import PlainReporter
    from vlmdyn_cli.store import open_db
    from vlmdyn_cli.store.synthdb import fill_synthetic

    result: dict = {"load_avg_start": os.getloadavg()[0]}
    db = open_db(args.db)
    if not db.execute("SELECT 1 FROM datasets WHERE name = 'synth'").fetchone():
        t = time.monotonic()
        summary = fill_synthetic(db, seeds=args.seeds, set_size=args.set_size, reporter=PlainReporter(interval=15))
        result["fill_s"] = round(time.monotonic() - t, 1)
        result["fill"] = {k: summary[k] for k in ("qa_pairs", "generations", "judgements", "unscored")}
    counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("generations", "judgements")}
    result["rows"] = counts
    result["db_gb"] = round(Path(args.db).stat().st_size / 1e9, 2)
    sel = A.selection(db)

    # side by side, alternating so neither side gets all the warm page cache:
    # baseline = the join without the cache (what every figure would pay), cold = ensure_cells after a change
    base, cold = [], []
    for _ in range(2):
        t = time.monotonic()
        n = sum(len(A.compute_cells(db, sel.judge.hash, r.id)) for r in sel.runs)
        base.append(time.monotonic() - t)
        with db.conn:
            db.execute("UPDATE plot_data_version SET n = n + 1")
        t = time.monotonic()
        A.ensure_cells(db, sel)
        cold.append(time.monotonic() - t)
    result["no_cache_join_s"] = [round(x, 2) for x in base]
    result["cold_cells_s"] = [round(x, 2) for x in cold]
    result["cells"] = n
    db.close()

    figs = {}
    for name in ("frontiers", "categories", "seen-sets", "subcategories", "dedup", "loss"):
        t = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "vlmdyn_cli", "plot", name, "--db", args.db, "--out", args.out, "-q"],
                           capture_output=True, text=True)
        figs[name] = round(time.monotonic() - t, 2)
        if p.returncode != 0:
            print(p.stderr, file=sys.stderr)
            raise SystemExit(f"plot {name} failed with exit {p.returncode}")
    result["figure_s_warm_cli"] = figs
    result["load_avg_end"] = os.getloadavg()[0]
    print(f"rows: {counts}  db {result['db_gb']} GB  load avg {result['load_avg_start']:.1f} -> "
          f"{result['load_avg_end']:.1f}")
    if "fill_s" in result:
        print(f"fill: {result['fill_s']} s")
    print(f"aggregation without cache (baseline, per figure): {result['no_cache_join_s']} s")
    print(f"aggregation cold (once after any change):         {result['cold_cells_s']} s")
    for name, s in figs.items():
        print(f"  vlmdyn plot {name:<14} {s:6.2f} s (fresh process, warm cache)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
