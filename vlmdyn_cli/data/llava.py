"""Streaming reader for a LLaVA-format JSON file (one top-level list of records).

The real mix665k file is about 1 GB, so it is never loaded whole. The file is
read in chunks of text; ``json.JSONDecoder.raw_decode`` decodes one record at
a time from the front of a buffer, and the buffer is refilled when a record
does not fit yet. Between records only JSON whitespace and one comma are
allowed, exactly as in a list. Memory is one chunk plus the largest record.

Errors name the record index and the character offset (and, re-reading the
prefix only when an error happens, the byte offset, line and column).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.jsonl import check_surrogates

CHUNK_CHARS = 1 << 20          # characters read per refill
MAX_RECORD_CHARS = 256 << 20   # a single record larger than this is treated as malformed

_WS = re.compile(r"[ \t\n\r]*")
_decoder = json.JSONDecoder()


@dataclass(frozen=True)
class RawRecord:
    index: int       # 0-based position in the list
    offset: int      # character offset of the record's '{' in the file
    data: dict


class _Buffer:
    """A text buffer over a file, refilled on demand; positions are file offsets."""

    def __init__(self, fh, chunk: int):
        self.fh, self.chunk = fh, chunk
        self.text = ""
        self.base = 0        # file offset of text[0]
        self.eof = False
        self.chars_read = 0

    def fill(self) -> bool:
        """Read one more chunk; False at end of file."""
        if self.eof:
            return False
        more = self.fh.read(self.chunk)
        if not more:
            self.eof = True
            return False
        self.chars_read += len(more)
        self.text += more
        return True

    def drop_before(self, pos: int) -> None:
        """Forget text before local position ``pos`` (keeps the buffer small)."""
        if pos > 0:
            self.text = self.text[pos:]
            self.base += pos

    def skip_ws(self, pos: int) -> int:
        """Skip JSON whitespace from local ``pos``, refilling as needed; returns the new local pos."""
        while True:
            pos = _WS.match(self.text, pos).end()
            if pos < len(self.text) or not self.fill():
                return pos


def _where(path: Path, char_offset: int) -> str:
    """Byte offset, line and column of a character offset (re-reads the prefix in chunks)."""
    nbytes, line, col, left = 0, 1, 1, char_offset
    try:
        with open(path, "rb") as raw:
            nbytes = 3 if raw.read(3) == b"\xef\xbb\xbf" else 0   # a BOM the decoder skipped
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
            while left > 0:
                part = fh.read(min(left, CHUNK_CHARS))
                if not part:
                    break
                left -= len(part)
                nbytes += len(part.encode("utf-8", errors="surrogateescape"))
                nl = part.count("\n")
                if nl:
                    line += nl
                    col = len(part) - part.rfind("\n")
                else:
                    col += len(part)
    except OSError:
        return f"character offset {char_offset}"
    return f"byte offset {nbytes} (line {line}, column {col})"


def iter_records(path: str | Path, chunk_chars: int = CHUNK_CHARS) -> Iterator[RawRecord]:
    """Yield the records of a LLaVA JSON list one by one, in file order.

    Raises BadInput for an empty file, a document that is not a list, an empty
    list, a record that is not an object, malformed JSON (naming the record
    index and where in the file) and trailing garbage after the list.
    """
    path = Path(path)
    try:
        fh = open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from exc
    with fh:
        buf = _Buffer(fh, chunk_chars)
        try:
            yield from _parse(path, buf)
        except UnicodeDecodeError as exc:
            raise BadInput(f"{path} is not UTF-8 text (within the first {buf.chars_read + len(exc.object)} "
                           f"bytes): {exc.reason}") from None


def _parse(path: Path, buf: _Buffer) -> Iterator[RawRecord]:
    pos = buf.skip_ws(0)
    if pos >= len(buf.text):
        raise BadInput(f"{path} is empty: expected a JSON list of LLaVA records")
    if buf.text[pos] != "[":
        raise BadInput(f"{path} must hold a JSON list of records ('[' ...), found {buf.text[pos]!r} at "
                       f"{_where(path, buf.base + pos)}")
    pos = buf.skip_ws(pos + 1)
    index = 0
    if pos < len(buf.text) and buf.text[pos] == "]":
        raise BadInput(f"{path} holds an empty list: no records to import")
    while True:
        if pos >= len(buf.text):
            after = f"after record {index - 1}" if index else "before the first record"
            raise BadInput(f"{path}: the file ends {after} (truncated? missing ']')")
        if buf.text[pos] != "{":
            raise BadInput(f"{path}: record {index} is not a JSON object (starts with {buf.text[pos]!r}) at "
                           f"{_where(path, buf.base + pos)}")
        obj, end = _decode_one(path, buf, pos, index)
        yield RawRecord(index, buf.base + pos, obj)
        index += 1
        # keep the buffer small: drop what has been consumed once it is large
        if end > (len(buf.text) >> 1):
            buf.drop_before(end)
            end = 0
        pos = buf.skip_ws(end)
        if pos >= len(buf.text):
            raise BadInput(f"{path}: the file ends after record {index - 1} (truncated? missing ']')")
        ch = buf.text[pos]
        if ch == ",":
            pos = buf.skip_ws(pos + 1)
            continue
        if ch == "]":
            tail = buf.skip_ws(pos + 1)
            if tail < len(buf.text):
                raise BadInput(f"{path}: unexpected data after the closing ']' at "
                               f"{_where(path, buf.base + tail)}")
            return
        raise BadInput(f"{path}: expected ',' or ']' after record {index - 1}, found {ch!r} at "
                       f"{_where(path, buf.base + pos)}")


def _decode_one(path: Path, buf: _Buffer, pos: int, index: int) -> tuple[dict, int]:
    """Decode the object starting at local ``pos``, reading more text until it is complete.

    A failure is only final once more text cannot change it: at end of file,
    or when the same error at the same place repeats after a refill (an
    unterminated string keeps reading, it may just be long).
    """
    last = None
    while True:
        try:
            obj, end = _decoder.raw_decode(buf.text, pos)
        except json.JSONDecodeError as exc:
            key = (exc.msg, exc.pos)
            final = buf.eof or (key == last and not exc.msg.startswith("Unterminated string"))
            if not final and len(buf.text) - pos > MAX_RECORD_CHARS:
                final = True
            if final or not buf.fill():
                what = exc.msg.removesuffix(" at")   # "Unterminated string starting at" + " at byte ..."
                raise BadInput(f"{path}: malformed JSON in record {index}: {what} at "
                               f"{_where(path, buf.base + exc.pos)}") from None
            last = key
            continue
        check_surrogates(buf.text[pos:end], obj, f"{path}: record {index}")
        return obj, end
