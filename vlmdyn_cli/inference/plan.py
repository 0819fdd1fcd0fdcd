"""What `vlmdyn infer` will do: which sets, which checkpoints, which QA pairs.

Everything is checked before any model is loaded: unknown or foreign set
names, missing checkpoint rows or folders, missing image files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from vlmdyn_cli.errors import BadInput, did_you_mean
from vlmdyn_cli.store.runs import Run, checkpoints


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


@dataclass(frozen=True)
class SetRef:
    id: int
    name: str
    kind: str
    k_step: int | None
    after_step: int | None


def resolve_sets(db: Database, run: Run, names: list[str] | None) -> list[SetRef]:
    """The run's sets by name (None = all of them)."""
    rows = db.execute("SELECT id, name, kind, k_step, definition_json FROM eval_sets WHERE run_id = ? "
                      "ORDER BY kind, k_step, name", [run.id]).fetchall()
    have = {r[1]: SetRef(r[0], r[1], r[2], r[3], json.loads(r[4]).get("after_step")) for r in rows}
    if not have:
        raise BadInput(f"run '{run.name}' has no evaluation sets: build them with "
                       f"`vlmdyn sets build --run {run.name}`")
    if names is None:
        return list(have.values())
    out = []
    for n in names:
        if n in have:
            out.append(have[n])
            continue
        others = [r[0] for r in db.execute(
            "SELECT r.name FROM eval_sets s JOIN runs r ON r.id = s.run_id WHERE s.name = ?", [n])]
        if others:
            raise BadInput(f"set '{n}' was built for run {', '.join(others)}, not for run '{run.name}': "
                           f"build it with `vlmdyn sets build --run {run.name}`")
        raise BadInput(f"run '{run.name}' has no set '{n}'{did_you_mean(n, have)}; its sets: "
                       f"{', '.join(have)}")
    return out


def checkpoint_folder(run: Run, step: int, path: str) -> str:
    """The checkpoint folder (relative paths are tried against the run's out_dir); BadInput if unusable."""
    from vlmdyn_cli.models.checkpoint import read_meta

    p = Path(path)
    if not p.is_absolute() and not p.exists() and run.out_dir:
        p = Path(run.out_dir) / p
    if not p.is_dir():
        raise BadInput(f"run '{run.name}' step {step}: checkpoint folder {p} does not exist "
                       f"(moved or deleted? the checkpoints table records where training saved it)")
    read_meta(p)    # BadInput when config.json is missing or vlmdyn.json is corrupt
    if not any((p / f).is_file() for f in WEIGHT_FILES):
        raise BadInput(f"run '{run.name}' step {step}: checkpoint folder {p} has no weights "
                       f"({' or '.join(WEIGHT_FILES)}); was it saved completely?")
    return str(p)


def resolve_checkpoints(db: Database, run: Run, steps: list[int] | None,
                        sets: list[SetRef]) -> list[tuple[int, str]]:
    """[(step, folder)] to evaluate. None = every saved checkpoint up to the unseen sets' step."""
    saved = checkpoints(db, run.id)
    if not saved:
        raise BadInput(f"run '{run.name}' has no saved checkpoints yet (train it with `vlmdyn train`)")
    if steps is None:
        limits = [s.after_step for s in sets if s.kind == "unseen" and s.after_step is not None]
        chosen = [k for k in saved if not limits or k <= min(limits)]
    else:
        missing = [k for k in steps if k not in saved]
        if missing:
            raise BadInput(f"run '{run.name}' has no checkpoint at step {', '.join(map(str, missing))}; "
                           f"saved steps: {', '.join(map(str, saved))}")
        chosen = sorted(steps)
    return [(k, checkpoint_folder(run, k, saved[k])) for k in chosen]


def unseen_warnings(steps: list[int], sets: list[SetRef]) -> list[str]:
    """Checkpoints that trained on an unseen set's data: their 'unseen' score is not a validation score."""
    out = []
    for s in sets:
        if s.kind == "unseen" and s.after_step is not None:
            late = [k for k in steps if k > s.after_step]
            if late:
                out.append(f"note: checkpoints {', '.join(map(str, late))} come after step {s.after_step}, "
                           f"so they may have trained on set '{s.name}'")
    return out


def qa_ids_of(db: Database, sets: list[SetRef]) -> list[int]:
    """The distinct QA pairs of the sets: a pair in several sets is generated once."""
    if not sets:
        return []
    marks = ",".join("?" * len(sets))
    return [r[0] for r in db.execute(
        f"SELECT DISTINCT qa_id FROM eval_set_members WHERE set_id IN ({marks}) ORDER BY qa_id",
        [s.id for s in sets])]


@dataclass(frozen=True)
class Plan:
    """Everything `infer` will work on, checked: the run, its sets, the checkpoints, the items."""

    run: Run
    sets: list[SetRef]
    checkpoints: list[tuple[int, str]]       # (step, folder)
    items: list                              # GenItem, every distinct member of the sets
    notes: list[str]

    def split_key(self, gen_config_hash: str) -> dict:
        """What a ``--shard`` split is recorded under (see store/shards.py)."""
        return {"sets": sorted(s.name for s in self.sets), "checkpoints": [k for k, _ in self.checkpoints],
                "gen_config": gen_config_hash}


def make_plan(db: Database, run: Run, set_names: list[str] | None, steps: list[int] | None) -> Plan:
    from vlmdyn_cli.inference.items import check_images, load_items

    sets = resolve_sets(db, run, set_names)
    ckpts = resolve_checkpoints(db, run, steps, sets)
    items = load_items(db, qa_ids_of(db, sets))
    check_images(items)
    return Plan(run, sets, ckpts, items, unseen_warnings([k for k, _ in ckpts], sets))


def pending(db: Database, run_id: int, step: int, items: list, config_hash: str,
            regenerate: bool) -> tuple[list, int]:
    """(items still to answer at ``step``, how many of ``items`` are stored with another config).

    Stored answers count as done whatever config made them, unless ``regenerate``.
    """
    rows = db.execute("SELECT qa_id, gen_config_hash FROM generations WHERE run_id = ? AND step = ?",
                      [run_id, step]).fetchall()
    done_same = {q for q, h in rows if h == config_hash}
    done = done_same if regenerate else {q for q, _ in rows}
    wanted = {it.qa_id for it in items}
    other = len(wanted & ({q for q, _ in rows} - done_same))
    return [it for it in items if it.qa_id not in done], other
