"""How fast the TUI's judgements browser pages a big judged input file (issue 17, item 8).

Builds (and caches in benchmarks/out/) a database with one triples file of ROWS lines judged by
two judges through the real path (`judge_file`: the file and its lines recorded, every line
judged by a scripted backend: judge-a and judge-b disagree on about a third of the lines, 1% are
unscored), then times the first page and the next page of every filter the browser offers on an
input file (judge, verdict, status, disagree, text rare / mid / common, and combinations,
including one that matches nothing: the whole file is walked), and the capped count.

Target (a ratio, side by side in one run): no page costs more than 1.5 passes over the file
(the baseline is one pass: counting every (line, judgement) row of the file), i.e. a page is
bounded by the file's length whatever the filters. Each page is checked against a plain SQL
join of the same rows (Must).

    .venv/bin/python benchmarks/bench_tui_inputs.py [--rows 100000] [--reps 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from checks import Must, Ratio, finish  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
WORDS = ["harbour", "lantern", "meadow"]   # besides "zebra" (1 line in 10,000) and "violin" (1 in 50)


def line(i: int) -> dict:
    topic = "zebra" if i % 10_000 == 7 else "violin" if i % 50 == 3 else WORDS[i % 3]
    return {"id": f"item-{i}", "question": f"Question {i} about the {topic}?", "answer": f"answer {i % 13}",
            "prediction": f"prediction {i % 11}"}


def answer_a(item) -> str:
    i = int(item.question.split()[1])
    return "not a verdict" if i % 100 == 42 else ("{'p': 'yes'}" if i % 3 else "{'p': 'no'}")


def answer_b(item) -> str:
    i = int(item.question.split()[1])
    return "{'p': 'yes'}" if i % 5 else "{'p': 'no'}"


def build(path: Path, rows: int) -> Path:
    import helpers_judging as hj

    from vlmdyn_cli.judging import backends
    from vlmdyn_cli.judging.spec import load_spec
    from vlmdyn_cli.judging.triples_file import judge_file
    from vlmdyn_cli.store import open_db

    tmp = Path(tempfile.mkdtemp())
    f = tmp / f"triples-{rows}.jsonl"
    f.write_text("".join(json.dumps(line(i)) + "\n" for i in range(rows)), encoding="utf-8")
    backends.BACKENDS["scripted"] = "helpers_judging:ScriptedBackend"
    part = path.with_name(path.name + ".part")
    part.unlink(missing_ok=True)
    db = open_db(part)
    try:
        for name, fn in (("judge-a", answer_a), ("judge-b", answer_b)):
            hj.ScriptedBackend.answer = staticmethod(fn)
            judge_file(db, f, load_spec(hj.write_spec(tmp, name=name, output="verdict-dict")))
        db.conn.execute("ANALYZE")
        db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    part.replace(path)
    return path


def cases():
    from vlmdyn_cli.tui.browse import Filters

    src = "file:1"
    return {
        "none": Filters(source=src),
        "judge": Filters(source=src, judge="judge-b"),
        "verdict no": Filters(source=src, verdict="no"),
        "unscored (1%)": Filters(source=src, status="unscored"),
        "disagree": Filters(source=src, disagree=("judge-a", "judge-b")),
        "text rare": Filters(source=src, text="zebra"),
        "text mid": Filters(source=src, text="violin"),
        "text common": Filters(source=src, text="question"),
        "judge+verdict+disagree": Filters(source=src, judge="judge-a", verdict="no", disagree=("judge-a", "judge-b")),
        "unscored+disagree": Filters(source=src, status="unscored", disagree=("judge-a", "judge-b")),
        "nothing (unscored+yes)": Filters(source=src, status="unscored", verdict="yes"),
        "nothing (rare+disagree)": Filters(source=src, text="zebra", disagree=("judge-a", "judge-b"),
                                           judge="judge-b", verdict="no"),
    }


def reference(conn, f, limit: int) -> list[tuple]:
    """The same rows by a plain join (what the filters mean), in page order."""
    from vlmdyn_cli.store.search import fts_query

    conds, params = ["x.file_id = 1"], []
    for sql, v in (("j.judge_name = ?", f.judge), ("j.verdict = ?", f.verdict), ("j.status = ?", f.status),
                   ("x.triple_hash IN (SELECT hash FROM triples WHERE id IN (SELECT rowid FROM triples_fts "
                    "WHERE triples_fts MATCH ?))", fts_query(f.text or ""))):
        if v is not None:
            conds.append(sql)
            params.append(v)
    if f.disagree:
        conds.append("(SELECT count(DISTINCT verdict) FROM judgements k WHERE k.triple_hash = x.triple_hash AND "
                     "k.status = 'scored' AND k.judge_name IN (?, ?)) = 2 AND (SELECT count(DISTINCT judge_name) "
                     "FROM judgements k WHERE k.triple_hash = x.triple_hash AND k.status = 'scored' "
                     "AND k.judge_name IN (?, ?)) = 2")
        params += [*f.disagree, *f.disagree]
    return [tuple(r) for r in conn.execute(
        "SELECT x.line, j.id FROM input_file_rows x JOIN judgements j ON j.triple_hash = x.triple_hash WHERE "
        + " AND ".join(conds) + " ORDER BY x.line, j.id LIMIT ?", params + [limit]).fetchall()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000, help="lines of the judged file")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print the full report as JSON on stdout")
    args = ap.parse_args()

    from vlmdyn_cli.store.db import connect
    from vlmdyn_cli.tui import browse_inputs as I

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"tui_inputs_{args.rows}.db"
    if not path.exists():
        t0 = time.perf_counter()
        build(path, args.rows)
        print(f"built {path.name} ({args.rows:,} lines, 2 judges) in {time.perf_counter() - t0:.0f} s", flush=True)
    conn = connect(path, readonly=True)
    conn.row_factory = sqlite3.Row

    def timed(fn) -> tuple[float, object]:
        t0 = time.perf_counter()
        out = fn()
        return 1000 * (time.perf_counter() - t0), out

    def full_pass():
        return conn.execute("SELECT count(*) FROM input_file_rows x JOIN judgements j ON j.triple_hash = "
                            "x.triple_hash WHERE x.file_id = 1").fetchone()[0]

    passes, report, wrong = [], {}, []
    for _ in range(args.reps):
        passes.append(timed(full_pass)[0])
        for name, f in cases().items():
            first_ms, first = timed(lambda: I.page(conn, f))
            after = first[-1]["key"] if len(first) == I.PAGE_SIZE else None
            next_ms, nxt = timed(lambda: I.page(conn, f, after)) if after else (0.0, [])
            count_ms, count = timed(lambda: I.count(conn, f))
            want = reference(conn, f, 2 * I.PAGE_SIZE)
            if [r["key"] for r in first + nxt] != want[:len(first) + len(nxt)] or len(first) != min(len(want), 100):
                wrong.append(name)
            r = report.setdefault(name, {"first_ms": [], "next_ms": [], "count_ms": [], "rows": len(first),
                                         "count": count.text()})
            r["first_ms"].append(first_ms)
            r["next_ms"].append(next_ms)
            r["count_ms"].append(count_ms)
    pass_ms = statistics.median(passes)
    print(f"{args.rows:,} lines x 2 judges; one pass over the file's rows: {pass_ms:.1f} ms (median of {args.reps})")
    print(f"{'filter':28} {'first page':>11} {'next page':>10} {'count':>9}  rows  count")
    for name, r in report.items():
        print(f"{name:28} {statistics.median(r['first_ms']):9.1f}ms {statistics.median(r['next_ms']):8.1f}ms "
              f"{statistics.median(r['count_ms']):7.1f}ms {r['rows']:5}  {r['count']}")
    slowest = max(max(statistics.median(r["first_ms"]), statistics.median(r["next_ms"])) for r in report.values())
    worst = max(report, key=lambda n: statistics.median(report[n]["first_ms"]))
    checks = [
        Ratio("input-file page: one pass over the file vs the slowest page", slowest, pass_ms, "ms", 1 / 1.5,
              note=f"{args.rows:,} lines x 2 judges; slowest first page: {worst}"),
        Must("input-file pages equal the plain join's rows", not wrong, ", ".join(wrong) or "all equal",
             "every case equal"),
    ]
    if args.json:
        print(json.dumps({"rows": args.rows, "pass_ms": pass_ms, "cases": report}, indent=2))
    return finish("bench_tui_inputs", checks, {"rows": args.rows, "pass_ms": pass_ms, "cases": report})


if __name__ == "__main__":
    sys.exit(main())
