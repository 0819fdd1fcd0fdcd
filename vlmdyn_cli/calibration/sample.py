"""Drawing items for a human study and writing the rater sheet."""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from pathlib import Path

from sqlite_utils import Database

from vlmdyn_cli.atomic import replaced
from vlmdyn_cli.calibration.labels import SHEET_COLUMNS, sheet_cell
from vlmdyn_cli.errors import BadInput, did_you_mean
from vlmdyn_cli.jsonl import input_file, lines, parse_object
from vlmdyn_cli.names import check_file_name
from vlmdyn_cli.store.db import immediate, upsert_triples
from vlmdyn_cli.store.labels import CalibrationItem, add_items
from vlmdyn_cli.store.runs import get_run


def _candidates_from_run(db: Database, run: str) -> list[dict]:
    run_id = get_run(db, run).id
    rows = db.execute(
        """SELECT g.triple_hash, q.category, q.subcategory, g.step, g.qa_id
           FROM generations g JOIN qa_pairs q ON q.id = g.qa_id
           WHERE g.run_id = ? ORDER BY g.id""", [run_id]).fetchall()
    if not rows:
        raise BadInput(f"run {run!r} has no generations yet (run `vlmdyn infer --run {run}` first)")
    seen: dict[str, dict] = {}
    for h, cat, sub, step, qa in rows:
        seen.setdefault(h, {"triple_hash": h, "category": cat, "subcategory": sub,
                            "source": f"run:{run}:{step}:{qa}"})
    return list(seen.values())


def _candidates_from_file(db: Database, path: Path) -> list[dict]:
    path = input_file(path, "triples file")
    items, triples = [], []
    for i, line in lines(path):
        obj = parse_object(line, f"{path}: line {i}")
        if obj is None:
            continue
        try:
            q, a, p = obj["question"], obj["answer"], obj["prediction"]
        except KeyError as exc:
            raise BadInput(f"{path}: line {i}: needs a JSON object with question, answer, prediction "
                           f"(no {exc})") from None
        triples.append((str(q), str(a), str(p)))
        items.append({"category": obj.get("category"), "subcategory": obj.get("subcategory"),
                      "source": f"file:{path.name}:{obj.get('id', i)}"})
    with immediate(db):
        hashes = upsert_triples(db, triples)
    uniq: dict[str, dict] = {}
    for h, it in zip(hashes, items):
        uniq.setdefault(h, {**it, "triple_hash": h})
    return list(uniq.values())


def draw(candidates: list[dict], n: int, seed: int, stratify: str | None) -> list[dict]:
    """n items, seeded; with stratify='category' every category gets a near-equal share."""
    rng = random.Random(seed)
    if n <= 0:
        raise BadInput("--n must be positive")
    if len(candidates) < n:
        raise BadInput(f"only {len(candidates)} distinct items are available, fewer than --n {n}")
    if not stratify:
        return rng.sample(candidates, n)
    if stratify != "category":
        raise BadInput(f"--stratify takes 'category', not {stratify!r}")
    groups: dict[str, list[dict]] = defaultdict(list)
    for c in candidates:
        groups[c.get("category") or "(none)"].append(c)
    for g in groups.values():
        rng.shuffle(g)
    # round-robin over categories: equal shares, topped up from larger groups
    order = sorted(groups)
    out: list[dict] = []
    while len(out) < n:
        progressed = False
        for k in order:
            if groups[k] and len(out) < n:
                out.append(groups[k].pop())
                progressed = True
        if not progressed:
            break
    rng.shuffle(out)
    return out


def sample_items(db: Database, n: int, *, run: str | None = None, input_path: Path | None = None,
                 name: str = "default", seed: int = 0, stratify: str | None = None) -> list[dict]:
    """Draw and store a named sample. The same command again (after an interruption, or a failed sheet)
    finds the same draw stored and returns it; another draw under a stored name is BadInput."""
    check_file_name(name, "--name")
    if (run is None) == (input_path is None):
        raise BadInput("give exactly one of --run RUN or --input triples.jsonl")
    cands = _candidates_from_run(db, run) if run else _candidates_from_file(db, input_path)
    chosen = draw(cands, n, seed, stratify)
    for i, it in enumerate(chosen, start=1):
        it["item_id"] = f"{name}-{i:04d}"
    drawn = {it["item_id"]: it["triple_hash"] for it in chosen}
    with immediate(db):              # the check and the write under one lock: two samplers cannot mix
        stored = _stored_items(db, name)
        if stored and stored != drawn:
            raise BadInput(f"sample {name!r} already exists with {len(stored)} items; pick another --name "
                           "or write its sheet again with `vlmdyn calibrate sheet`")
        if not stored:
            add_items(db.conn, [CalibrationItem(name, it["item_id"], it["triple_hash"], it.get("category"),
                                                it.get("subcategory"), it.get("source")) for it in chosen])
    return chosen


def _stored_items(db: Database, name: str) -> dict[str, str]:
    return dict(db.execute("SELECT item_id, triple_hash FROM calibration_items WHERE sample = ?", [name]).fetchall())


def write_sheet(db: Database, sample: str, out: Path) -> int:
    """A CSV rater sheet: one row per item, empty label column (no judge verdicts on it); written whole."""
    rows = db.execute(
        """SELECT c.item_id, c.category, t.question, t.answer, t.prediction
           FROM calibration_items c JOIN triples t ON t.hash = c.triple_hash
           WHERE c.sample = ? ORDER BY c.item_id""", [sample]).fetchall()
    if not rows:
        names = [r[0] for r in db.execute("SELECT DISTINCT sample FROM calibration_items ORDER BY 1")]
        raise BadInput(f"sample {sample!r} has no items{did_you_mean(sample, names)} (samples: "
                       f"{', '.join(names) or 'none yet: draw one with `vlmdyn calibrate sample`'})")
    with replaced(out, "--out") as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(SHEET_COLUMNS)
        for item_id, cat, q, a, p in rows:
            w.writerow([item_id, cat or "", sheet_cell(q), sheet_cell(a), sheet_cell(p), ""])
    return len(rows)
