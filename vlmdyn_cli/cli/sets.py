"""CLI: `vlmdyn sets build|list` — Seen@k and unseen evaluation sets of a run."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from vlmdyn_cli.cli.common import (DbOpt, JsonOpt, QuietOpt, RunOpt, emit_json, hint, print_table, say,
                                   seed_option)

sets_app = typer.Typer(
    help="Seen@k and unseen evaluation sets, built from a run's order manifest.",
    no_args_is_help=True,
)

CheckpointsOpt = Annotated[str, typer.Option(
    "--checkpoints",
    help="Checkpoint steps k to build Seen@k for: 'all' (the run's schedule without step 0 and "
         "without the end-of-epoch step) or a comma list like 51,357. The largest one is the "
         "last evaluated checkpoint: unseen sets come from data trained after it.")]


def parse_steps(text: str, flag: str = "--checkpoints") -> list[int] | None:
    """'all' -> None, '51,357' -> [51, 357]; BadInput naming the flag otherwise."""
    from vlmdyn_cli.errors import BadInput

    if text.strip().lower() == "all":
        return None
    try:
        steps = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise BadInput(f"{flag} must be 'all' or comma-separated step numbers, not '{text}'") from None
    if not steps or min(steps) < 0:
        raise BadInput(f"{flag} must be 'all' or comma-separated step numbers >= 0, not '{text}'")
    return steps


def parse_dedup(text: str) -> list[str]:
    from vlmdyn_cli.errors import BadInput, did_you_mean
    from vlmdyn_cli.evalsets.selection import DEDUP_MODES

    if text.strip().lower() == "all":
        return list(DEDUP_MODES)
    modes = [m.strip().lower() for m in text.split(",") if m.strip()]
    for m in modes:
        if m not in DEDUP_MODES:
            raise BadInput(f"--dedup '{m}' is not one of image, pair, none, all{did_you_mean(m, DEDUP_MODES)}")
    return list(dict.fromkeys(modes)) or ["image"]


@sets_app.command("build")
def build_cmd(
    run: RunOpt,
    seen_size: Annotated[int, typer.Option("--seen-size", min=1,
                                           help="QA pairs per Seen@k set.")] = 5000,
    unseen_size: Annotated[int, typer.Option("--unseen-size", min=1,
                                             help="QA pairs per unseen set.")] = 5000,
    dedup: Annotated[str, typer.Option(
        "--dedup", help="Unseen set(s) to build: image (default; no image trained on before the "
                        "last checkpoint), pair (only exact trained pairs excluded), none, a comma "
                        "list, or all (unseen, unseen-pair, unseen-none side by side).")] = "image",
    stratify: Annotated[Optional[str], typer.Option(
        "--stratify", help="'category': sample unseen sets with each category in proportion to "
                           "the candidates.")] = None,
    checkpoints: CheckpointsOpt = "all",
    seed: Annotated[Optional[int], seed_option(
        "--seed", help="Sampling seed for unseen sets (default: the run's seed).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace sets whose stored definition differs (generations are kept).")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Build Seen@k sets for each checkpoint k and the unseen set(s) of a run.

    Seen@k = the N QA pairs trained most recently at steps <= k (checkpoint k is
    saved after optimizer step k, so it has trained on them), walking back through
    the order manifest by (step, position); a conversation's QA pairs share its step.
    Unseen = N QA pairs sampled (seeded) from data trained after the last checkpoint
    or never trained; --dedup image also drops every pair whose image (by content
    hash) occurs in anything trained up to that checkpoint. Rebuilding with the same
    definition does nothing.

    Example: vlmdyn sets build --run tiny-s0 --seen-size 500 --unseen-size 500 --dedup all
    """
    from vlmdyn_cli.errors import BadInput
    from vlmdyn_cli.evalsets import build
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store import open_db
    from vlmdyn_cli.store.runs import get_run

    if stratify is not None and stratify != "category":
        raise BadInput(f"--stratify accepts only 'category', not '{stratify}'")
    d = open_db(db, must_exist=True)
    r = get_run(d, run)
    steps = parse_steps(checkpoints)
    if steps is None:
        steps = r.eval_steps
        if not steps:
            raise BadInput(f"run '{run}' has no checkpoint steps between 0 and its last step "
                           f"{r.total_steps} in its schedule; name steps with --checkpoints")
    if 0 in steps:
        raise BadInput("--checkpoints: Seen@0 would be empty (nothing is trained before step 1); "
                       "leave 0 out (the untrained model is still evaluated by `vlmdyn infer`)")
    if off := [k for k in steps if k not in r.checkpoint_steps]:
        raise BadInput(f"--checkpoints: run '{run}' saves no checkpoint at step {', '.join(map(str, off))} "
                       f"(a Seen@k set is evaluated at checkpoint k); its checkpoint steps: "
                       f"{', '.join(map(str, r.checkpoint_steps)) or 'none'}")
    specs = build.plan(r, steps, seen_size, unseen_size, parse_dedup(dedup), stratify,
                       r.seed if seed is None else seed)
    results = build.build(d, r, specs, force=force, reporter=cli_reporter(quiet))
    if json_out:
        emit_json({"run": run, "sets": results})
        return
    print_table(results, ["name", "status", "size"], title=f"evaluation sets of run {run}")
    hint("check them with: vlmdyn sets list --run " + run)


