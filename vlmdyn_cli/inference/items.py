"""The QA pairs to answer: question, reference answer and the image file, by qa id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.models import chat


@dataclass(frozen=True)
class GenItem:
    qa_id: int
    question: str
    answer: str
    image_path: str | None          # absolute path, None for a text-only pair

    @property
    def prompt(self) -> str:
        """Exactly the prompt format the model was trained with."""
        return chat.prompt_for(self.question, self.image_path is not None)


def load_items(db: Database, qa_ids: list[int]) -> list[GenItem]:
    """Items for the given ids (in id order); the image is image_root / conversation.image_path."""
    conn = db.conn
    conn.execute("DROP TABLE IF EXISTS temp._vlmdyn_want")
    conn.execute("CREATE TEMP TABLE _vlmdyn_want (qa_id INTEGER PRIMARY KEY)")
    try:
        conn.executemany("INSERT INTO temp._vlmdyn_want VALUES (?)", [(i,) for i in qa_ids])
        rows = conn.execute(
            """
            SELECT q.id, q.question, q.answer, COALESCE(q.image_id, c.image_id),
                   d.image_root, COALESCE(c.image_path, i.path)
            FROM temp._vlmdyn_want w JOIN qa_pairs q ON q.id = w.qa_id
            JOIN conversations c ON c.id = q.conversation_id
            JOIN datasets d ON d.id = c.dataset_id
            LEFT JOIN images i ON i.id = COALESCE(q.image_id, c.image_id)
            ORDER BY q.id
            """
        ).fetchall()
    finally:
        conn.execute("DROP TABLE IF EXISTS temp._vlmdyn_want")
    items = []
    for qa, q, a, image_id, root, rel in rows:
        path = None
        if image_id is not None:
            if rel is None:
                raise BadInput(f"QA pair {qa} has image {image_id} but no image path is recorded")
            p = Path(rel)
            path = str(p if p.is_absolute() or not root else Path(root) / p)
        items.append(GenItem(qa, q, a, path))
    return items


def check_images(items: list[GenItem]) -> None:
    """BadInput naming the first missing image files, before any work starts."""
    seen: dict[str, bool] = {}
    missing = []
    for it in items:
        if it.image_path is None:
            continue
        if it.image_path not in seen:
            seen[it.image_path] = Path(it.image_path).is_file()
        if not seen[it.image_path]:
            missing.append(it)
    if missing:
        first = ", ".join(f"qa {it.qa_id}: {it.image_path}" for it in missing[:3])
        raise BadInput(f"{len(missing)} QA pairs point at image files that do not exist ({first}"
                       f"{', ...' if len(missing) > 3 else ''}); was the image folder moved since "
                       f"`vlmdyn data import`?")


def open_image(path: str):
    """A PIL RGB image; BadInput naming the file when it cannot be read or is too large."""
    from vlmdyn_cli.data.images import open_checked

    try:
        with open_checked(path, f"image {path}") as im:
            return im.convert("RGB")
    except OSError as exc:
        raise BadInput(f"image {path} cannot be read: {exc}") from exc


def batches(items: list[GenItem], size: int) -> list[list[GenItem]]:
    """Batches of similar prompt length (less padding), image and text-only pairs apart."""
    ordered = sorted(items, key=lambda it: (it.image_path is None, len(it.prompt.split()), it.qa_id))
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]
