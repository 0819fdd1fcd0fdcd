"""Splitting a stage's work into N disjoint shards: ``--shard i/N`` of `infer` and `judge`.

Every work unit has a key that names it the same way in any copy of the
experiment database (a node's export, the merged database): for inference the
checkpoint step and the QA pair's content key (dataset file hash, conversation
index, turn), for judging the triple hash. A unit belongs to shard
``sha256(key) mod N``. So the split depends on nothing but N: not on what is
already done, not on which sets or checkpoints a process was asked for, not on
row ids. N processes given 0/N .. N-1/N never do the same unit twice, and any
of them can be killed and rerun alone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from vlmdyn_cli.errors import BadInput

_FORM = re.compile(r"^\s*(-?\d+)\s*/\s*(-?\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, key: str) -> bool:
        return self.count == 1 or shard_of(key, self.count) == self.index


def shard_of(key: str, count: int) -> int:
    """The shard (0..count-1) a unit key belongs to: uniform, and the same on every machine."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % count


def parse_shard(text: str | None, flag: str = "--shard") -> Shard | None:
    """``"i/N"`` -> Shard(i, N); None -> None. BadInput naming the flag for anything else."""
    if text is None:
        return None
    m = _FORM.match(text)
    if not m:
        raise BadInput(f"{flag} takes i/N (this process's shard i of N, counting from 0), e.g. "
                       f"{flag} 0/8; not '{text}'")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise BadInput(f"{flag} {text}: N is the number of shards and must be at least 1")
    if not 0 <= i < n:
        raise BadInput(f"{flag} {text}: the shard index must be 0 to {n - 1} for a {n}-way split "
                       f"(0/{n} ... {n - 1}/{n})")
    return Shard(i, n)