@sets_app.command("list")
def list_cmd(
    run: Annotated[Optional[str], typer.Option("--run", help="Only this run's sets.")] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
):
    """Show each set's size, category mix and overlap checks (computed from the manifest).

    For seen@k, 'not trained by k' must be 0. For unseen sets, 'violating images' counts
    member images that occur in data trained up to the last checkpoint: 0 under --dedup
    image, usually > 0 under pair/none when images are re-used.

    Example: vlmdyn sets list --run tiny-s0 --json
    """
    from vlmdyn_cli.evalsets.report import list_sets
    from vlmdyn_cli.store import open_db
    from vlmdyn_cli.store.runs import get_run

    d = open_db(db, readonly=True)
    if run is not None:
        get_run(d, run)
    sets = list_sets(d, run)
    if json_out:
        emit_json(sets)
        return
    rows = []
    for s in sets:
        c = s["checks"]
        check = (f"untrained {c['not_trained_by_k']}" if s["kind"] == "seen" else
                 f"images {c['violating_images']}, pairs {c['repeated_pairs']}, "
                 f"trained {c['trained_members']}")
        rows.append({"run": s["run"], "name": s["name"], "size": s["size"],
                     "steps": (f"after {s['after_step']}" if s["kind"] == "unseen"
                               else f"<= {s['k_step']}"),
                     "categories": ", ".join(f"{k} {v}" for k, v in s["categories"].items()),
                     "overlap": check})
    print_table(rows, title="evaluation sets")
    for s in sets:
        say(_check_line(s))
    if not sets:
        hint("no sets yet: build them with `vlmdyn sets build --run RUN`")


def _check_line(s: dict) -> str:
    c = s["checks"]
    if s["kind"] == "seen":
        ok = "ok" if c["not_trained_by_k"] == 0 else "PROBLEM"
        return (f"{s['run']}/{s['name']}: {c['not_trained_by_k']} members not trained by step "
                f"{s['k_step']} ({ok})")
    expected = "must be 0" if s["dedup"] == "image" else "expected > 0 when images are re-used"
    return (f"{s['run']}/{s['name']} (dedup {s['dedup']}): {c['violating_images']} member images "
            f"occur in data trained at steps <= {s['after_step']} ({expected}); "
            f"{c['repeated_pairs']} exact trained pairs; {c['trained_members']} trained members")


def register(app: typer.Typer) -> None:
    app.add_typer(sets_app, name="sets")
