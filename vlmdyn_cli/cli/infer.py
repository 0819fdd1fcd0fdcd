"""CLI: `vlmdyn infer` and `vlmdyn generations list|summary`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from vlmdyn_cli.cli.common import (DbOpt, JsonOpt, QuietOpt, ReshardOpt, RunOpt, ShardOpt, emit_json, hint,
                                   print_table, say, seed_option)

generations_app = typer.Typer(help="Look at stored generations and their string-match accuracy.",
                              no_args_is_help=True)

MetricOpt = Annotated[str, typer.Option(
    "--metric", help="String-match level shown in tables: exact, normalised (lowercase, no "
                     "punctuation/articles, number words as digits) or contains.")]
ByCategoryOpt = Annotated[bool, typer.Option(
    "--by-category", help="Also print one table per category.")]


def _names(text: str, flag: str = "--sets") -> list[str] | None:
    """'all' -> None, else the comma list of set names (an empty list is bad input)."""
    if text.strip().lower() == "all":
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        from vlmdyn_cli.errors import BadInput

        raise BadInput(f"{flag} names no set: give 'all' or a comma list of set names")
    return names


def infer_cmd(
    run: RunOpt,
    checkpoints: Annotated[str, typer.Option(
        "--checkpoints", help="'all' (every saved checkpoint up to the unseen sets' last step, step 0 "
                              "included when saved) or a comma list of steps.")] = "all",
    sets: Annotated[str, typer.Option("--sets", help="'all' or a comma list of set names.")] = "all",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1,
                                            help="Prompts generated together.")] = 16,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1,
                                                help="Longest answer, in tokens.")] = 64,
    backend: Annotated[str, typer.Option("--backend", help="hf (default, CPU or GPU) or vllm (GPU).")] = "hf",
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1...")] = "auto",
    dtype: Annotated[Optional[str], typer.Option(
        "--dtype", help="float32, bfloat16, float16 (default: float32 on CPU, bfloat16 on GPU).")] = None,
    threads: Annotated[int, typer.Option(
        "--threads", min=0, help="CPU threads for torch; 0 = torch's default (all cores). Small "
                                 "models gain nothing from more threads and a busy machine loses a "
                                 "lot, hence 1.")] = 1,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0,
                                               help="0 = greedy (default); > 0 samples.")] = 0.0,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling.")] = 1.0,
    gen_seed: Annotated[int, seed_option("--gen-seed", help="Sampling seed.")] = 0,
    regenerate: Annotated[bool, typer.Option(
        "--regenerate", help="Redo answers stored with a different generation config.")] = False,
    shard: ShardOpt = None,
    reshard: ReshardOpt = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Load no model: print the items left per checkpoint and per shard (N of --shard, "
                          "else 1) and the time each shard needs at the speed measured so far.")] = False,
    summary: Annotated[bool, typer.Option(
        "--summary", help="Print the string-match accuracy table afterwards.")] = False,
    metric: MetricOpt = "normalised",
    by_category: ByCategoryOpt = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Answer every QA pair of the run's evaluation sets at every checkpoint.

    Greedy decoding with the training chat template, batched with left padding and a
    KV cache, one model load per checkpoint; a QA pair in several sets is answered
    once per checkpoint. Each batch is committed on its own: a rerun skips what is
    stored and a kill loses at most the batch in flight.

    With --shard i/N the process answers only its shard of the (checkpoint, QA pair)
    units (a hash of the pair's content and the step, mod N): N processes, one per GPU,
    fill one database side by side without overlap, and any of them can be killed and
    rerun alone. Run `infer --dry-run --shard 0/N` first to see the split and the time.

    Examples:

      vlmdyn infer --run tiny-s0 --batch-size 32 --summary

      vlmdyn infer --run llava7b-s0 --backend vllm --shard 3/8 --device cuda:3
    """
    from vlmdyn_cli.cli.sets import parse_steps
    from vlmdyn_cli.errors import BadInput
    from vlmdyn_cli.evalsets.match import LEVELS
    from vlmdyn_cli.inference.config import GenConfig
    from vlmdyn_cli.inference.runner import InferRequest, dry_run as plan_only, run_inference
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.sharding import parse_shard
    from vlmdyn_cli.store import open_db

    part = parse_shard(shard)
    if reshard and part is None:
        raise BadInput("--reshard only goes with --shard i/N")
    if dtype is not None and dtype not in ("float32", "bfloat16", "float16"):
        raise BadInput(f"--dtype must be float32, bfloat16 or float16, not '{dtype}'")
    if metric not in LEVELS:
        raise BadInput(f"--metric must be one of {', '.join(LEVELS)}, not '{metric}'")
    d = open_db(db, must_exist=True)
    req = InferRequest(run=run, checkpoints=parse_steps(checkpoints), sets=_names(sets), backend=backend,
                       batch_size=batch_size, regenerate=regenerate, device=device, threads=threads,
                       gen=GenConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                     seed=gen_seed), shard=part, reshard=reshard)
    if dry_run:
        _print_dry_run(plan_only(d, req, part.count if part else 1), json_out)
        return
    from vlmdyn_cli.inference.backends import get_backend

    be = get_backend(backend, device=device, dtype=dtype, threads=threads)
    results = run_inference(d, req, cli_reporter(quiet), backend=be)
    rows = _summary_rows(d, run, [r["step"] for r in results], req.sets) if summary else None
    if json_out:
        emit_json({"run": run, "checkpoints": results, "summary": rows,
                   "summary_label": "string match, not a judgement" if summary else None})
        return
    print_table(results, ["step", "generated", "already_done", "items_per_s", "normalised_match"],
                title=f"inference for run {run}" + (f", shard {part}" if part else ""))
    if summary:
        _print_summary(rows, metric, by_category)
    else:
        hint(f"string-match table: vlmdyn generations summary --run {run}")


