"""A quick exact-match check of a checkpoint: greedy answers for a sample of QA pairs.

Not the real evaluation (that is `vlmdyn infer` + `vlmdyn judge`): a small,
dependency-free measurement used by the tiny demo tuning, the training
benchmark and tests to see that a model learned something.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path


def normalise(text: str) -> str:
    return " ".join(text.lower().strip().rstrip(".").split())


def sample_qa(db, dataset_id: int, n: int, seed: int = 0, conversation_ids=None) -> list[dict]:
    sql = ("SELECT q.id, q.question, q.answer, COALESCE(q.true_category, q.category) AS category,"
           " COALESCE(q.true_subcategory, q.subcategory) AS subcategory, c.image_path, d.image_root"
           " FROM qa_pairs q JOIN conversations c ON c.id = q.conversation_id JOIN datasets d ON d.id = q.dataset_id"
           " WHERE q.dataset_id = ? AND c.kept = 1")
    rows = list(db.query(sql, [dataset_id]))
    if conversation_ids is not None:
        keep = set(conversation_ids)
        conv = dict(db.execute("SELECT id, conversation_id FROM qa_pairs WHERE dataset_id=?", [dataset_id]).fetchall())
        rows = [r for r in rows if conv[r["id"]] in keep]
    random.Random(seed).shuffle(rows)
    return rows[:n]


def generate_answers(model, processor, items: list[dict], batch_size: int = 32, max_new_tokens: int = 24,
                     blank_images: bool = False) -> list[str]:
    """Greedy answers with the shared chat template (left padding for batched generation).

    ``blank_images`` replaces every picture by a flat grey one: the image-blind
    baseline that "better than chance" is measured against.
    """
    import torch
    from PIL import Image

    from vlmdyn_cli.models import chat

    tok = processor.tokenizer
    tok.padding_side = "left"
    out: list[str] = []
    model.eval()
    for i in range(0, len(items), batch_size):
        chunk = items[i:i + batch_size]
        with_img = [it for it in chunk if it["image_path"]]
        without = [it for it in chunk if not it["image_path"]]
        answers = {}
        for group, has_image in ((with_img, True), (without, False)):
            if not group:
                continue
            prompts = [chat.prompt_for(chat.clean_question(it["question"])[0], has_image) for it in group]
            kwargs = {}
            if has_image:
                images = []
                for it in group:
                    with Image.open(Path(it["image_root"] or ".") / it["image_path"]) as im:
                        img = im.convert("RGB")
                    images.append(Image.new("RGB", img.size, (128, 128, 128)) if blank_images else img)
                kwargs["images"] = images
            enc = processor(text=prompts, return_tensors="pt", padding=True, **kwargs)
            with torch.no_grad():
                gen = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens)
            texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for it, t in zip(group, texts):
                answers[it["id"]] = t.strip()
        out.extend(answers[it["id"]] for it in chunk)
    return out


def exact_match_by_category(items: list[dict], predictions: list[str]) -> dict[str, dict]:
    """{category or category/subcategory: {"n", "correct", "accuracy"}}."""
    acc: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for it, p in zip(items, predictions):
        hit = int(normalise(p) == normalise(it["answer"]))
        keys = ["all", it["category"] or "?"]
        if it.get("subcategory"):
            keys.append(f"{it['category']}/{it['subcategory']}")
        for k in keys:
            acc[k][0] += 1
            acc[k][1] += hit
    return {k: {"n": n, "correct": c, "accuracy": c / n} for k, (n, c) in sorted(acc.items())}


def evaluate_checkpoint(db, path: str, dataset_id: int, n: int = 500, seed: int = 0,
                        blank_images: bool = False) -> dict:
    from vlmdyn_cli.models.checkpoint import load_checkpoint

    model, processor, _ = load_checkpoint(path)
    items = sample_qa(db, dataset_id, n, seed)
    preds = generate_answers(model, processor, items, blank_images=blank_images)
    return exact_match_by_category(items, preds)
