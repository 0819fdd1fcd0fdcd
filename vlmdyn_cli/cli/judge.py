"""CLI: `vlmdyn judge` (judge a run's generations or a triples file) and
`vlmdyn judgements list|status|export` (browse what is stored)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vlmdyn_cli.cli.common import (DbOpt, JsonOpt, QuietOpt, ReshardOpt, ShardOpt, emit_json, emit_jsonl, hint,
                                   print_table, say)

judgements_app = typer.Typer(
    name="judgements", no_args_is_help=True,
    help="Browse stored judgements: list, status per judge, export.\n\nExample: vlmdyn judgements status",
)


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v.strip() for val in values for v in val.split(",") if v.strip()]


def judge_cmd(
    judge: Annotated[str, typer.Option("--judge", "-j", help="Judge spec: a built-in name (rules, cascade, local, "
                                       "gemma-local, gpt-4o-mini, gpt-4o-mini-norubric) or a path to a .toml spec.")],
    run: Annotated[Optional[str], typer.Option("--run", help="Judge this run's generations.")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="Judge a JSONL file of "
                     '{"id","question","answer","prediction"} lines (extra fields are kept).')] = None,
    sets: Annotated[Optional[list[str]], typer.Option("--sets", help="Only these eval sets (repeat or comma-separate).")] = None,
    checkpoints: Annotated[Optional[list[str]], typer.Option("--checkpoints", help="Only these checkpoint steps.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=0, help="Judge at most N new items.")] = None,
    max_cost: Annotated[Optional[float], typer.Option("--max-cost", min=0, help="Stop once this many USD are spent.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count new vs cached items and estimate tokens and cost.")] = False,
    rejudge: Annotated[bool, typer.Option("--rejudge", help="Judge again even what is stored.")] = False,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for local backends (default 1).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Override the spec's model (e.g. a GGUF path, "
                     "hf://owner/repo/file.gguf, or an API model id). Makes a new judge hash.")] = None,
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="OpenAI-compatible server (vLLM, llama.cpp "
                        "server, Ollama...). Makes a new judge hash.")] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", min=1, help="Parallel API requests.")] = None,
    batch: Annotated[bool, typer.Option("--batch", help="Use the OpenAI Batch API (half price, resumable).")] = False,
    batch_wait: Annotated[Optional[float], typer.Option("--batch-wait", help="Seconds to wait for a Batch API job "
                          "(0: submit/check once and return).")] = None,
    rows: Annotated[int, typer.Option("--rows", min=0, help="With --input: print the first N results as a "
                                      "table (0: all; --json gives all as JSON lines).")] = 20,
    shard: ShardOpt = None,
    reshard: ReshardOpt = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Judge predictions with a judge spec; every judgement is stored and cached by content.

    Examples:

      vlmdyn judge --run tiny-s0 --judge cascade --sets unseen --checkpoints 357,765

      vlmdyn judge --input triples.jsonl --judge rules --json

      vlmdyn judge --run r1 --judge gpt-4o-mini --dry-run

      vlmdyn judge --run r1 --judge local --model ~/models/qwen2.5-7b-instruct-q4_k_m.gguf --threads 2

      vlmdyn judge --run r1 --judge local --model judge.gguf --shard 2/4   (4 processes, one run)

    With --shard i/N the process judges only its shard of the run's triples (by triple
    hash): N processes judge one run side by side without overlap.
    """
    from vlmdyn_cli.errors import BadInput
    from vlmdyn_cli.judging.spec import load_spec
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store import open_db

    from vlmdyn_cli.sharding import parse_shard

    if (run is None) == (input is None):
        raise BadInput("give exactly one of --run RUN or --input FILE.jsonl")
    part = parse_shard(shard)
    if part is not None and run is None:
        raise BadInput("--shard splits a run's generations (--run); split an --input file instead")
    if reshard and part is None:
        raise BadInput("--reshard only goes with --shard i/N")
    spec = load_spec(judge)
    spec = spec.with_overrides(model=model, options={"base_url": base_url} if base_url else None)
    if not dry_run:
        from vlmdyn_cli.judging.backends import check_installed

        check_installed(spec)     # e.g. a llama.cpp judge without the `local` extra: exit 2 before the database
    steps = None
    if checkpoints:
        try:
            steps = [int(s) for s in _split(checkpoints)]
        except ValueError as exc:
            raise BadInput(f"--checkpoints takes step numbers, e.g. 357,765 ({exc})") from exc
    options = {"concurrency": concurrency, "batch": batch or None, "n_threads": threads,
               "batch_wait": batch_wait}
    kw = dict(rejudge=rejudge, limit=limit, max_cost=max_cost, dry_run=dry_run,
              backend_options={k: v for k, v in options.items() if v is not None})
    reporter = cli_reporter(quiet)
    d = open_db(db, must_exist=run is not None)
    try:
        if run is not None:
            from vlmdyn_cli.judging.run import judge_run

            summary = judge_run(d, run, spec, sets=_split(sets), checkpoints=steps, reporter=reporter, shard=part,
                                reshard=reshard, **kw)
            results = None
        else:
            from vlmdyn_cli.judging.triples_file import judge_file

            summary, results = judge_file(d, input, spec, reporter, **kw)
    finally:
        d.close()
    _report(summary, results, json_out, rows)
    if summary.failure:
        from vlmdyn_cli.errors import Failure

        raise Failure(summary.failure)


