"""Training examples from the database, tokenised once.

A conversation becomes one training sequence: the text of
``chat.render_conversation`` tokenised in one call (offsets give each
token's role: template, question or answer), the single ``<image>`` token
expanded to the model's image-token count, and labels that keep only the
roles the loss is on. Everything is computed once, before the first step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.models import chat

IGNORE = -100
LOSS_ROLES = {"answer": ("answer",), "instruction+answer": ("answer", "question")}


@dataclass
class Conversation:
    id: int
    turns: list[tuple[str, str]]
    image: str | None          # absolute path or None


def resolve_dataset(db, name: str) -> dict:
    rows = list(db.query("SELECT id, name, image_root, n_kept FROM datasets ORDER BY id"))
    if not rows:
        raise BadInput("the database has no dataset: run `vlmdyn data import` or `vlmdyn data synth` first")
    if not name:
        if len(rows) > 1:
            raise BadInput("the database holds several datasets; choose one with [data] dataset or --dataset: "
                           + ", ".join(r["name"] for r in rows))
        return rows[0]
    for r in rows:
        if r["name"] == name:
            return r
    from vlmdyn_cli.errors import did_you_mean

    raise BadInput(f"no dataset named '{name}'{did_you_mean(name, [r['name'] for r in rows])}; "
                   f"datasets: {', '.join(r['name'] for r in rows)}")


def resolve_datasets(db, spec: str | tuple[str, ...] | list[str]) -> list[dict]:
    """The dataset rows of ``[data] dataset``: one name ("" = the only one) or a list of names (a mix)."""
    if isinstance(spec, str):
        return [resolve_dataset(db, spec)]
    if not spec:
        raise BadInput("[data] dataset is an empty list: name at least one dataset")
    repeated = sorted({n for n in spec if list(spec).count(n) > 1})
    if repeated:
        raise BadInput(f"[data] dataset names {', '.join(repeated)} more than once")
    if "" in spec:
        raise BadInput("[data] dataset: a list must name every dataset (\"\" is not a name)")
    return [resolve_dataset(db, n) for n in spec]


def load_mix(db, datasets: list[dict]) -> list[Conversation]:
    """The conversations of every dataset of a mix, dataset by dataset (see ``load_conversations``)."""
    return [c for ds in datasets for c in load_conversations(db, ds)]


def load_conversations(db, dataset: dict) -> list[Conversation]:
    """Kept conversations of the dataset, ordered by id, with their QA turns."""
    root = Path(dataset["image_root"] or ".")
    convs: dict[int, Conversation] = {}
    for cid, image_path in db.execute(
            "SELECT id, image_path FROM conversations WHERE dataset_id=? AND kept=1 ORDER BY id",
            [dataset["id"]]).fetchall():
        convs[cid] = Conversation(cid, [], str(root / image_path) if image_path else None)
    for cid, q, a in db.execute(
            "SELECT q.conversation_id, q.question, q.answer FROM qa_pairs q JOIN conversations c "
            "ON c.id = q.conversation_id WHERE c.dataset_id=? AND c.kept=1 ORDER BY q.conversation_id, q.turn",
            [dataset["id"]]).fetchall():
        convs[cid].turns.append((q, a))
    out = [c for c in convs.values() if c.turns]
    if not out:
        raise BadInput(f"dataset '{dataset['name']}' has no kept conversations with QA pairs: nothing to train on")
    missing = [c.image for c in out if c.image and not Path(c.image).is_file()]
    if missing:
        raise BadInput(f"{len(missing)} image file(s) of dataset '{dataset['name']}' are missing, e.g. {missing[0]} "
                       f"(image_root is {dataset['image_root']!r})")
    return out


def sample_conversations(convs: list[Conversation], n: int, seed: int, dataset: str) -> list[Conversation]:
    """``[data] sample``: a seeded random subset of ``n`` conversations (in id order); 0 = all of them."""
    if not n:
        return convs
    if n > len(convs):
        raise BadInput(f"[data] sample = {n}, but dataset '{dataset}' has only {len(convs)} kept conversations")
    keep = np.sort(np.random.default_rng(seed).choice(len(convs), size=n, replace=False))
    return [convs[i] for i in keep]


def conversation_text(conv: Conversation) -> tuple[str, list[tuple[int, int, str]]]:
    """The training string and its (start, end, role) character spans."""
    pieces = chat.render_conversation(conv.turns, conv.image is not None)
    spans, pos = [], 0
    for seg, role in pieces:
        spans.append((pos, pos + len(seg), role))
        pos += len(seg)
    return "".join(seg for seg, _ in pieces), spans


@dataclass
class Encoded:
    """Pre-tokenised training sequences (ragged, as int32 arrays)."""

    ids: list[np.ndarray]
    labels: list[np.ndarray]
    n_truncated: int              # conversations cut to max_length


ROLE_CODE = {"template": 0, "question": 1, "answer": 2}


def encode_all(convs: list[Conversation], tokenizer, n_image_tokens: int, loss: str,
               max_length: int, chunk: int = 2048) -> Encoded:
    image_id = tokenizer.convert_tokens_to_ids(chat.IMAGE_TOKEN)
    keep = {ROLE_CODE[r] for r in LOSS_ROLES[loss]}
    ids_out, labels_out, n_trunc = [], [], 0
    for start in range(0, len(convs), chunk):
        part = convs[start:start + chunk]
        texts, spans = zip(*(conversation_text(c) for c in part))
        enc = tokenizer(list(texts), return_offsets_mapping=True, add_special_tokens=True)
        for ids, offsets, sp in zip(enc["input_ids"], enc["offset_mapping"], spans):
            role_of_char = np.zeros(sp[-1][1] + 1, dtype=np.int8)
            for a, b, role in sp:
                role_of_char[a:b] = ROLE_CODE[role]
            ids = np.asarray(ids, dtype=np.int64)
            ends = np.asarray([e for _, e in offsets], dtype=np.int64)
            empty = np.asarray([s == e for s, e in offsets])
            roles = np.where(empty, 0, role_of_char[np.maximum(ends - 1, 0)]).astype(np.int8)
            roles[ids == image_id] = 0
            where = np.flatnonzero(ids == image_id)
            if len(where):
                k = where[0]
                ids = np.concatenate([ids[:k], np.full(n_image_tokens, image_id), ids[k + 1:]])
                roles = np.concatenate([roles[:k], np.zeros(n_image_tokens, np.int8), roles[k + 1:]])
            if len(ids) > max_length:
                ids, roles = ids[:max_length], roles[:max_length]
                n_trunc += 1
            labels = np.where(np.isin(roles, list(keep)), ids, IGNORE)
            ids_out.append(ids.astype(np.int32))
            labels_out.append(labels.astype(np.int32))
    return Encoded(ids_out, labels_out, n_trunc)
