"""CLI: `vlmdyn data import | stats | list` (thin over vlmdyn_cli.data.importer and .stats)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vlmdyn_cli.cli.common import DbOpt, JsonOpt, QuietOpt, emit_json, hint, print_table, seed_option


def import_cmd(
    file: Annotated[Path, typer.Argument(help="LLaVA-format JSON file (a list of conversation records).",
                                         show_default=False)],
    images: Annotated[Optional[Path], typer.Option(
        "--images", help="Image root the records' image paths are relative to (default: the file's folder).",
        show_default=False)] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Dataset name (default: the file's stem).",
                                                show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1,
                                                   help="Threads hashing images (default: 2x cores, max 8).",
                                                   show_default=False)] = None,
    no_images: Annotated[bool, typer.Option(
        "--no-images", help="Do not read image files: no hashing, no checks; one image per distinct path.")] = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Import a LLaVA-format dataset: split turns into QA pairs, drop dependent conversations, hash images.

    One transaction: bad input (malformed JSON, bad roles, missing or corrupt
    image, a path leaving the image root) exits 2 and leaves the database
    unchanged. Importing the same file again does nothing.

    Example: vlmdyn data import llava_v1_5_mix665k.json --images /data/llava --db exp.db
    """
    from vlmdyn_cli.data.importer import import_dataset
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store.db import open_db

    d = open_db(db)
    res = import_dataset(d, file, images, name=name, reporter=cli_reporter(quiet), workers=workers,
                         hash_images=not no_images)
    if res.already_imported:
        hint(f"{file} was already imported as dataset '{res.name}' (same content): nothing changed")
    if json_out:
        emit_json(res.to_dict())
        return
    rows = [
        {"": "dataset", "value": f"{res.name} (id {res.dataset_id})"},
        {"": "conversations", "value": res.n_conversations},
        {"": "kept", "value": res.n_kept},
        {"": "dropped", "value": res.n_dropped},
        *({"": f"  dropped: {k}", "value": v} for k, v in sorted(res.dropped_by_reason.items())),
        {"": "QA pairs", "value": res.n_qa},
        {"": "images", "value": f"{res.n_images} ({res.image_identity} identity, {res.n_new_images} new)"},
    ]
    if not res.already_imported:
        rows.append({"": "conversations/s", "value": f"{res.conversations_per_s:,.0f} ({res.seconds:.1f} s)"})
    print_table(rows, ["", "value"], title="import")


def stats_cmd(
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Dataset name (default: all datasets).",
                                                   show_default=False)] = None,
    samples: Annotated[int, typer.Option("--samples", "-k", min=1, max=10_000,
                                                  help="Number of random samples K (the paper: 7).")] = 7,
    size: Annotated[int, typer.Option("--size", "-n", min=1, help="QA pairs per sample N.")] = 5000,
    seed: Annotated[int, seed_option("--seed", help="Random seed of the samples.")] = 0,
    db: DbOpt = None,
    json_out: JsonOpt = False,
):
    """Table 1: share of each category and sub-category (mean ± std over K samples of N QA pairs).

    Needs categorised QA pairs (`vlmdyn data categorize`). Also counts
    conversations and QA pairs by source dataset.

    Example: vlmdyn data stats --samples 7 --size 5000 --db exp.db
    """
    from vlmdyn_cli.data.stats import category_stats
    from vlmdyn_cli.store.db import open_db

    st = category_stats(open_db(db, readonly=True), dataset, samples=samples, size=size, seed=seed)
    if json_out:
        emit_json(st)
        return
    rows = []
    for c in st["categories"]:
        rows.append({"category": c["category"], "subcategory": "",
                     "share % (mean ± std)": f"{c['mean_pct']:.1f} ± {c['std_pct']:.1f}",
                     "of category %": "", "paper %": "" if c["paper_pct"] is None else f"{c['paper_pct']:.1f}",
                     "all QA pairs": c["count"]})
        for s in c["subcategories"]:
            rows.append({"category": "", "subcategory": s["subcategory"],
                         "share % (mean ± std)": f"{s['mean_pct']:.1f} ± {s['std_pct']:.1f}",
                         "of category %": f"{s['of_category_mean_pct']:.1f} ± {s['of_category_std_pct']:.1f}",
                         "paper %": "", "all QA pairs": s["count"]})
    title = (f"{', '.join(st['datasets'])}: {st['samples']} samples of {st['size']} QA pairs "
             f"({st['n_categorised']} of {st['n_qa']} categorised)")
    print_table(rows, title=title)
    print_table(st["sources"], ["source", "conversations", "kept", "qa_pairs"], title="by source")
    if st["n_categorised"] < st["n_qa"]:
        hint(f"{st['n_qa'] - st['n_categorised']} QA pairs are not categorised yet (`vlmdyn data categorize`)")


def list_cmd(db: DbOpt = None, json_out: JsonOpt = False):
    """List the imported datasets with their counts.

    Example: vlmdyn data list --db exp.db
    """
    from vlmdyn_cli.data.stats import list_datasets
    from vlmdyn_cli.store.db import open_db

    rows = list_datasets(open_db(db, readonly=True))
    if json_out:
        emit_json(rows)
        return
    print_table(rows, ["id", "name", "conversations", "kept", "qa_pairs", "categorised", "image_identity"],
                title="datasets")


def add_commands(data_app: typer.Typer) -> None:
    data_app.command("import")(import_cmd)
    data_app.command("stats")(stats_cmd)
    data_app.command("list")(list_cmd)
