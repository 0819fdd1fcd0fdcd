"""CLI: `vlmdyn data synth` — write the synthetic multitask benchmark (LLaVA format)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vlmdyn_cli.cli.common import JsonOpt, QuietOpt, emit_json, hint, print_table, seed_option


def add_commands(data_app: typer.Typer) -> None:
    @data_app.command("synth")
    def synth(
        out: Annotated[Path, typer.Option("--out", help="Output folder (llava.json, images/, synth_meta.json).")],
        images: Annotated[int, typer.Option("--images", help="Number of images (about 3 conversations each).")] = 2000,
        seed: Annotated[int, seed_option("--seed", help="Random seed: same seed, same files.")] = 0,
        size: Annotated[Optional[int], typer.Option("--size", help="Image edge in pixels, 32 to 1024 (default "
                                                    "64; 32 for a --family).", show_default=False)] = None,
        workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Rendering processes (default: CPU count, max 4).")] = None,
        force: Annotated[bool, typer.Option("--force", help="Regenerate even if the folder already holds this benchmark.")] = False,
        family: Annotated[str, typer.Option("--family", help="'paper' (the multitask benchmark) or a candidate "
                                            "family for `vlmdyn select`: base, yellow, wrong-colour, shapes, "
                                            "chatter, position, flipped, bench (data/synth_select.py).")] = "paper",
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Generate the synthetic multitask VLM benchmark: scenes of shapes and book covers.

        Questions cover all five skill categories in the paper's mix, each turn
        carries its true category ("vlmdyn_truth"); 55% of the images are used by
        one conversation, the others by 4-5, and every conversation asks its
        picture's hidden named fact once (memorised only by training on it).

        \b
        Example:
          vlmdyn data synth --out synth --images 2000 --seed 0
          vlmdyn data import synth/llava.json --images synth/images
          vlmdyn data synth --family yellow --out sel/yellow --images 600
        """
        from vlmdyn_cli.progress import cli_reporter

        if family != "paper":
            _family(out, family, images, seed, 32 if size is None else size, force, json_out, quiet)
            return
        from vlmdyn_cli.data.synth import generate

        res = generate(out, n_images=images, seed=seed, workers=workers, reporter=cli_reporter(quiet or json_out),
                       image_size=64 if size is None else size, force=force)
        if json_out:
            emit_json(res.to_dict())
            return
        rows = [{"category": c, "share %": p, "sub-categories": ", ".join(f"{s} {v}%" for s, v in res.submix.get(c, {}).items())}
                for c, p in res.mix.items()]
        print_table(rows, title=f"{res.n_qa} QA pairs, {res.n_conversations} conversations, {res.n_images} images "
                                f"({res.n_books} book covers)")
        state = "already up to date" if res.skipped else f"written in {res.seconds:.1f} s"
        hint(f"{res.out_dir}: {state}. Next: vlmdyn data import {res.json_path} --images {res.images_dir}")


def _family(out: Path, family: str, images: int, seed: int, size: int, force: bool, json_out: bool,
            quiet: bool) -> None:
    from vlmdyn_cli.data.synth_select import generate_family
    from vlmdyn_cli.progress import cli_reporter

    meta = generate_family(out, family, images, seed=seed, image_size=size, force=force,
                           reporter=cli_reporter(quiet or json_out))
    if json_out:
        emit_json(meta)
        return
    state = "already up to date" if meta["skipped"] else f"written in {meta['seconds']:.1f} s"
    hint(f"family {family} ({meta['effect']}: {meta['about']}): {meta['n_conversations']} conversations, "
         f"{meta['n_qa']} QA pairs in {out}, {state}. "
         f"Next: vlmdyn data import {out / 'llava.json'} --images {out / 'images'} --name {family}")
