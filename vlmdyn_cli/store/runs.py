"""Reading training runs: look one up by name, list them all, their saved checkpoints.

A run is looked up by name in exactly one way, ``get_run`` (``find_run`` when
a missing run is not an error, e.g. before creating it), and always comes back
as a ``Run``. Writing runs (create, status, order manifest, metrics) is the
trainer's business: ``training/runs.py``.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass

from vlmdyn_cli.errors import BadInput, did_you_mean

_COLUMNS = ("id", "name", "dataset_id", "seed", "model_id", "config_json", "out_dir", "status", "total_steps",
            "global_batch", "checkpoint_steps_json", "init_from", "created_at", "finished_at", "train_seconds",
            "samples_per_s", "pid", "host")
_NAMES_LISTED = 20  # runs named in the "unknown run" message


@dataclass(frozen=True)
class Run:
    """One row of ``runs`` (columns in README's schema section)."""

    id: int
    name: str
    dataset_id: int
    seed: int
    model_id: str
    config_json: str                   # the full resolved training config
    out_dir: str
    status: str                        # created, running, done, failed, interrupted
    total_steps: int
    global_batch: int
    checkpoint_steps: tuple[int, ...]  # the schedule the run was configured with
    init_from: str | None
    created_at: str
    finished_at: str | None
    train_seconds: float | None
    samples_per_s: float | None
    pid: int | None = None             # the process that last started or resumed it
    host: str | None = None            # and its host

    @property
    def process_gone(self) -> bool:
        """Marked running, but its process (on this host) no longer exists: killed (kill -9, power)."""
        return process_gone(self.status, self.pid, self.host)

    @property
    def eval_steps(self) -> list[int]:
        """Default checkpoints to build Seen@k sets for: the schedule without step 0 and
        without the end-of-epoch step (nothing is trained after it, so an unseen set
        could only come from data the run never trains on)."""
        return sorted(k for k in self.checkpoint_steps if 0 < k < self.total_steps)


def find_run(db, name: str) -> Run | None:
    """The run called ``name``, or None. ``db``: a sqlite_utils Database or a sqlite3 connection."""
    row = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM runs WHERE name = ?", [name]).fetchone()
    if row is None:
        return None
    d = dict(zip(_COLUMNS, row))
    d["checkpoint_steps"] = tuple(int(s) for s in json.loads(d.pop("checkpoint_steps_json") or "[]"))
    return Run(**d)


def get_run(db, name: str) -> Run:
    """The run called ``name``; BadInput naming it, the closest name and the runs there are."""
    run = find_run(db, name)
    if run is not None:
        return run
    raise unknown_run(name, [r[0] for r in db.execute("SELECT name FROM runs ORDER BY id")])


def unknown_run(name: str, names: list[str]) -> BadInput:
    """The error for a run name that is not in ``names`` (every run of the database)."""
    if not names:
        return BadInput(f"unknown run '{name}'; this database has no runs yet (train one with `vlmdyn train`)")
    listed = ", ".join(names[:_NAMES_LISTED]) + (f", ... ({len(names)} runs)" if len(names) > _NAMES_LISTED else "")
    return BadInput(f"unknown run '{name}'{did_you_mean(name, names)}; runs: {listed}")


def checkpoints(db, run_id: int) -> dict[int, str]:
    """step -> folder path of every checkpoint the run has saved, in step order."""
    return {s: p for s, p in db.execute(
        "SELECT step, path FROM checkpoints WHERE run_id = ? ORDER BY step", [run_id]).fetchall()}


def process_gone(status: str, pid: int | None, host: str | None) -> bool:
    """A ``running`` run whose recorded process is not alive on this host (other hosts: unknown, False)."""
    if status != "running" or pid is None or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:    # alive, another user's
        return False
    return False


_LIST_KEYS = ("id", "name", "dataset", "seed", "model_id", "status", "total_steps", "global_batch", "steps_done",
              "n_checkpoints", "checkpoint_steps", "n_sets", "samples_per_s", "train_seconds", "init_from",
              "created_at", "finished_at", "pid", "host")


def list_runs(db) -> list[dict]:
    """Every run with its progress, checkpoints and number of evaluation sets, oldest first
    (``vlmdyn runs list`` and the TUI overview). A run marked running whose process on this host
    is gone is listed as interrupted (``pid`` and ``host`` say which process it was)."""
    rows = db.execute(
        "SELECT r.id, r.name, d.name, r.seed, r.model_id, r.status, r.total_steps, r.global_batch,"
        " (SELECT MAX(step) FROM metrics m WHERE m.run_id = r.id),"
        " (SELECT COUNT(*) FROM checkpoints c WHERE c.run_id = r.id),"
        " (SELECT group_concat(step, ',') FROM (SELECT step FROM checkpoints c WHERE c.run_id = r.id ORDER BY step)),"
        " (SELECT COUNT(*) FROM eval_sets s WHERE s.run_id = r.id),"
        " r.samples_per_s, r.train_seconds, r.init_from, r.created_at, r.finished_at, r.pid, r.host"
        " FROM runs r LEFT JOIN datasets d ON d.id = r.dataset_id ORDER BY r.id").fetchall()
    out = []
    for r in rows:
        d = dict(zip(_LIST_KEYS, r))
        d["steps_done"] = d["steps_done"] or 0
        if process_gone(d["status"], d["pid"], d["host"]):   # shown, not written: listing never writes
            d["status"] = "interrupted"
        d["checkpoint_steps"] = [int(s) for s in d["checkpoint_steps"].split(",")] if d["checkpoint_steps"] else []
        out.append(d)
    return out
