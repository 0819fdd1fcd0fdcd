"""`data import`: a LLaVA-format JSON file (+ its images) into the experiment database.

Flow, one record at a time (memory stays bounded for the 1 GB mix665k file):

    llava.iter_records ─▶ validate + turns.split_turns ─▶ turns.dependent_reason
        ─▶ images.ImageHasher (thread pool, one batch ahead) ─▶ store/datasets.py (batched rows)

The whole import is ONE transaction: the first bad record (or image) raises
BadInput naming its index and id, and the database is left exactly as it
was. Re-importing a file whose content hash is already stored is a no-op.

QA pairs are created only for kept conversations; dropped ones are stored in
``conversations`` with ``kept = 0`` and ``drop_reason`` so the filter can be
inspected, but they never reach training or evaluation.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vlmdyn_cli.data import images as img
from vlmdyn_cli.data.llava import RawRecord, iter_records
from vlmdyn_cli.data.turns import dependent_reason, split_turns
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.jsonl import input_file
from vlmdyn_cli.names import check_name
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.store import datasets as ds_rows
from vlmdyn_cli.store.db import file_sha256, immediate

BATCH = 2000                     # conversations per executemany batch
FILTER_VERSION = "dependent-turns/1"


@dataclass
class ImportResult:
    dataset_id: int
    name: str
    source_sha256: str
    already_imported: bool = False
    n_conversations: int = 0
    n_kept: int = 0
    n_dropped: int = 0
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    n_qa: int = 0
    n_images: int = 0            # distinct images referenced by this dataset
    n_new_images: int = 0        # images rows this import added
    image_identity: str = "sha256"   # or "path" with hashing skipped
    by_source: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    conversations_per_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- helpers

def infer_source(image_path: str | None) -> str:
    """The source dataset from the image path's first folder (coco, gqa, ocr_vqa, textvqa, vg...).

    ``text-only`` without an image, ``unknown`` for a bare file name.
    """
    if not image_path:
        return "text-only"
    first, sep, _rest = image_path.replace("\\", "/").lstrip("./").partition("/")
    return first.lower() if sep and first else "unknown"


@dataclass
class _Conv:
    index: int
    source_id: str | None
    source: str
    image_path: str | None
    pairs: list[tuple[str, str]]
    truth: list[tuple[str | None, str | None]] | None
    drop_reason: str | None
    where: str               # "record <index> (id '<id>')" for error messages
    offset: int = 0          # character offset of the record in the file (progress)


def _parse_truth(value, n_pairs: int, where: str):
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != n_pairs:
        raise BadInput(f"{where}: 'vlmdyn_truth' must be a list with one entry per QA turn ({n_pairs})")
    out = []
    for i, t in enumerate(value):
        if not isinstance(t, dict) or not isinstance(t.get("category"), str):
            raise BadInput(f"{where}: 'vlmdyn_truth' entry {i} needs a 'category' string")
        sub = t.get("subcategory")
        if sub is not None and not isinstance(sub, str):
            raise BadInput(f"{where}: 'vlmdyn_truth' entry {i}: 'subcategory' must be a string or null")
        out.append((t["category"], sub))
    return out


def parse_record(raw: RawRecord) -> _Conv:
    """Validate one record and split it into QA pairs (no file access)."""
    rec = raw.data
    rid = rec.get("id")
    where = f"record {raw.index} (id {rid!r})" if rid is not None else f"record {raw.index} (no id)"
    if rid is not None and not isinstance(rid, (str, int)):
        raise BadInput(f"{where}: 'id' must be a string")
    if "conversations" not in rec:
        raise BadInput(f"{where}: missing 'conversations'")
    image = rec.get("image")
    if image is not None:
        image = img.check_relative(image, where=where)
    pairs = split_turns(rec["conversations"], where=where, has_image=image is not None)
    truth = _parse_truth(rec.get("vlmdyn_truth"), len(pairs), where)
    source = rec.get("source")
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise BadInput(f"{where}: 'source' must be a non-empty string")
    return _Conv(
        index=raw.index,
        source_id=None if rid is None else str(rid),
        source=source.strip() if source else infer_source(image),
        image_path=image,
        pairs=pairs,
        truth=truth,
        drop_reason=dependent_reason(pairs),
        where=where,
        offset=raw.offset,
    )


# ---------------------------------------------------------------- the writer

class _Writer:
    """Batched inserts inside the caller's transaction; owns the path -> image id map."""

    def __init__(self, db, dataset_id: int, hasher: img.ImageHasher | None):
        self.db, self.conn, self.dataset_id, self.hasher = db, db.conn, dataset_id, hasher
        self.image_ids: dict[str, int] = {}        # relative path -> images.id (this import)
        self.next_conv_id = ds_rows.next_id(db.conn, "conversations")
        self.n_new_images = 0
        self.n_qa = 0

    def submit_images(self, batch: list[_Conv]):
        """Start hashing the images of a batch that this import has not seen yet."""
        seen, todo = set(), []
        for c in batch:
            p = c.image_path
            if p is not None and p not in self.image_ids and p not in seen:
                seen.add(p)
                todo.append((p, c.where))
        if self.hasher is None:
            return {p: img.path_key(p) for p, _ in todo}
        return self.hasher.submit_many(todo)

    def write(self, batch: list[_Conv], pending) -> None:
        infos = pending if isinstance(pending, dict) else self.hasher.collect(pending)
        self._insert_images(infos)
        convs, qas = [], []
        for c in batch:
            cid = self.next_conv_id
            self.next_conv_id += 1
            image_id = self.image_ids.get(c.image_path) if c.image_path else None
            kept = c.drop_reason is None
            convs.append(ds_rows.ConversationRow(self.dataset_id, c.index, len(c.pairs), c.source_id, c.source,
                                                 image_id, c.image_path, int(kept), c.drop_reason, cid))
            if kept:
                for t, (q, a) in enumerate(c.pairs):
                    tc, ts = c.truth[t] if c.truth else (None, None)
                    qas.append(ds_rows.QaRow(self.dataset_id, cid, t, q, a, image_id, true_category=tc,
                                             true_subcategory=ts))
        ds_rows.add_conversations(self.conn, convs)
        ds_rows.add_qa_pairs(self.conn, qas)
        self.n_qa += len(qas)

    def _insert_images(self, infos: dict[str, img.ImageInfo]) -> None:
        if not infos:
            return
        self.n_new_images += ds_rows.add_images(
            self.conn, [ds_rows.ImageRow(i.sha256, p, i.width, i.height, i.n_bytes) for p, i in infos.items()])
        ids = ds_rows.image_ids(self.conn, (i.sha256 for i in infos.values()))
        for p, i in infos.items():
            self.image_ids[p] = ids[i.sha256]


