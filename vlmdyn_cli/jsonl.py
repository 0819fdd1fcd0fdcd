"""Text input files shared by every command that reads one (`judge --input`, `data
categorize --input`, `calibrate import|sample --from`, `data import`): a path that is
empty, missing or a directory, and a line that is not valid UTF-8, are bad input
naming the file (and line); for JSON Lines, blank lines are skipped and a line that is
not a JSON object is bad input naming the file and line."""

from __future__ import annotations

import json
import re
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
    check_surrogates(line, obj, where)
    return obj


# a \uD800-\uDFFF escape: half of a UTF-16 pair, or (alone) a character UTF-8 cannot hold
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def check_surrogates(text: str, obj, where: str) -> None:
    """BadInput naming ``where`` when ``obj`` (decoded from the JSON ``text``) holds a lone UTF-16
    surrogate such as ``"\\ud800"``: valid JSON, but no UTF-8 text (SQLite, stdout) can store it.
    Only text with a surrogate escape is walked, so ordinary files cost one regex search."""
    if not _SURROGATE_ESCAPE.search(text):
        return
    stack = [obj]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as exc:
                bad = v[exc.start]
                raise BadInput(f"{where}: the text {v[max(0, exc.start - 20):exc.start]!r}... holds the escape "
                               f"\\u{ord(bad):04x}, half of a UTF-16 surrogate pair without its other half "
                               f"(not a character); fix or drop it") from None
