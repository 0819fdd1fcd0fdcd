"""The split each sharded plan was started with (``shard_plans``), so a shard of another split is refused.

A plan is what one command line asks a stage to do for a run (the sets, the
checkpoints and the generation config for `infer`; the judge spec and the
selection for `judge`). The first ``--shard i/N`` of a plan records N; a later
``--shard j/M`` of the same plan with M != N would overlap that split and leave
gaps, so it is refused unless the caller passes ``reshard`` (which replaces N).
Runs without ``--shard`` are never checked: a plain rerun fills what is left.
"""

from __future__ import annotations

import json

from sqlite_utils import Database

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.sharding import Shard
from vlmdyn_cli.store.db import immediate, now, sha256_text


def plan_hash(plan: dict) -> str:
    return sha256_text(json.dumps(plan, sort_keys=True))


def claim(db: Database, run_id: int, run_name: str, stage: str, plan: dict, shard: Shard, *,
          reshard: bool = False, command: str = "") -> None:
    """Record ``shard.count`` for this plan, or check it against the recorded one (BadInput on a
    mismatch, nothing written)."""
    key = plan_hash(plan)
    text = json.dumps(plan, sort_keys=True)
    with immediate(db) as conn:
        row = conn.execute("SELECT n_shards, created_at FROM shard_plans WHERE run_id = ? AND stage = ? "
                           "AND plan_hash = ?", [run_id, stage, key]).fetchone()
        if row is not None and row[0] != shard.count and not reshard:
            n = row[0]
            raise BadInput(
                f"run '{run_name}': this {stage} plan ({_describe(plan)}) was split into {n} shards "
                f"(first shard started {row[1]}); --shard {shard} belongs to a {shard.count}-way split, "
                f"which would overlap that one and leave gaps. Use --shard i/{n} (i = 0..{n - 1}), or add "
                f"--reshard to split it {shard.count} ways from now on (only once no shard of the "
                f"{n}-way split is running{'; ' + command if command else ''})")
        if row is None or row[0] != shard.count:
            conn.execute("INSERT INTO shard_plans(run_id, stage, plan_hash, plan_json, n_shards, created_at) "
                         "VALUES (?,?,?,?,?,?) ON CONFLICT(run_id, stage, plan_hash) DO UPDATE SET "
                         "n_shards = excluded.n_shards, created_at = excluded.created_at",
                         [run_id, stage, key, text, shard.count, now()])


def recorded(db: Database, run_id: int, stage: str, plan: dict) -> int | None:
    """N recorded for this plan, or None."""
    row = db.execute("SELECT n_shards FROM shard_plans WHERE run_id = ? AND stage = ? AND plan_hash = ?",
                     [run_id, stage, plan_hash(plan)]).fetchone()
    return None if row is None else row[0]


def _describe(plan: dict) -> str:
    parts = []
    for k, v in plan.items():
        if isinstance(v, list):
            v = ",".join(map(str, v)) if len(v) <= 8 else f"{len(v)} {k}"
        elif isinstance(v, str) and len(v) == 64:
            v = v[:12]
        parts.append(f"{k} {v}")
    return "; ".join(parts)
