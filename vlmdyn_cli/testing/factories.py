"""Fixture rows through the pipeline's own writers, one function per kind of row.

Every function takes a migrated ``sqlite_utils.Database`` and writes in its own
transaction, or joins the one the caller opened (``with immediate(db):`` around
a whole fixture is one transaction). Timestamps are ``store.db.now()``: wrap a
build in ``fixed_now(stamp)`` for rows that do not depend on the clock.

    with fixed_now("2026-01-01"), immediate(db):
        ds = dataset(db, "toy")
        cid, qa_ids = conversation(db, ds, 0, [qa("What colour?", "red", category="Object")])
        rid = run(db, "r1", ds, total_steps=10, global_batch=4, checkpoint_steps=[5, 10],
                  order=[(cid, 1, 0)], checkpoints={5: "out/5", 10: "out/10"})
"""

from __future__ import annotations

from typing import Iterable, Sequence

from vlmdyn_cli.store import datasets as ds_rows
from vlmdyn_cli.store.db import fixed_now, immediate, now, triple_hash
from vlmdyn_cli.store.judgements import JudgementRow, insert_new, register_spec, upsert
from vlmdyn_cli.store.labels import CalibrationItem, add_items

__all__ = ["fixed_now", "immediate", "dataset", "set_counts", "image", "qa", "conversation", "run", "checkpoint",
           "eval_set", "gen_config", "generations", "judge_spec", "judgements", "JudgementRow",
           "calibration_items", "CalibrationItem"]


# ---------------------------------------------------------------- data (store/datasets.py, as the importer)

def dataset(db, name: str, *, source_path: str | None = None, source_sha256: str | None = None,
            image_root: str | None = None, counts: tuple[int, int, int] | None = None,
            meta: dict | None = None) -> int:
    """A datasets row; ``counts`` = (n_conversations, n_kept, n_qa) when the fixture states them."""
    with immediate(db) as conn:
        ds = ds_rows.create_dataset(conn, name, source_path or f"/data/{name}.json",
                                    source_sha256 or f"sha-{name}", image_root)
        if counts is not None or meta is not None:
            ds_rows.set_counts(conn, ds, *(counts or (0, 0, 0)), meta)
    return ds


def set_counts(db, dataset_id: int, n_conversations: int, n_kept: int, n_qa: int, meta: dict | None = None):
    with immediate(db) as conn:
        ds_rows.set_counts(conn, dataset_id, n_conversations, n_kept, n_qa, meta)


def image(db, sha256: str, path: str, width: int | None = None, height: int | None = None,
          n_bytes: int | None = None) -> int:
    """An images row (the same hash twice is one image, as in an import); returns its id."""
    with immediate(db) as conn:
        ds_rows.add_images(conn, [ds_rows.ImageRow(sha256, path, width, height, n_bytes)])
        return ds_rows.image_ids(conn, [sha256])[sha256]


def qa(question: str, answer: str, **fields) -> dict:
    """One turn of ``conversation``: question, answer and any other qa_pairs column
    (category, subcategory, category_method, true_category...)."""
    return {"question": question, "answer": answer, **fields}


def conversation(db, dataset_id: int, idx: int, turns: Sequence[dict], *, n_turns: int | None = None,
                 source_id: str | None = None, source: str | None = None, image_id: int | None = None,
                 image_path: str | None = None, kept: int = 1, drop_reason: str | None = None
                 ) -> tuple[int, list[int]]:
    """A conversation and its QA pairs (``turns`` from ``qa``, sharing the conversation's image);
    returns (conversation id, qa ids in turn order)."""
    with immediate(db) as conn:
        cid = ds_rows.next_id(conn, "conversations")
        ds_rows.add_conversations(conn, [ds_rows.ConversationRow(
            dataset_id, idx, len(turns) if n_turns is None else n_turns, source_id, source, image_id, image_path,
            kept, drop_reason, cid)])
        first = ds_rows.next_id(conn, "qa_pairs")
        ds_rows.add_qa_pairs(conn, [ds_rows.QaRow(dataset_id=dataset_id, conversation_id=cid, turn=t,
                                                  image_id=image_id, id=first + t, **fields)
                                    for t, fields in enumerate(turns)])
    return cid, [first + t for t in range(len(turns))]


