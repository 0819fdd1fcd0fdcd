"""Writing a training run's rows: runs, run_order (manifest), metrics, checkpoints.

Only the main process writes; every write is one transaction, and rows are
keyed so that re-writing a step after a resume replaces instead of duplicating.
Runs are read (looked up by name, listed) through ``store/runs.py``.
"""

from __future__ import annotations

import json
import re

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.names import run_name_part
from vlmdyn_cli.store.db import immediate, now
from vlmdyn_cli.store.runs import Run, checkpoints, get_run


def default_run_name(dataset: str, model_id: str, seed: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model_id.split("/")[-1].split(":")[-1]).strip("-") or "model"
    return f"{run_name_part(dataset)}-{slug}-s{seed}"


def create_run(db, *, name, dataset_id, seed, model_id, cfg, out_dir, total_steps, global_batch,
               checkpoint_steps, init_from) -> int:
    with immediate(db):
        # a second `train` of the same new run may have planned before this one wrote its row
        other = db.execute("SELECT pid, host FROM runs WHERE name = ?", [name]).fetchone()
        if other is not None:
            raise BadInput(f"run '{name}' was created by another process (pid {other[0]} on {other[1]}) while "
                           "this one prepared; it is being trained there: wait for it, or choose another --run")
        cur = db.conn.execute(
            "INSERT INTO runs(name, dataset_id, seed, model_id, config_json, out_dir, status, total_steps,"
            " global_batch, checkpoint_steps_json, init_from, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (name, dataset_id, seed, model_id, json.dumps(cfg, sort_keys=True), str(out_dir), "created",
             total_steps, global_batch, json.dumps(checkpoint_steps), init_from, now()))
        return cur.lastrowid


def set_status(db, run_id: int, status: str, **fields) -> None:
    cols = ["status = ?"] + [f"{k} = ?" for k in fields]
    with immediate(db):
        db.conn.execute(f"UPDATE runs SET {', '.join(cols)} WHERE id = ?", [status, *fields.values(), run_id])


def forget_after(db, run_id: int, step: int) -> None:
    """Drop manifest/metrics/checkpoint rows past ``step`` (a resume redoes those steps)."""
    with immediate(db):
        for table in ("run_order", "metrics", "checkpoints"):
            db.conn.execute(f"DELETE FROM {table} WHERE run_id = ? AND step > ?", (run_id, step))


def write_progress(db, run_id: int, order_rows, metric_rows, checkpoint: tuple[int, str] | None = None) -> None:
    """One transaction: consumed (conversation, step, position), per-step metrics, a checkpoint row."""
    with immediate(db):
        # the first time a conversation was trained (a run of fixed steps can repeat it in later passes)
        db.conn.executemany(
            "INSERT INTO run_order(run_id, conversation_id, step, position) VALUES (?,?,?,?) "
            "ON CONFLICT(run_id, conversation_id) DO NOTHING",
            [(run_id, c, s, p) for c, s, p in sorted(order_rows, key=lambda r: (r[1], r[2]))])
        db.conn.executemany(
            "INSERT OR REPLACE INTO metrics(run_id, step, loss, lr, samples_per_s, tokens_per_s, time)"
            " VALUES (?,?,?,?,?,?,?)", [(run_id, *m) for m in metric_rows])
        if checkpoint:
            db.conn.execute("INSERT OR REPLACE INTO checkpoints(run_id, step, path, created_at) VALUES (?,?,?,?)",
                            (run_id, checkpoint[0], checkpoint[1], now()))


def find_checkpoint(db, spec: str) -> tuple[Run, int, str]:
    """RUN[:STEP] -> (run, step, path); without STEP the run's last checkpoint."""
    name, _, step_txt = spec.rpartition(":") if re.search(r":\d+$", spec) else (spec, "", "")
    run = get_run(db, name)
    cks = checkpoints(db, run.id)
    if not cks:
        raise BadInput(f"run '{name}' has no checkpoints yet")
    if step_txt:
        step = int(step_txt)
        if step not in cks:
            raise BadInput(f"run '{name}' has no checkpoint at step {step}; steps: {', '.join(map(str, cks))}")
    else:
        step = max(cks)
    return run, step, cks[step]
