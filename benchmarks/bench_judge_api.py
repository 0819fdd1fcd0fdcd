"""Benchmark: API-judge throughput at concurrency 8 vs 1 against a slow, rate-limited server.

Concurrency pays off when the remote API's latency dominates. The loopback server
(tests/servers/fake_openai.py, a real HTTP server on 127.0.0.1) adds a fixed latency
to every chat completion (default 300 ms, typical of gpt-4o-mini) and enforces a
requests-per-minute limit with a token bucket, answering 429 with Retry-After /
retry-after-ms when it is exceeded. Both configurations judge the same number of
fresh items through the real runner (spec -> prompt -> openai backend over the
official SDK -> parser -> SQLite), side by side in one run:

  baseline   --concurrency 1
  new        --concurrency 8

Reported per configuration: items, wall seconds, items/s, 429 answers received,
items lost (no scored row: must be 0), the most requests the server saw in flight.
Printed as a table and written to benchmarks/out/bench_judge_api.json.

Target: concurrency 8 at least 6x the items/s of concurrency 1, and no item lost; exits 1
when missed.

    .venv/bin/python benchmarks/bench_judge_api.py                  # 80 items, 300 ms, 1200 rpm
    .venv/bin/python benchmarks/bench_judge_api.py --items 40 --rpm 1500 --burst 8
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT / "tests"))   # the loopback servers live with the tests


def run_one(concurrency: int, n_items: int, latency: float, rpm: float, burst: float, tag: str) -> dict:
    from servers.fake_openai import FakeOpenAI
    from servers.openai_specs import write_spec

    from vlmdyn_cli.judging.run import judge_triples
    from vlmdyn_cli.judging.spec import load_spec
    from vlmdyn_cli.store import open_db
    from vlmdyn_cli.store.db import upsert_triples

    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(latency_s=latency, rpm=rpm, burst=burst) as srv:
        tmp_p = Path(tmp)
        spec = load_spec(str(write_spec(tmp_p, f"bench-c{concurrency}", options={
            "base_url": srv.base_url, "concurrency": concurrency, "max_retries": 6})))
        db = open_db(tmp_p / "bench.db")
        rows = [(f"[{tag}] What is in picture {i}?", "a red bus", f"a bus, item {i}") for i in range(n_items)]
        with db.atomic():
            hashes = upsert_triples(db, rows)
        t0 = time.perf_counter()
        summary = judge_triples(db, spec, hashes)
        wall = time.perf_counter() - t0
        scored = db.execute("SELECT COUNT(*) FROM judgements WHERE spec_hash = ? AND status = 'scored'",
                            [spec.hash]).fetchone()[0]
        db.close()
        return {
            "concurrency": concurrency, "items": n_items, "wall_s": round(wall, 3),
            "items_per_s": round(n_items / wall, 3), "http_429": srv.counts.get("429", 0),
            "requests": srv.counts.get("requests", 0), "lost": n_items - scored,
            "unscored": summary.unscored, "max_in_flight": srv.max_in_flight,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=80)
    ap.add_argument("--latency", type=float, default=0.3, help="seconds added to every request")
    ap.add_argument("--rpm", type=float, default=1200, help="server's requests-per-minute limit")
    ap.add_argument("--burst", type=float, default=4, help="token-bucket burst of the limit")
    args = ap.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-real-key")

    results = [run_one(c, args.items, args.latency, args.rpm, args.burst, f"c{c}") for c in (1, 8)]
    base, new = results
    speedup = new["items_per_s"] / base["items_per_s"]
    cols = ("concurrency", "items", "wall_s", "items_per_s", "http_429", "requests", "lost", "max_in_flight")
    print(f"server: {args.latency * 1000:.0f} ms per request, limit {args.rpm:g} rpm (burst {args.burst:g}), "
          f"ideal ceiling {min(8 / args.latency, args.rpm / 60):.1f} items/s at concurrency 8")
    print("  ".join(f"{c:>13}" for c in cols))
    for r in results:
        print("  ".join(f"{r[c]:>13}" for c in cols))
    print(f"throughput concurrency 8 vs 1: {speedup:.2f}x (aim >= 6x); items lost: "
          f"{base['lost'] + new['lost']} (must be 0)")
    OUT.mkdir(parents=True, exist_ok=True)
    record = {"args": vars(args), "results": results, "speedup_8_vs_1": round(speedup, 3),
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (OUT / "bench_judge_api.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {OUT / 'bench_judge_api.json'}")
    misses = [m for m, bad in ((f"speed-up {speedup:.2f}x (target >= 6x)", speedup < 6),
                               (f"{base['lost'] + new['lost']} items lost (target 0)", base["lost"] + new["lost"]))
              if bad]
    for m in misses:
        print(f"MISSED: {m}")
    sys.exit(1 if misses else 0)


if __name__ == "__main__":
    main()
