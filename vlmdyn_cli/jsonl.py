"""Text input files shared by every command that reads one (`judge --input`, `data
categorize --input`, `calibrate import|sample --from`, `data import`): a path that is
empty, missing or a directory, and a line that is not valid UTF-8, are bad input
naming the file (and line); for JSON Lines, blank lines are skipped and a line that is
not a JSON object is bad input naming the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from vlmdyn_cli.errors import BadInput


def input_file(path: str | Path, what: str) -> Path:
    """The path of an existing file; BadInput starting with ``what`` ("triples file") otherwise."""
    if str(path).strip() in ("", "."):      # typer turns an empty argument into Path(".")
        raise BadInput(f"{what}: the path is empty")
    p = Path(path)
    if p.is_dir():
        raise BadInput(f"{what} {p} is a directory, not a file")
    if not p.is_file():
        raise BadInput(f"{what} {p} does not exist")
    return p


def decode(raw: bytes, where: str) -> str:
    """UTF-8 text of a file's bytes (a leading BOM dropped); invalid UTF-8 is BadInput naming the line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise BadInput(f"{where}: line {line}: not valid UTF-8 (byte {raw[exc.start:exc.start + 1]!r}); "
                       f"save the file as UTF-8") from None


def read_text(path: Path) -> str:
    """The whole file as UTF-8 text (see ``decode``)."""
    return decode(path.read_bytes(), str(path))


def lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file, streamed; invalid UTF-8 is BadInput naming the line."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadInput(f"{path}: line {lineno}: not valid UTF-8 (byte {raw[exc.start:exc.start + 1]!r}); "
                               f"save the file as UTF-8") from None
            yield lineno, text.lstrip("\ufeff") if lineno == 1 else text


def parse_object(line: str, where: str) -> dict | None:
    """The JSON object on one line, None for a blank line; ``where`` is e.g. "file.jsonl: line 3"."""
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise BadInput(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "\\u" in line:   # only an escape can make a lone surrogate (not text: it cannot be stored)
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadInput(f"{where}: a \\u escape makes half a surrogate pair (e.g. \\ud800 alone), "
                           "which is not text") from None
    return obj