# ---------------------------------------------------------------- training (training/runs.py, as the trainer)

def run(db, name: str, dataset_id: int, *, total_steps: int, global_batch: int, checkpoint_steps: Sequence[int],
        seed: int = 0, model_id: str = "tiny", cfg: dict | None = None, out_dir: str = "out",
        status: str = "done", order: Iterable[tuple[int, int, int]] = (), metrics: Iterable[tuple] = (),
        checkpoints: dict[int, str] | None = None, **finished) -> int:
    """A run as the trainer records it: the runs row, its order manifest (conversation, step,
    position), metrics (step, loss, lr, samples/s, tokens/s, time), checkpoint rows (step -> path),
    then its status (and ``finished`` columns: finished_at, train_seconds, samples_per_s)."""
    from vlmdyn_cli.training import runs

    with immediate(db):
        rid = runs.create_run(db, name=name, dataset_id=dataset_id, seed=seed, model_id=model_id, cfg=cfg or {},
                              out_dir=out_dir, total_steps=total_steps, global_batch=global_batch,
                              checkpoint_steps=list(checkpoint_steps), init_from=None)
        runs.write_progress(db, rid, list(order), list(metrics))
        for step, path in (checkpoints or {}).items():
            checkpoint(db, rid, step, path)
        runs.set_status(db, rid, status, **finished)
    return rid


def checkpoint(db, run_id: int, step: int, path: str) -> None:
    """A saved checkpoint's row (a step already recorded gets the new path)."""
    from vlmdyn_cli.training import runs

    runs.write_progress(db, run_id, [], [], (step, path))


# ---------------------------------------------------------------- eval sets (evalsets/build.py)

def eval_set(db, run_id: int, name: str, kind: str, qa_ids: Sequence[int], *, k_step: int | None = None,
             dedup: str | None = None, seed: int = 0, definition: dict | None = None) -> int:
    """A set with its members (rank = position in ``qa_ids``); returns its id."""
    from vlmdyn_cli.evalsets.build import SetSpec, insert_set

    spec = SetSpec(name, kind, len(qa_ids), k_step=k_step, dedup=dedup, seed=seed, definition=definition or {})
    with immediate(db) as conn:
        return insert_set(conn, run_id, spec, list(qa_ids))


# ---------------------------------------------------------------- generations (inference/store.py)

def gen_config(db, cfg=None) -> str:
    """The generation config's row (default: greedy defaults); returns its hash."""
    from vlmdyn_cli.inference.config import GenConfig
    from vlmdyn_cli.inference.store import save_config

    return save_config(db, cfg or GenConfig())


def generations(db, run_id: int, step: int, items: Sequence[tuple[int, str, str]], predictions: Sequence[str],
                *, config_hash: str, backend: str = "hf") -> list[str]:
    """Predictions for (qa_id, question, answer) items at one checkpoint, with their triples, as
    ``vlmdyn infer`` stores a batch; returns the triple hashes."""
    from vlmdyn_cli.inference.items import GenItem
    from vlmdyn_cli.inference.store import write_batch

    write_batch(db, run_id, step, [GenItem(i, q, a, None) for i, q, a in items], list(predictions), config_hash,
                backend)
    return [triple_hash(q, a, p) for (_, q, a), p in zip(items, predictions)]


# ---------------------------------------------------------------- judging (store/judgements.py)

def judge_spec(db, spec_hash: str, name: str, record: dict | None = None) -> str:
    with immediate(db):
        register_spec(db, spec_hash, name, record or {}, now())
    return spec_hash


def judgements(db, rows: Sequence[JudgementRow], *, keep_first: bool = False) -> int:
    """Judgement rows as the judge runner writes them (a stored (spec, triple) is replaced), or with
    ``keep_first`` as a bulk load keeps the first; returns the rows given (added with keep_first)."""
    if keep_first:
        with immediate(db):
            return insert_new(db, rows)
    upsert(db, list(rows))
    return len(rows)


# ---------------------------------------------------------------- calibration samples (store/labels.py)

def calibration_items(db, items: Iterable[CalibrationItem]) -> None:
    with immediate(db) as conn:
        add_items(conn, items)
