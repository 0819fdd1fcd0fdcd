"""Benchmark: N `vlmdyn infer --shard i/N` processes at once on one database, against the same N one
after another, and against N node databases merged back; one process answering everything for scale.

All modes answer the same trained tiny run, side by side in one invocation, each on its own copy:

  single      vlmdyn infer --run R                         one process (for scale)
  sequential  vlmdyn infer --run R --shard i/N, i = 0..N-1, one after another   (the baseline)
  at once     the same N processes started together on one database (their writes queue)
  nodes       N x vlmdyn db export; the N shards at once, one file each; vlmdyn db merge

Setup (once, kept in benchmarks/out/shards/ and reused): `data synth`, `data import`, `train`
(the built-in tiny config, one epoch, the paper's checkpoint fractions plus step 0),
`sets build`. Every mode must end with exactly the single process's generations, compared row by
row by content (run, step, QA pair, answer, hashes); the script exits 1 otherwise. Reports wall
and CPU seconds per mode (process start to last row: imports and model loads included), the
export and merge alone; writes benchmarks/out/bench_shards.json.

Targets (ratios, exit 1 when missed):
- at once, the shards spend at most 5% of their generate-and-store time on the database: waiting
  for the write lock other shards hold, and inserting (``infer_timings.db_seconds`` over
  ``seconds + db_seconds`` of every batch): one SQLite file is not what limits N processes;
- export plus merge add at most 25% to the wall time of the shards at once.
Wall times of single / sequential / at once are reported, not targeted: on this machine every
session's processes share one allotment of 2 saturated cores, so N processes at once get no more
CPU than one (measured: at once ~ sequential), and a tiny model's work is small next to each
process's fixed cost (importing torch, loading every checkpoint); separate GPUs pay those in
parallel.

    .venv/bin/python benchmarks/bench_shards.py                    # 600 images, sets of 60
    .venv/bin/python benchmarks/bench_shards.py --images 2000 --set-size 250
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checks import Must, finish  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
BIN = Path(sys.executable).parent / "vlmdyn"


def vlmdyn(*args, wait=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([str(BIN), *map(str, args)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    if not wait:
        return p
    _check(p)


def _check(p):
    err = p.communicate()[1]
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(p.args)}\n{err}")


def setup(root: Path, images: int, set_size: int) -> tuple[Path, str]:
    base = root / "base.db"
    meta = root / "base.json"
    from vlmdyn_cli.store.db import up_to_date

    if up_to_date(base) and meta.exists() and json.loads(meta.read_text()) == {"images": images, "set_size": set_size}:
        return base, "tiny-s0"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    t0 = time.monotonic()
    vlmdyn("data", "synth", "--out", root / "synth", "--images", images, "--seed", 0, "--workers", 1)
    vlmdyn("data", "import", root / "synth" / "llava.json", "--images", root / "synth" / "images", "--db", base, "-q")
    vlmdyn("data", "categorize", "--db", base, "-q")
    vlmdyn("train", "--db", base, "--seed", 0, "--run", "tiny-s0", "--out-dir", root / "runs",
           "--set", "checkpoints.include_step_0=true", "-q")
    vlmdyn("sets", "build", "--db", base, "--run", "tiny-s0", "--seen-size", set_size, "--unseen-size", set_size,
           "--dedup", "all", "-q")
    con = sqlite3.connect(base)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    meta.write_text(json.dumps({"images": images, "set_size": set_size}))
    print(f"setup: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return base, "tiny-s0"


def rows(path: Path) -> list[tuple]:
    from vlmdyn_cli.store.identity import generations_by_content

    with closing(sqlite3.connect(path)) as con:
        return generations_by_content(con)


def db_share(path: Path) -> float:
    con = sqlite3.connect(path)
    try:
        gen, dbs = con.execute("SELECT sum(seconds), sum(db_seconds) FROM infer_timings WHERE kind = 'batch'").fetchone()
    finally:
        con.close()
    return dbs / (gen + dbs)


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(result: dict, name: str, fn) -> None:
    t0, c0 = time.monotonic(), cpu_s()
    fn()
    result[f"{name}_s"] = round(time.monotonic() - t0, 2)
    result[f"{name}_cpu_s"] = round(cpu_s() - c0, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--set-size", type=int, default=60)
    ap.add_argument("--shards", type=int, default=3)
    args = ap.parse_args()
    root = OUT / "shards"
    base, run = setup(root, args.images, args.set_size)
    gen = ["--run", run, "--batch-size", "64", "--max-new-tokens", "48", "--device", "cpu", "-q"]
    n = args.shards
    work = root / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    dbs = {m: work / f"{m}.db" for m in ("single", "sequential", "at_once", "nodes")}
    for p in dbs.values():
        shutil.copy(base, p)
    nodes = [work / f"node{i}.db" for i in range(n)]
    result: dict = {"images": args.images, "set_size": args.set_size, "shards": n, "load_avg_before": os.getloadavg()}

    def at_once(files):
        for p in [vlmdyn("infer", "--db", f, *gen, "--shard", f"{i}/{n}", wait=False) for i, f in enumerate(files)]:
            _check(p)

    def export_nodes():
        for node in nodes:
            vlmdyn("db", "export", "--db", dbs["nodes"], "--run", run, "--out", node, "-q")

    timed(result, "single", lambda: vlmdyn("infer", "--db", dbs["single"], *gen))
    timed(result, "sequential", lambda: [vlmdyn("infer", "--db", dbs["sequential"], *gen, "--shard", f"{i}/{n}")
                                         for i in range(n)])
    timed(result, "at_once", lambda: at_once([dbs["at_once"]] * n))
    timed(result, "export", export_nodes)
    timed(result, "node_shards", lambda: at_once(nodes))
    timed(result, "merge", lambda: vlmdyn("db", "merge", *nodes, "--into", dbs["nodes"], "-q"))
    result["nodes_s"] = round(result["export_s"] + result["node_shards_s"] + result["merge_s"], 2)
    result["load_avg_after"] = os.getloadavg()

    want = rows(dbs["single"])
    result["generations"] = len(want)
    same = {m: rows(dbs[m]) == want for m in ("sequential", "at_once", "nodes")}
    result["same_rows"] = same
    result["db_share_at_once"] = round(db_share(dbs["at_once"]), 4)
    result["db_share_sequential"] = round(db_share(dbs["sequential"]), 4)
    result["transfer_vs_at_once"] = round((result["export_s"] + result["merge_s"]) / result["at_once_s"], 3)
    result["at_once_vs_sequential"] = round(result["at_once_s"] / result["sequential_s"], 3)
    result["at_once_vs_single"] = round(result["at_once_s"] / result["single_s"], 3)
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_shards.json").write_text(json.dumps(result, indent=2))
    print(f"{len(want)} generations, wall (CPU) seconds: single {result['single_s']} ({result['single_cpu_s']}); "
          f"{n} shards one after another {result['sequential_s']} ({result['sequential_cpu_s']}); at once "
          f"{result['at_once_s']} ({result['at_once_cpu_s']}); {n} nodes {result['nodes_s']} (export "
          f"{result['export_s']}, shards {result['node_shards_s']}, merge {result['merge_s']}); load avg "
          f"{result['load_avg_before'][0]:.1f} -> {result['load_avg_after'][0]:.1f}")
    print(f"database share of the shards' time at once {result['db_share_at_once']} (target <= 0.05; one after "
          f"another {result['db_share_sequential']}); (export + merge) / shards at once "
          f"{result['transfer_vs_at_once']} (target <= 0.25); reported only: at once / sequential "
          f"{result['at_once_vs_sequential']}, at once / single {result['at_once_vs_single']}")
    return finish("bench_shards", [
        Must("sharded inference: rows equal the single process's (one after another, at once, 3 nodes)",
             all(same.values()), str(same), "all equal"),
        Must("sharded inference: database share of the shards' time at once", result["db_share_at_once"] <= 0.05,
             f"{result['db_share_at_once']:.2%}", "<= 5%"),
        Must("sharded inference: (export + merge) / shards at once", result["transfer_vs_at_once"] <= 0.25,
             f"{result['transfer_vs_at_once']:.3f}", "<= 0.25"),
    ], result)

if __name__ == "__main__":
    sys.exit(main())