def _report(summary, results, json_out: bool, n_rows: int = 20) -> None:
    s = summary.as_dict()
    if json_out:
        if results is not None and not summary.dry_run:
            for r in results:
                emit_jsonl(r)
        else:
            emit_json(s)
        if results is not None and not summary.dry_run:
            hint(_summary_line(s))
            for n in s["notes"]:   # e.g. Batch API jobs still in flight (judging-api)
                hint(n)
        return
    if summary.dry_run:
        cost = "unknown (no price for this model)" if s["est_cost_usd"] is None else f"${s['est_cost_usd']:.4f}"
        say(f"judge {s['judge']} ({s['spec_hash'][:12]}): {s['total']} items, {s['cached']} cached, "
              f"{s['new']} new")
        say(f"estimated tokens: {s['est_prompt_tokens']} prompt + {s['est_completion_tokens']} completion; "
              f"estimated cost: {cost}")
        for n in s["notes"]:
            say(n)
        return
    if results is not None:
        shown = results if n_rows == 0 else results[:n_rows]
        print_table([{k: r.get(k) for k in ("id", "verdict", "status", "decided_by", "reason")} for r in shown])
        if len(shown) < len(results):
            say(f"... {len(results) - len(shown)} more results not shown (--rows 0 shows all, --json gives "
                f"JSON lines; stored: `vlmdyn judgements list`)")
    say(_summary_line(s))
    for n in s["notes"]:
        say(n)


def _summary_line(s: dict) -> str:
    line = (f"judge {s['judge']}: {s['total']} items, {s['cached']} cached, {s['new']} judged now "
            f"({s['scored']} scored: {s['yes']} yes / {s['no']} no, {s['unscored']} unscored), "
            f"cost ${s['cost_usd']:.4f}, {s['elapsed_s']:.1f} s")
    if s["unscored_reasons"]:
        line += "; unscored: " + ", ".join(f"{k} {n}" for k, n in sorted(s["unscored_reasons"].items(),
                                                                          key=lambda kv: -kv[1]))
    if s["retries"] or s["throttled"]:
        line += f"; {s['retries']} retries, {s['throttled']} answers 429 (rate limited)"
    if s["stopped"]:
        line += f"; stopped: {s['stopped']}"
    return line


@judgements_app.command("list")
def list_cmd(
    n: Annotated[int, typer.Option("-n", help="Show the newest N (0 for all).")] = 20,
    judge: Annotated[Optional[str], typer.Option("--judge", help="Only this judge (spec name).")] = None,
    verdict: Annotated[Optional[str], typer.Option("--verdict", help="yes or no.")] = None,
    status: Annotated[Optional[str], typer.Option("--status", help="scored or unscored.")] = None,
    query: Annotated[Optional[str], typer.Option("-q", "--query", help="Full-text search in question, answer, prediction.")] = None,
    min_score: Annotated[Optional[float], typer.Option("--min-score", help="Only rubric scores (mean of MS, MD, H; "
                         "1-5) at least this.")] = None,
    max_score: Annotated[Optional[float], typer.Option("--max-score", help="Only rubric scores at most this.")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="Only the triples of this judged input "
                     "file (`judge --input FILE`): recorded under this path or with this file's content.")] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
):
    """List stored judgements, newest first.

    Examples:

      vlmdyn judgements list -n 10 --judge cascade --status unscored -q "book author"

      vlmdyn judgements list --judge gpt-4o-mini --verdict yes --max-score 3

      vlmdyn judgements list --input triples.jsonl --status unscored
    """
    from vlmdyn_cli.errors import BadInput
    from vlmdyn_cli.store import input_files, open_db
    from vlmdyn_cli.store.judgement_queries import iter_judgements

    if n < 0:
        raise BadInput(f"-n must be 0 (all) or more, got {n}")
    d = open_db(db, readonly=True)
    try:
        files = None if input is None else input_files.match_files(d.conn, input)
        _known_judge(d, judge)
        rows = list(iter_judgements(d, judge=judge, verdict=verdict, status=status, search=query, limit=n or None,
                                    min_score=min_score, max_score=max_score, input_files=files))
    finally:
        d.close()
    if json_out:
        emit_json(rows)
        return
    def short(v):
        return _clip(v, 60)

    print_table([{"id": r["id"], "judge": r["judge_name"], "verdict": r["verdict"] or r["status"],
                  "question": short(r["question"]), "answer": short(r["answer"]),
                  "prediction": short(r["prediction"]), "by": r["decided_by"],
                  "score": None if r["rubric_score"] is None else f"{r['rubric_score']:.2f}",
                  "reason": short(r["reason"])}
                 for r in rows])


