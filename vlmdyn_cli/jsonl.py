"""JSON Lines input shared by every command that reads one object per line
(`judge --input`, `data categorize --input`, `calibrate import`): blank lines are
skipped, and a line that is not a JSON object is bad input naming the file and line."""

from __future__ import annotations

import json

from vlmdyn_cli.errors import BadInput


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
    return obj
