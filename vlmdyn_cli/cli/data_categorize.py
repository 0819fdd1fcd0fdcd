"""CLI: `vlmdyn data categorize` — label QA pairs (in the database, or a JSONL file) with skill categories."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from vlmdyn_cli.cli.common import DbOpt, JsonOpt, QuietOpt, emit_json, emit_jsonl, hint, print_table


def add_commands(data_app: typer.Typer) -> None:
    @data_app.command("categorize")
    def categorize(
        method: Annotated[str, typer.Option("--method", help="Categoriser: rules (fast, deterministic) or llm (a judge backend).")] = "rules",
        judge: Annotated[Optional[str], typer.Option("--judge", help="Judge spec for --method llm (e.g. local, gpt-4o-mini).")] = None,
        dataset: Annotated[Optional[str], typer.Option("--dataset", help="Only this imported dataset (default: all).")] = None,
        force: Annotated[bool, typer.Option("--force", help="Relabel QA pairs that already have a category.")] = False,
        input_file: Annotated[Optional[Path], typer.Option("--input", help="Label questions from a JSONL file ('-' for stdin) instead of the database: one {\"question\": ..., \"answer\": ..., \"image\": ..., \"source\": ...} per line (only question is required).")] = None,
        batch_size: Annotated[int, typer.Option("--batch-size", help="QA pairs per transaction.")] = 2000,
        db: DbOpt = None,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Label QA pairs with Bounding, Complex, Object, OCR or Spatial (and bbox/describe, recognition/semantic).

        A pair from an OCR dataset (image folder ocr_vqa/ or textvqa/, or such a
        source name) is OCR whatever the method, as in the paper, and a pair from an
        MME subtask folder (MME_Benchmark_release_version/position/...) gets that
        subtask's skill; --method llm asks
        the paper's four-way prompt (Object / Spatial / Bounding / Complex) for the
        questions without an OCR source or OCR cue.

        With --input, reads one JSON object per line with a "question" (optional:
        "answer", extra evidence for the rules; "image", the image path; "source",
        the source dataset), and prints each object back with "category",
        "subcategory", "reason" (and "rule" where a rule decided) added.
        Otherwise labels the database's QA pairs in batched transactions; a rerun
        skips labelled pairs (use --force to relabel).

        \b
        Examples:
          vlmdyn data categorize --db exp.db
          vlmdyn data categorize --method llm --judge local --dataset synth
          vlmdyn data categorize --input questions.jsonl --json
        """
        from vlmdyn_cli.data.categories import get_categorizer
        from vlmdyn_cli.errors import BadInput

        if batch_size < 1:
            raise BadInput("--batch-size must be at least 1")
        opts = {"judge": judge} if judge else {}
        if judge and method != "llm":
            raise BadInput("--judge only applies to --method llm")
        cat = get_categorizer(method, **opts)
        if input_file is not None:
            if dataset or force:
                raise BadInput("--dataset and --force apply to the database, not to --input")
            _categorize_file(cat, input_file, json_out, batch_size)
            return
        _categorize_db(cat, db, dataset, force, batch_size, json_out, quiet)


