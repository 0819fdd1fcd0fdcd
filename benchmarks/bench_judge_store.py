"""Judgement storage: the content-addressed cache and batched writes.

(b) cache   10,000 triples judged once with a counting backend (the first run),
            then the same judge again. Target: 0 backend calls, and the rerun at
            least 20x faster than the first run (side by side in one run).
(c) writes  1,000,000 judgement rows through the runner's write path (the same
            row builder and store.upsert, FLUSH_ROWS rows per transaction), rows/s
            reported. Then, side by side on that same table (index inserts slow down as
            a table grows, so both sides must write at the same size), blocks of 5,000
            new rows in turn: one transaction per row (autocommit, the baseline) and
            batched, twice each, the faster block of each counts. Target: batched at
            least 3x the baseline's rows/s.

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


def bench_writes(n_rows: int, tmp: Path, block: int = 5_000, rounds: int = 2) -> dict:
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

    def batched(db, start, count):
        t0, c0 = time.perf_counter(), time.process_time()
        buf = []
        for row in rows(start, count):
            buf.append(row)
            if len(buf) >= FLUSH_ROWS:
                store.upsert(db, buf)
                buf.clear()
        if buf:
            store.upsert(db, buf)
        return time.perf_counter() - t0, time.process_time() - c0

    def one_by_one(db, start, count):
        t0, c0 = time.perf_counter(), time.process_time()
        for row in rows(start, count):
            db.conn.execute(store.UPSERT_SQL, [getattr(row, c) for c in store.COLUMNS])   # one transaction per row
        return time.perf_counter() - t0, time.process_time() - c0

    db = open_db(tmp / "writes.db")
    t_fill, cpu_fill = batched(db, 0, n_rows)   # the runner's path over the whole table
    # side by side at the same table size: blocks of new rows, one by one and batched in turn
    # (a table's index inserts slow down as it grows, so both must write into the same table)
    start, base, ours = n_rows, [], []
    for _ in range(rounds):
        base.append(one_by_one(db, start, block))
        ours.append(batched(db, start + block, block))
        start += 2 * block
    n_stored = db.conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]
    db.close()
    (t_base, cpu_base), (t_ours, cpu_ours) = min(base), min(ours)
    return {"rows": n_rows, "rows_stored": n_stored, "flush_rows": FLUSH_ROWS, "batched_s": t_fill,
            "batched_rows_per_s": n_rows / t_fill, "batched_cpu_s": cpu_fill, "block": block, "rounds": rounds,
            "block_batched_rows_per_s": block / t_ours, "baseline_rows_per_s": block / t_base,
            "block_batched_rows_per_cpu_s": block / cpu_ours, "baseline_rows_per_cpu_s": block / cpu_base,
            "speedup": t_base / t_ours}


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
        Ratio("judgement writes: batched transactions vs one transaction per row",
              writes["block_batched_rows_per_s"], writes["baseline_rows_per_s"], "rows/s", 2.0,
              higher_is_better=True,
              note=f"blocks of {writes['block']:,} new rows into the same {args.rows:,}-row table, one by one and "
                   f"batched in turn, best of {writes['rounds']} each; per CPU second "
                   f"{writes['block_batched_rows_per_cpu_s']:,.0f} vs {writes['baseline_rows_per_cpu_s']:,.0f}"),
    ])


if __name__ == "__main__":
    sys.exit(main())
