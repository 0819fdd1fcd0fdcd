"""Writing a dataset's rows: datasets, images, conversations, qa_pairs.

The row shapes are defined here once (``ImageRow``, ``ConversationRow``,
``QaRow``: named tuples, so ``executemany`` takes them as they are) and every
writer of these tables uses them: the LLaVA importer (``data/importer.py``)
and the test-data builders (``vlmdyn_cli/testing``). The caller owns the
transaction (the importer writes a whole file in one). Labelling QA pairs
afterwards (``category``...) is ``data/categorize.py``'s update.
"""

from __future__ import annotations

import json
from typing import Iterable, NamedTuple

from vlmdyn_cli.store.db import now

CHUNK = 500   # values per IN (...) query


class ImageRow(NamedTuple):
    sha256: str                  # content hash of the bytes (or ``path:<hash>`` with hashing skipped)
    path: str                    # first path seen, relative to the image root
    width: int | None = None
    height: int | None = None
    n_bytes: int | None = None
    id: int | None = None        # None: the next free id


class ConversationRow(NamedTuple):
    dataset_id: int
    idx: int                     # position of the record in the source file
    n_turns: int
    source_id: str | None = None
    source: str | None = None
    image_id: int | None = None
    image_path: str | None = None
    kept: int = 1
    drop_reason: str | None = None
    id: int | None = None


class QaRow(NamedTuple):
    dataset_id: int
    conversation_id: int
    turn: int
    question: str
    answer: str
    image_id: int | None = None
    category: str | None = None
    subcategory: str | None = None
    category_method: str | None = None
    category_reason: str | None = None
    true_category: str | None = None
    true_subcategory: str | None = None
    id: int | None = None


def _insert(table: str, row_type, verb: str = "INSERT") -> str:
    cols = row_type._fields
    return f"{verb} INTO {table}({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"


_IMAGES_SQL = _insert("images", ImageRow, "INSERT OR IGNORE")
_CONVERSATIONS_SQL = _insert("conversations", ConversationRow)
_QA_SQL = _insert("qa_pairs", QaRow)


def create_dataset(conn, name: str, source_path: str, source_sha256: str, image_root: str | None) -> int:
    """The datasets row (counts zero until ``set_counts``); returns its id."""
    return conn.execute(
        "INSERT INTO datasets(name, source_path, source_sha256, image_root, imported_at) VALUES (?,?,?,?,?)",
        [name, source_path, source_sha256, image_root, now()]).lastrowid


def set_counts(conn, dataset_id: int, n_conversations: int, n_kept: int, n_qa: int,
               meta: dict | None = None) -> None:
    conn.execute("UPDATE datasets SET n_conversations = ?, n_kept = ?, n_qa = ?, meta_json = ? WHERE id = ?",
                 [n_conversations, n_kept, n_qa, None if meta is None else json.dumps(meta), dataset_id])


def add_images(conn, rows: Iterable[ImageRow]) -> int:
    """Insert images (a hash already stored keeps its row); returns how many rows were added."""
    return max(conn.executemany(_IMAGES_SQL, rows).rowcount, 0)


def image_ids(conn, hashes: Iterable[str]) -> dict[str, int]:
    """sha256 -> images.id of stored images."""
    hashes = list(dict.fromkeys(hashes))
    out: dict[str, int] = {}
    for k in range(0, len(hashes), CHUNK):
        part = hashes[k:k + CHUNK]
        out.update((h, i) for i, h in conn.execute(
            f"SELECT id, sha256 FROM images WHERE sha256 IN ({','.join('?' * len(part))})", part))
    return out


def next_id(conn, table: str) -> int:
    """The id the next row of ``table`` (conversations, qa_pairs, images) gets when given explicitly."""
    return conn.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}").fetchone()[0]


def add_conversations(conn, rows: Iterable[ConversationRow]) -> None:
    conn.executemany(_CONVERSATIONS_SQL, rows)


def add_qa_pairs(conn, rows: Iterable[QaRow]) -> None:
    conn.executemany(_QA_SQL, rows)