def _categorize_db(cat, db_path, dataset, force, batch_size, json_out, quiet) -> None:
    from vlmdyn_cli.data.categorize import categorize_dataset
    from vlmdyn_cli.progress import cli_reporter
    from vlmdyn_cli.store import open_db

    db = open_db(db_path, must_exist=True)
    try:
        res = categorize_dataset(db, cat.method, dataset, reporter=cli_reporter(quiet or json_out), force=force,
                                 batch_size=batch_size, categorizer=cat)
    finally:
        db.close()
    if json_out:
        emit_json(res.to_dict())
        return
    labelled = sum(res.counts.values()) or 1
    rows = [{"category": c, "QA pairs": n, "share %": round(100 * n / labelled, 2),
             "sub-categories": ", ".join(f"{k.split('/')[1]} {v}" for k, v in res.subcounts.items()
                                        if k.startswith(c + "/"))}
            for c, n in res.counts.items()]
    print_table(rows, title=f"{', '.join(res.datasets)}: {labelled} labelled QA pairs ({res.method})")
    if res.agreement:
        a = res.agreement
        from vlmdyn_cli.data.categories import CATEGORIES

        conf = [{"truth \\ label": t, **{p: row.get(p, 0) for p in CATEGORIES}} for t, row in a.confusion.items()]
        print_table(conf, title=f"agreement with the data's true categories on {a.n} QA pairs: "
                                f"category {100 * a.category:.2f}%, sub-category {100 * a.subcategory:.2f}%")
    hint(f"labelled {res.n_labelled} now, {res.n_skipped} already labelled, {res.n_failed} without a label "
         f"({res.rate:.0f} QA/s)" + ("; rerun to retry the unlabelled ones" if res.n_failed else ""))


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    if str(path) == "-":
        for i, line in enumerate(sys.stdin, 1):
            yield i, line
        return
    from vlmdyn_cli.jsonl import lines

    yield from lines(path)


def _parse(lineno: int, line: str, where: str) -> dict | None:
    from vlmdyn_cli.errors import BadInput
    from vlmdyn_cli.jsonl import parse_object

    obj = parse_object(line, f"{where} line {lineno}")
    if obj is None:
        return None
    q = obj.get("question")
    if not isinstance(q, str) or not q.strip():
        raise BadInput(f"{where} line {lineno}: \"question\" must be a non-empty string")
    a = obj.get("answer")
    if a is not None and not isinstance(a, str):
        raise BadInput(f"{where} line {lineno}: \"answer\" must be a string when given")
    for key in ("image", "source"):
        v = obj.get(key)
        if v is not None and (not isinstance(v, str) or not v.strip()):
            raise BadInput(f"{where} line {lineno}: \"{key}\" must be a non-empty string when given")
    return obj


def _categorize_file(cat, path: Path, json_out: bool, batch_size: int) -> None:
    """Validate every line first (nothing printed on bad input), then label in batches."""
    from vlmdyn_cli.data.categories import pair_source
    from vlmdyn_cli.data.categorize import label_pairs
    from vlmdyn_cli.errors import BadInput

    where = "stdin" if str(path) == "-" else str(path)
    if where != "stdin":
        from vlmdyn_cli.jsonl import input_file

        path = input_file(path, "input file")
    if where == "stdin":
        records = [r for r in (_parse(i, line, where) for i, line in _read_lines(path)) if r is not None]
        batches = (records[k:k + batch_size] for k in range(0, len(records), batch_size))
    else:
        for i, line in _read_lines(path):  # pass 1: validate
            _parse(i, line, where)
        batches = _file_batches(path, where, batch_size)
    table = []
    for batch in batches:
        labels = label_pairs(cat, [r["question"] for r in batch], [r.get("answer") or "" for r in batch],
                             [pair_source(r.get("source"), r.get("image"), r["question"]) for r in batch])
        for rec, lab in zip(batch, labels):
            out = dict(rec)
            out["category"] = lab.category if lab else None
            out["subcategory"] = lab.subcategory if lab else None
            if lab is not None and lab.rule:
                out["rule"] = lab.rule
            out["reason"] = lab.reason if lab else "no label: the categoriser's reply did not parse"
            if json_out:
                emit_jsonl(out)
            else:
                table.append({"question": " ".join(rec["question"].split())[:70], "category": out["category"],
                              "subcategory": out["subcategory"], "rule": out.get("rule", "")})
    if json_out:
        sys.stdout.flush()
    else:
        print_table(table)


def _file_batches(path: Path, where: str, batch_size: int):
    batch = []
    for i, line in _read_lines(path):
        rec = _parse(i, line, where)
        if rec is None:
            continue
        batch.append(rec)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
