"""Judgement storage: the content-addressed cache and batched writes.

(b) cache   10,000 triples judged once with a counting backend (the first run),
            then the same judge again. Target: 0 backend calls, and the rerun at
            least 20x faster than the first run (side by side in one run).
(c) writes  1,000,000 judgement rows through the runner's write path (the same
            row builder and store.upsert, FLUSH_ROWS rows per transaction), rows/s
            reported; baseline in the same run: one transaction per row (autocommit)
            on a sample of 20,000 rows, half before and half after the batched run (the
            faster half counts). Target: batched at least 3x the baseline's rows/s.

Targets are stated and checked with benchmarks/checks.py; exits 1 when one is missed.

    .venv/bin/python benchmarks/bench_judge_store.py [--cache-items 10000] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from checks import Must, Ratio, finish  # noqa: E402


def bench_cache(n: int, tmp: Path) -> dict:
    import helpers_judging as hj

    from vlmdyn_cli.judging import backends
    from vlmdyn_cli.judging.run import judge_triples
    from vlmdyn_cli.judging.spec import load_spec
    from vlmdyn_cli.store import open_db
    from vlmdyn_cli.store.db import upsert_triples

    backends.BACKENDS["scripted"] = "helpers_judging:ScriptedBackend"
    spec = load_spec(hj.write_spec(tmp))
    db = open_db(tmp / "cache.db")
    with db.atomic():
        hashes = upsert_triples(db, [(f"question {i}?", f"answer {i}", f"prediction {i}") for i in range(n)])
    t0 = time.perf_counter()
    first = judge_triples(db, spec, hashes)
    t_first = time.perf_counter() - t0
    calls_first = hj.ScriptedBackend.calls
    t0 = time.perf_counter()
    again = judge_triples(db, spec, hashes)
    t_again = time.perf_counter() - t0
    out = {"items": n, "first_run_s": t_first, "first_run_backend_calls": calls_first,
           "rerun_s": t_again, "rerun_backend_calls": hj.ScriptedBackend.calls - calls_first,
           "rerun_cached": again.cached, "first_scored": first.scored}
    db.close()
    return out


def bench_writes(n_rows: int, tmp: Path, baseline_rows: int = 20_000) -> dict:
    from vlmdyn_cli.judging.run import FLUSH_ROWS, row_of
    from vlmdyn_cli.judging.spec import load_spec
    from vlmdyn_cli.judging.verdict import Completion, from_completion
    from vlmdyn_cli.store import judgements as store
    from vlmdyn_cli.store import open_db
    from vlmdyn_cli.store.db import now

    spec = load_spec("gpt-4o-mini")
    text = "{'p': 'yes', 'MS': 5, 'MD': 4, 'H': 3}"
    ts = now()

    def rows(start, count):   # what a free-text backend hands the runner, then the runner's row
        for i in range(start, start + count):
            c = Completion(f"{i:064x}", text=text, p_yes=0.9, prompt_tokens=520, completion_tokens=18,
                           cost_usd=8.9e-5, resolved_model="gpt-4o-mini-2024-07-18", latency_s=0.4)
            yield row_of(spec, from_completion(spec, c), ts)

    def one_by_one(path, start, count):
        db = open_db(path)
        t0, c0 = time.perf_counter(), time.process_time()
        for row in rows(start, count):
            db.conn.execute(store.UPSERT_SQL, [getattr(row, c) for c in store.COLUMNS])   # one transaction per row
        out = time.perf_counter() - t0, time.process_time() - c0
        db.close()
        return out

    # the baseline's sample in two halves, before and after the batched run (the faster half counts)
    half = baseline_rows // 2
    before = one_by_one(tmp / "baseline.db", 0, half)
    db = open_db(tmp / "writes.db")
    t0, c0 = time.perf_counter(), time.process_time()
    buf = []
    for row in rows(0, n_rows):
        buf.append(row)
        if len(buf) >= FLUSH_ROWS:
            store.upsert(db, buf)
            buf.clear()
    if buf:
        store.upsert(db, buf)
    t_batched, cpu_batched = time.perf_counter() - t0, time.process_time() - c0
    n_stored = db.conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]
    db.close()
    after = one_by_one(tmp / "baseline.db", half, half)
    t_base, cpu_base = min(before, after)
    baseline_rows = half
    return {"rows": n_rows, "rows_stored": n_stored, "flush_rows": FLUSH_ROWS, "batched_s": t_batched,
            "batched_rows_per_s": n_rows / t_batched,
            "batched_cpu_s": cpu_batched, "baseline_rows": baseline_rows, "baseline_s": t_base,
            "baseline_rows_per_s": baseline_rows / t_base,
            "batched_rows_per_cpu_s": n_rows / cpu_batched, "baseline_rows_per_cpu_s": baseline_rows / cpu_base,
            "speedup": (n_rows / t_batched) / (baseline_rows / t_base)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache-items", type=int, default=10_000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--out", default=str(Path(__file__).parent / "out" / "bench_judge_store.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cache = bench_cache(args.cache_items, tmp)
        print(f"cache: first run {cache['first_run_s']:.2f} s ({cache['first_run_backend_calls']} backend calls); "
              f"rerun {cache['rerun_s']:.3f} s, {cache['rerun_backend_calls']} backend calls (aim 0, < 2 s)", flush=True)
        writes = bench_writes(args.rows, tmp)
        print(f"writes: {writes['rows']:,} rows in {writes['batched_s']:.1f} s = {writes['batched_rows_per_s']:,.0f} rows/s "
              f"(aim < 60 s; {writes['batched_cpu_s']:.1f} s of it CPU); baseline one-transaction-per-row {writes['baseline_rows_per_s']:,.0f} rows/s "
              f"-> {writes['speedup']:.0f}x", flush=True)
    report = {"load_average_1min": os.getloadavg()[0], "cache": cache, "writes": writes}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    calls = cache["rerun_backend_calls"]
    return finish("bench_judge_store", [
        Must("judgement cache: a second run of the same judge calls the backend 0 times", calls == 0,
             f"{calls} calls", "0 calls"),
        Ratio(f"judgement cache: second run vs first run ({args.cache_items:,} items)", cache["rerun_s"],
              cache["first_run_s"], "s", 20.0),
        Ratio("judgement writes: batched transactions vs one transaction per row", writes["batched_rows_per_s"],
              writes["baseline_rows_per_s"], "rows/s", 3.0, higher_is_better=True,
              note=f"{args.rows:,} rows batched, 2 x {writes['baseline_rows']:,} one by one (before and after); "
                   f"per CPU second {writes['batched_rows_per_cpu_s']:,.0f} vs {writes['baseline_rows_per_cpu_s']:,.0f}"),
    ])


if __name__ == "__main__":
    sys.exit(main())