def _print_dry_run(plan: dict, json_out: bool) -> None:
    from vlmdyn_cli.progress import format_seconds

    if json_out:
        emit_json(plan)
        return
    for note in plan["notes"]:
        hint(note)
    say(f"run {plan['run']}: {plan['pending']} of {plan['total']} (checkpoint, QA pair) units left; "
               f"sets {', '.join(plan['sets'])}")
    print_table(plan["checkpoints"], ["step", "items", "done", "pending", "other_config"])
    rows = [{**r, "time": format_seconds(r["est_seconds"])} for r in plan["per_shard"]]
    print_table(rows, ["shard", "items", "loads", "time"],
                title=f"split {plan['shards']} way{'s' if plan['shards'] > 1 else ''} (loads: checkpoints loaded)")
    speed = plan["speed"]
    if speed is None:
        say("time: unknown, no batch has been measured for this run or model with this backend yet; "
                   "run a little first (e.g. --checkpoints K --sets NAME) and ask again")
    else:
        load = "" if speed["load_s"] is None else f", {speed['load_s']:.1f} s per checkpoint load"
        say(f"speed: {speed['items_per_s']} items/s per process{load} (measured on {speed['measured_on']}); "
                   f"with the shards in parallel: {format_seconds(plan['est_wall_seconds'])}")
    if plan["recorded_split"] not in (None, plan["shards"]):
        say(f"note: this plan was started as a {plan['recorded_split']}-way split; a --shard of another N "
                   f"is refused unless --reshard")


def _summary_rows(d, run: str, steps=None, sets=None) -> list[dict]:
    from vlmdyn_cli.inference.summary import string_match_rows
    from vlmdyn_cli.store.runs import get_run

    return string_match_rows(d, get_run(d, run).id, steps, sets)


def _print_summary(rows: list[dict], metric: str, by_category: bool) -> None:
    from vlmdyn_cli.inference.summary import LABEL, pivot

    if not rows:
        say("(no generations for these sets yet: run `vlmdyn infer`)")
        return
    say(f"{metric} match accuracy in % ({LABEL}); rows: sets, columns: checkpoint "
               f"steps, n: items answered")
    cats = ["all"] + (sorted({r["category"] for r in rows} - {"all"}) if by_category else [])
    for cat in cats:
        cols, table = pivot(rows, metric, cat)
        print_table(table, cols, title=f"category {cat}")