class _AlreadyImported(Exception):
    def __init__(self, dataset_id: int, name: str):
        super().__init__(name)
        self.dataset_id, self.name = dataset_id, name


class _BulkFts:
    """Fill the QA full-text index in one statement at the end instead of row by row.

    The ``qa_pairs_ai`` trigger indexes each inserted row separately, which
    made it two thirds of the import time; one INSERT ... SELECT over the
    dataset's rows is about nine times faster. The trigger is dropped and
    re-created from its stored SQL inside the import transaction, so a
    rollback (or a crash) restores it with everything else.
    """

    TRIGGER = "qa_pairs_ai"

    def __init__(self, db):
        self.db = db
        row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                         [self.TRIGGER]).fetchone()
        self.sql = row[0] if row else None
        if self.sql:
            db.execute(f'DROP TRIGGER "{self.TRIGGER}"')

    def finish(self, dataset_id: int) -> None:
        if self.sql:
            self.db.execute("INSERT INTO qa_pairs_fts(rowid, question, answer) "
                            "SELECT id, question, answer FROM qa_pairs WHERE dataset_id = ?", [dataset_id])
            self.db.execute(self.sql)


# ---------------------------------------------------------------- the entry point

def import_dataset(db, json_path, images_dir=None, name: str | None = None,
                   reporter: Reporter = NullReporter(), workers: int | None = None,
                   hash_images: bool = True) -> ImportResult:
    """Import a LLaVA-format JSON file as dataset ``name`` (default: the file's stem).

    ``images_dir`` is the image root the records' paths are relative to
    (default: the JSON file's folder). With ``hash_images=False`` image files
    are not read at all and each distinct path is one image (key
    ``path:<sha256 of the path>``). Returns counts; raises BadInput with the
    database unchanged on any bad record, image or name clash.
    """
    json_path = input_file(json_path, "dataset file")
    root = Path(images_dir) if images_dir is not None else json_path.parent
    if hash_images and not root.is_dir():
        raise BadInput(f"image root {root} is not a directory (pass --images DIR, or --no-images)")
    name = check_name(json_path.stem if name is None else name, "--name")
    t0 = time.monotonic()
    sha = file_sha256(json_path, reporter)

    done = db.execute("SELECT id, name FROM datasets WHERE source_sha256 = ?", [sha]).fetchone()
    if done:
        return _existing_result(db, done[0], done[1], sha)
    clash = db.execute("SELECT source_path FROM datasets WHERE name = ?", [name]).fetchone()
    if clash:
        raise BadInput(f"a dataset named '{name}' already exists (imported from {clash[0]}, different "
                       f"content); choose another --name")

    hasher = img.ImageHasher(root, workers) if hash_images else None
    dropped: Counter = Counter()
    sources: Counter = Counter()
    n_conv = n_kept = 0
    size = max(json_path.stat().st_size, 1)
    try:
        with reporter.task(f"importing {name}", unit="conversations") as task, immediate(db):
            # the checks above ran before this transaction: repeat the content check under the write lock
            # (before the insert, whose name may clash with a concurrent import of the same file)
            twin = db.execute("SELECT id, name FROM datasets WHERE source_sha256 = ?", [sha]).fetchone()
            if twin:
                raise _AlreadyImported(twin[0], twin[1])
            dataset_id = ds_rows.create_dataset(db.conn, name, str(json_path.resolve()), sha, str(root.resolve()))
            fts = _BulkFts(db)
            writer = _Writer(db, dataset_id, hasher)
            batch: list[_Conv] = []
            prev: tuple[list[_Conv], object] | None = None  # batch whose images are being hashed

            def flush():
                nonlocal prev, batch
                pending = writer.submit_images(batch)
                if prev is not None:
                    writer.write(*prev)
                    task.advance(len(prev[0]), file=f"{min(100, 100 * prev[0][-1].offset // size)}%")
                prev, batch = (batch, pending), []

            for raw in iter_records(json_path):
                try:
                    c = parse_record(raw)
                except BadInput:
                    # an image of an earlier record may be the first error: check those first
                    if prev is not None:
                        writer.write(*prev)
                    writer.write(batch, writer.submit_images(batch))
                    raise
                batch.append(c)
                n_conv += 1
                sources[c.source] += 1
                if c.drop_reason is None:
                    n_kept += 1
                else:
                    dropped[c.drop_reason.split(":", 1)[0]] += 1
                if len(batch) >= BATCH:
                    flush()
            flush()
            if prev is not None and prev[0]:
                writer.write(*prev)
                task.advance(len(prev[0]))
            task.advance(0, file="100%")
            fts.finish(dataset_id)
            n_images = db.execute("SELECT COUNT(DISTINCT image_id) FROM conversations WHERE dataset_id = ?",
                                  [dataset_id]).fetchone()[0]
            seconds = time.monotonic() - t0
            meta = {"image_identity": "sha256" if hash_images else "path", "filter": FILTER_VERSION,
                    "dropped_by_reason": dict(dropped), "by_source": dict(sources),
                    "seconds": round(seconds, 3)}
            ds_rows.set_counts(db.conn, dataset_id, n_conv, n_kept, writer.n_qa, meta)
    except _AlreadyImported as twin:   # a concurrent import of the same content committed first
        return _existing_result(db, twin.dataset_id, twin.name, sha)
    except sqlite3.IntegrityError as exc:
        if "datasets.name" in str(exc):
            raise BadInput(f"a dataset named '{name}' already exists; choose another --name") from None
        raise
    finally:
        if hasher is not None:
            hasher.close()
    return ImportResult(
        dataset_id=dataset_id, name=name, source_sha256=sha, n_conversations=n_conv, n_kept=n_kept,
        n_dropped=n_conv - n_kept, dropped_by_reason=dict(dropped), n_qa=writer.n_qa, n_images=n_images,
        n_new_images=writer.n_new_images, image_identity="sha256" if hash_images else "path",
        by_source=dict(sources), seconds=round(seconds, 3),
        conversations_per_s=round(n_conv / seconds, 1) if seconds > 0 else 0.0,
    )


def _existing_result(db, dataset_id: int, name: str, sha: str) -> ImportResult:
    row = db.execute("SELECT n_conversations, n_kept, n_qa, meta_json FROM datasets WHERE id = ?",
                     [dataset_id]).fetchone()
    meta = json.loads(row[3] or "{}")
    n_images = db.execute("SELECT COUNT(DISTINCT image_id) FROM conversations WHERE dataset_id = ?",
                          [dataset_id]).fetchone()[0]
    return ImportResult(
        dataset_id=dataset_id, name=name, source_sha256=sha, already_imported=True,
        n_conversations=row[0], n_kept=row[1], n_dropped=row[0] - row[1],
        dropped_by_reason=meta.get("dropped_by_reason", {}), n_qa=row[2], n_images=n_images,
        image_identity=meta.get("image_identity", "sha256"), by_source=meta.get("by_source", {}),
    )