@judgements_app.command("status")
def status_cmd(db: DbOpt = None, json_out: JsonOpt = False, quiet: QuietOpt = False):
    """Per judge: counts, accuracy over scored items (unscored excluded and counted), cost, mean latency.

    Example: vlmdyn judgements status --json
    """
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store import open_db
    from vlmdyn_cli.store.judgement_queries import judge_status

    d = open_db(db, readonly=True)
    try:
        rows = judge_status(d, reporter=cli_reporter(quiet))
    finally:
        d.close()
    if json_out:
        emit_json(rows)
        return
    print_table([{"judge": r["judge"], "spec": r["spec_hash"][:12], "n": r["n"], "scored": r["scored"],
                  "unscored (excluded)": r["unscored"], "yes": r["yes"], "no": r["no"],
                  "accuracy": None if r["accuracy"] is None else f"{100 * r['accuracy']:.1f}%",
                  "decided by": ", ".join(f"{k} {v}" for k, v in r["decided_by"].items()
                                          if len(r["decided_by"]) > 1 or k != r["judge"]) or None,
                  "cost $": r["cost_usd"], "mean latency s": r["mean_latency_s"],
                  "model": _clip(r["resolved_models"], 40)} for r in rows])


def _known_judge(d, judge: str | None) -> None:
    """``--judge NAME`` names a judge of this database or a built-in one (which may have judged
    nothing yet); anything else is a typo: BadInput naming the judges there are."""
    from vlmdyn_cli.errors import BadInput, did_you_mean
    from vlmdyn_cli.judging.spec import builtin_names
    from vlmdyn_cli.store.judgement_queries import judge_names

    names = judge_names(d)
    if judge is None or judge in names or judge in builtin_names():
        return
    raise BadInput(f"--judge {judge!r}: no judgements by this judge{did_you_mean(judge, names)}; judges in this "
                   f"database: {', '.join(names) or 'none yet (run `vlmdyn judge`)'}")


def _clip(v, n: int):
    return v if v is None or len(str(v)) <= n else str(v)[:n - 3] + "..."


@judgements_app.command("export")
def export_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file.")],
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "jsonl",
    judge: Annotated[Optional[str], typer.Option("--judge", help="Only this judge (spec name).")] = None,
    db: DbOpt = None,
    quiet: QuietOpt = False,
):
    """Export judgements (with their question, answer and prediction) to CSV or JSONL.

    Example: vlmdyn judgements export --format csv --out judgements.csv --judge gpt-4o-mini
    """
    import csv
    import json

    from vlmdyn_cli.atomic import check_output, replaced
    from vlmdyn_cli.errors import BadInput
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store import open_db
    from vlmdyn_cli.store.judgement_queries import ROW_COLUMNS, count_judgements, iter_judgements

    if fmt not in ("csv", "jsonl"):
        raise BadInput(f"--format must be csv or jsonl, not {fmt!r}")
    check_output(out, "--out")
    d = open_db(db, readonly=True)
    try:
        _known_judge(d, judge)
        total = count_judgements(d, judge=judge)
        n = 0
        with cli_reporter(quiet).task(f"export to {out.name}", total=total, unit="rows") as task, \
                replaced(out, "--out") as tmp, tmp.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(ROW_COLUMNS)) if fmt == "csv" else None
            if writer:
                writer.writeheader()
            for row in iter_judgements(d, judge=judge, newest_first=False):
                if writer:
                    writer.writerow(row)
                else:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
                if n % 1000 == 0:
                    task.advance(1000)
            task.advance(n % 1000)
    finally:
        d.close()
    hint(f"wrote {n} judgements to {out}")


def register(app: typer.Typer) -> None:
    app.command("judge")(judge_cmd)
    app.add_typer(judgements_app, name="judgements")
