"""CLI: `vlmdyn train` (one epoch with a recorded order) and `vlmdyn runs list`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from vlmdyn_cli.cli.common import DbOpt, JsonOpt, QuietOpt, emit_json, hint, print_table, seed_option

runs_app = typer.Typer(help="Training runs recorded in the experiment database.", no_args_is_help=True)


def _overrides(loss, checkpoints, out_dir, report_to, dataset, sets: list[str]) -> dict:
    """--set items, then the shortcut options, as nested config overrides."""
    from vlmdyn_cli.training.config import parse_set
    from vlmdyn_cli.training.schedule import parse_steps_option

    ov = parse_set(sets)
    steps = checkpoints if checkpoints in (None, "paper") else parse_steps_option(checkpoints)
    shortcuts = {("train", "loss"): loss, ("checkpoints", "steps"): steps, ("train", "out_dir"): out_dir,
                 ("train", "report_to"): report_to, ("data", "dataset"): dataset}
    for (section, key), value in shortcuts.items():
        if value:
            ov.setdefault(section, {})[key] = str(value) if isinstance(value, Path) else value
    return ov


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        config: Annotated[Optional[Path], typer.Argument(
            help="CONFIG.toml ([model], [data], [train], [checkpoints], [parts]); default: the built-in tiny "
                 "config (= examples/tiny.toml).", show_default=False)] = None,
        seed: Annotated[int, seed_option("--seed", help="Seed of the data order and the initialisation.")] = 0,
        run: Annotated[Optional[str], typer.Option("--run", help="Run name (default <dataset>-<model>-s<seed>).",
                                                   show_default=False)] = None,
        dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset name (default: the only one).",
                                                       show_default=False)] = None,
        loss: Annotated[Optional[str], typer.Option("--loss", help="answer (default) or instruction+answer (L2T).",
                                                    show_default=False)] = None,
        checkpoints: Annotated[Optional[str], typer.Option(
            "--checkpoints", help="Checkpoint steps: 'paper' or a list like 51,357,0.5 (ints = steps, "
                                  "decimals = fractions of the epoch).", show_default=False)] = None,
        init_from: Annotated[Optional[str], typer.Option(
            "--init-from", help="Start from another run's checkpoint: RUN[:STEP] (default: its last).",
            show_default=False)] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last "
                                                              "checkpoint, same data order.")] = False,
        out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="Where runs/<name>/checkpoints go.",
                                                        show_default=False)] = None,
        report_to: Annotated[Optional[str], typer.Option("--report-to", help="none, wandb or tensorboard.",
                                                         show_default=False)] = None,
        set_: Annotated[Optional[list[str]], typer.Option(
            "--set", help="Override one config value: SECTION.KEY=VALUE (TOML value), repeatable.",
            show_default=False)] = None,
        db: DbOpt = None,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Train a LLaVA-style VLM for exactly one epoch, recording the data order and checkpoints.

        Writes the run, the order manifest (conversation -> step, position),
        per-step metrics and the checkpoint rows to the database; checkpoints
        are ordinary HF folders under <out_dir>/<run>/checkpoints/step-NNNNNN.
        Multi-GPU: accelerate launch -m vlmdyn_cli train CONFIG.toml (see examples/).

        Example: vlmdyn train examples/tiny.toml --seed 0 --db exp.db
        """
        from vlmdyn_cli.progress import cli_reporter
        from vlmdyn_cli.store import open_db
        from vlmdyn_cli.training.config import load_config
        from vlmdyn_cli.training.known_data import warn_if_trained_on
        from vlmdyn_cli.training.trainer import train as run_training

        cfg = load_config(config, _overrides(loss, checkpoints, out_dir, report_to, dataset, set_ or []),
                          overrides_from="the command line")
        database = open_db(db, must_exist=True)
        warn_if_trained_on(database, cfg)
        summary = run_training(database, cfg, seed=seed, run_name=run, resume=resume, init_from=init_from,
                               reporter=cli_reporter(quiet or json_out))
        if os.environ.get("RANK", "0") != "0":   # under torchrun/accelerate launch only rank 0 reports
            return
        if json_out:
            emit_json(summary)
        else:
            hint(f"run {summary['run']}: {summary['status']}, {summary['total_steps']} steps, "
                 f"{len(summary['checkpoints'])} checkpoints. Next: vlmdyn runs list")

    @runs_app.command("list")
    def runs_list(db: DbOpt = None, json_out: JsonOpt = False):
        """List training runs with status, steps, checkpoints and throughput.

        Example: vlmdyn runs list --db exp.db --json
        """
        from vlmdyn_cli.store import open_db
        from vlmdyn_cli.store.runs import list_runs

        rows = list_runs(open_db(db, readonly=True))
        if json_out:
            emit_json(rows)
            return
        print_table([{**r, "steps": f"{r['steps_done']}/{r['total_steps']}",
                      "checkpoints": ",".join(map(str, r["checkpoint_steps"]))} for r in rows],
                    columns=["name", "seed", "model_id", "status", "steps", "global_batch", "checkpoints",
                             "samples_per_s"])

    app.add_typer(runs_app, name="runs")