@generations_app.command("summary")
def summary_cmd(
    run: RunOpt,
    steps: Annotated[str, typer.Option("--checkpoints", help="'all' or a comma list of steps.")] = "all",
    sets: Annotated[str, typer.Option("--sets", help="'all' or a comma list of set names.")] = "all",
    metric: MetricOpt = "normalised",
    by_category: ByCategoryOpt = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
):
    """String-match accuracy per (checkpoint, set, category): a quick signal, not a judgement.

    Exact, normalised and contains levels are all in --json; tables show one level
    with sets as rows and checkpoints as columns, so Seen@k before and after step k
    read along a row.

    Example: vlmdyn generations summary --run tiny-s0 --by-category
    """
    from vlmdyn_cli.cli.sets import parse_steps
    from vlmdyn_cli.errors import BadInput
    from vlmdyn_cli.evalsets.match import LEVELS
    from vlmdyn_cli.store import open_db

    if metric not in LEVELS:
        raise BadInput(f"--metric must be one of {', '.join(LEVELS)}, not '{metric}'")
    from vlmdyn_cli.store.runs import checkpoints, get_run

    d = open_db(db, readonly=True)
    r = get_run(d, run)
    names = _names(sets)
    if names is not None:
        from vlmdyn_cli.inference.plan import resolve_sets

        resolve_sets(d, r, names)
    wanted = parse_steps(steps)
    known = sorted(set(checkpoints(d, r.id)) | {k for (k,) in d.execute(
        "SELECT DISTINCT step FROM generations WHERE run_id = ?", [r.id])})
    if wanted is not None and (missing := [k for k in wanted if k not in known]):
        raise BadInput(f"--checkpoints: run '{run}' has no checkpoint or answers at step "
                       f"{', '.join(map(str, missing))}; its steps: {', '.join(map(str, known)) or 'none'}")
    rows = _summary_rows(d, run, wanted, names)
    if json_out:
        emit_json({"run": run, "label": "string match, not a judgement", "rows": rows})
        return
    _print_summary(rows, metric, by_category)


@generations_app.command("list")
def list_cmd(
    run: Annotated[Optional[str], typer.Option("--run", help="Only this run.")] = None,
    step: Annotated[Optional[int], typer.Option("--step", help="Only this checkpoint step.")] = None,
    set_name: Annotated[Optional[str], typer.Option("--set", help="Only members of this set.")] = None,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="At most this many rows.")] = 20,
    db: DbOpt = None,
    json_out: JsonOpt = False,
):
    """Show stored answers next to the question and the reference.

    Example: vlmdyn generations list --run tiny-s0 --step 75 --set unseen -n 10
    """
    from vlmdyn_cli.evalsets.match import normalised
    from vlmdyn_cli.store import open_db
    from vlmdyn_cli.store.generations import list_generations
    from vlmdyn_cli.store.runs import get_run

    d = open_db(db, readonly=True)
    rows = list_generations(d, run_id=None if run is None else get_run(d, run).id, step=step, set_name=set_name,
                            limit=limit)
    for r in rows:
        r["normalised_match"] = normalised(r["prediction"], r["answer"])
    if json_out:
        emit_json(rows)
        return
    short = [{**r, "question": _clip(r["question"]), "answer": _clip(r["answer"]),
              "prediction": _clip(r["prediction"]), "match": "yes" if r["normalised_match"] else "no"}
             for r in rows]
    print_table(short, ["run", "step", "qa_id", "category", "question", "answer", "prediction", "match"],
                title="generations (match = normalised string match, not a judgement)")


def _clip(text: str, n: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def register(app: typer.Typer) -> None:
    app.command("infer")(infer_cmd)
    app.add_typer(generations_app, name="generations")
