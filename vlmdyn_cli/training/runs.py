"""Database rows of a training run: runs, run_order (manifest), metrics, checkpoints.

Only the main process writes; every write is one transaction, and rows are
keyed so that re-writing a step after a resume replaces instead of duplicating.
"""

from __future__ import annotations

import json
import re

from vlmdyn_cli.errors import BadInput, did_you_mean
from vlmdyn_cli.store.db import now


def default_run_name(dataset: str, model_id: str, seed: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model_id.split("/")[-1].split(":")[-1]).strip("-") or "model"
    return f"{dataset}-{slug}-s{seed}"


def get_run(db, name: str) -> dict | None:
    rows = list(db.query("SELECT * FROM runs WHERE name = ?", [name]))
    return rows[0] if rows else None


def require_run(db, name: str) -> dict:
    run = get_run(db, name)
    if run is None:
        names = [r[0] for r in db.execute("SELECT name FROM runs").fetchall()]
        raise BadInput(f"no run named '{name}'{did_you_mean(name, names)}"
                       + (f"; runs: {', '.join(names[:20])}" if names else "; no runs yet (vlmdyn train)"))
    return run


def create_run(db, *, name, dataset_id, seed, model_id, cfg, out_dir, total_steps, global_batch,
               checkpoint_steps, init_from) -> int:
    with db.conn:
        cur = db.conn.execute(
            "INSERT INTO runs(name, dataset_id, seed, model_id, config_json, out_dir, status, total_steps,"
            " global_batch, checkpoint_steps_json, init_from, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (name, dataset_id, seed, model_id, json.dumps(cfg, sort_keys=True), str(out_dir), "created",
             total_steps, global_batch, json.dumps(checkpoint_steps), init_from, now()))
        return cur.lastrowid


def set_status(db, run_id: int, status: str, **fields) -> None:
    cols = ["status = ?"] + [f"{k} = ?" for k in fields]
    with db.conn:
        db.conn.execute(f"UPDATE runs SET {', '.join(cols)} WHERE id = ?", [status, *fields.values(), run_id])


def forget_after(db, run_id: int, step: int) -> None:
    """Drop manifest/metrics/checkpoint rows past ``step`` (a resume redoes those steps)."""
    with db.conn:
        for table in ("run_order", "metrics", "checkpoints"):
            db.conn.execute(f"DELETE FROM {table} WHERE run_id = ? AND step > ?", (run_id, step))


def write_progress(db, run_id: int, order_rows, metric_rows, checkpoint: tuple[int, str] | None = None) -> None:
    """One transaction: consumed (conversation, step, position), per-step metrics, a checkpoint row."""
    with db.conn:
        db.conn.executemany(
            "INSERT OR REPLACE INTO run_order(run_id, conversation_id, step, position) VALUES (?,?,?,?)",
            [(run_id, c, s, p) for c, s, p in order_rows])
        db.conn.executemany(
            "INSERT OR REPLACE INTO metrics(run_id, step, loss, lr, samples_per_s, tokens_per_s, time)"
            " VALUES (?,?,?,?,?,?,?)", [(run_id, *m) for m in metric_rows])
        if checkpoint:
            db.conn.execute("INSERT OR REPLACE INTO checkpoints(run_id, step, path, created_at) VALUES (?,?,?,?)",
                            (run_id, checkpoint[0], checkpoint[1], now()))


def checkpoints_of(db, run_id: int) -> dict[int, str]:
    return {s: p for s, p in db.execute(
        "SELECT step, path FROM checkpoints WHERE run_id = ? ORDER BY step", [run_id]).fetchall()}


def find_checkpoint(db, spec: str) -> tuple[dict, int, str]:
    """RUN[:STEP] -> (run row, step, path); without STEP the run's last checkpoint."""
    name, _, step_txt = spec.rpartition(":") if re.search(r":\d+$", spec) else (spec, "", "")
    run = require_run(db, name)
    cks = checkpoints_of(db, run["id"])
    if not cks:
        raise BadInput(f"run '{name}' has no checkpoints yet")
    if step_txt:
        step = int(step_txt)
        if step not in cks:
            raise BadInput(f"run '{name}' has no checkpoint at step {step}; steps: {', '.join(map(str, cks))}")
    else:
        step = max(cks)
    return run, step, cks[step]


def list_runs(db) -> list[dict]:
    rows = db.execute(
        "SELECT r.id, r.name, d.name, r.seed, r.model_id, r.status, r.total_steps, r.global_batch,"
        " (SELECT MAX(step) FROM metrics m WHERE m.run_id = r.id),"
        " (SELECT COUNT(*) FROM checkpoints c WHERE c.run_id = r.id),"
        " (SELECT group_concat(step, ',') FROM (SELECT step FROM checkpoints c WHERE c.run_id = r.id ORDER BY step)),"
        " r.samples_per_s, r.train_seconds, r.init_from, r.created_at, r.finished_at"
        " FROM runs r LEFT JOIN datasets d ON d.id = r.dataset_id ORDER BY r.id").fetchall()
    keys = ("id", "name", "dataset", "seed", "model_id", "status", "total_steps", "global_batch", "steps_done",
            "n_checkpoints", "checkpoint_steps", "samples_per_s", "train_seconds", "init_from", "created_at",
            "finished_at")
    out = []
    for r in rows:
        d = dict(zip(keys, r))
        d["steps_done"] = d["steps_done"] or 0
        d["checkpoint_steps"] = [int(s) for s in d["checkpoint_steps"].split(",")] if d["checkpoint_steps"] else []
        out.append(d)
    return out
