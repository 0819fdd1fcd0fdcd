"""Looking up a training run and its order manifest, with clear errors."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlite_utils import Database

from vlmdyn_cli.errors import BadInput, did_you_mean


@dataclass(frozen=True)
class Run:
    id: int
    name: str
    dataset_id: int
    seed: int
    total_steps: int
    out_dir: str
    checkpoint_steps: tuple[int, ...]   # the schedule the run was configured with

    @property
    def eval_steps(self) -> list[int]:
        """Default checkpoints to build Seen@k sets for: the schedule without step 0 and
        without the end-of-epoch step (nothing is trained after it, so an unseen set
        could only come from data the run never trains on)."""
        return sorted(k for k in self.checkpoint_steps if 0 < k < self.total_steps)


def get_run(db: Database, name: str) -> Run:
    row = db.execute(
        "SELECT id, name, dataset_id, seed, total_steps, out_dir, checkpoint_steps_json "
        "FROM runs WHERE name = ?", [name]
    ).fetchone()
    if row is None:
        names = [r[0] for r in db.execute("SELECT name FROM runs ORDER BY id")]
        known = f"; runs in this database: {', '.join(names)}" if names else \
            "; this database has no runs yet (train one with `vlmdyn train`)"
        raise BadInput(f"unknown run '{name}'{did_you_mean(name, names)}{known}")
    steps = tuple(int(s) for s in json.loads(row[6] or "[]"))
    return Run(row[0], row[1], row[2], row[3], row[4], row[5], steps)


def manifest_steps(db: Database, run: Run) -> tuple[int, int, int]:
    """(conversations in the manifest, first step, last step); BadInput when it is empty."""
    n, lo, hi = db.execute(
        "SELECT count(*), min(step), max(step) FROM run_order WHERE run_id = ?", [run.id]
    ).fetchone()
    if not n:
        raise BadInput(
            f"run '{run.name}' has no order manifest (no run_order rows): train it with "
            f"`vlmdyn train` first; the manifest records which conversation each step consumed"
        )
    return n, lo, hi


def saved_checkpoints(db: Database, run: Run) -> dict[int, str]:
    """step -> folder path, for the checkpoints this run has saved."""
    return {s: p for s, p in db.execute(
        "SELECT step, path FROM checkpoints WHERE run_id = ? ORDER BY step", [run.id])}
