"""Building a run's evaluation sets: plan, check, select, then write in one transaction.

Each set is stored in ``eval_sets`` with a JSON definition and its members in
``eval_set_members``. Rebuilding a set with the same definition does nothing;
a different definition is refused unless ``force`` (then the set is replaced).
Every problem (a size that cannot be met, a conflicting definition) is found
before anything is written, and all of them are reported together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlite_utils import Database

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.evalsets import sampling, selection
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.store.db import immediate, now
from vlmdyn_cli.store.runs import Run

DEFINITION_VERSION = 1
UNSEEN_NAMES = {"image": "unseen", "pair": "unseen-pair", "none": "unseen-none"}


def seen_name(k: int) -> str:
    return f"seen@{k}"


@dataclass
class SetSpec:
    name: str
    kind: str                      # seen | unseen
    size: int
    k_step: int | None = None      # seen sets
    dedup: str | None = None       # unseen sets
    seed: int = 0
    definition: dict = field(default_factory=dict)

    @property
    def definition_json(self) -> str:
        return json.dumps(self.definition, sort_keys=True)


def plan(run: Run, steps: list[int], seen_size: int, unseen_size: int, dedups: list[str],
         stratify: str | None, seed: int) -> list[SetSpec]:
    """The sets to build: one Seen@k per step, one unseen set per dedup mode after max(steps)."""
    last = max(steps)
    specs = []
    for k in sorted(set(steps)):
        specs.append(SetSpec(seen_name(k), "seen", seen_size, k_step=k, definition={
            "version": DEFINITION_VERSION, "kind": "seen", "run": run.name, "k": k,
            "size": seen_size, "order": "step desc, position desc, turn asc; steps <= k"}))
    for d in dedups:
        specs.append(SetSpec(UNSEEN_NAMES[d], "unseen", unseen_size, dedup=d, seed=seed, definition={
            "version": DEFINITION_VERSION, "kind": "unseen", "run": run.name, "after_step": last,
            "dedup": d, "size": unseen_size, "seed": seed, "stratify": stratify}))
    return specs


def manifest_steps(db: Database, run: Run) -> tuple[int, int, int]:
    """(conversations in the manifest, first step, last step trained); BadInput when it is empty.

    The last step trained is the manifest's, or later when a run of fixed steps went on with
    further passes over conversations it had already trained (the manifest keeps first exposures;
    the metrics rows, written in the same transactions, have every step)."""
    n, lo, hi = db.execute(
        "SELECT count(*), min(step), max(max(step), coalesce((SELECT max(step) FROM metrics WHERE run_id = ?), 0)) "
        "FROM run_order WHERE run_id = ?", [run.id, run.id]
    ).fetchone()
    if not n:
        raise BadInput(
            f"run '{run.name}' has no order manifest (no run_order rows): train it with "
            f"`vlmdyn train` first; the manifest records which conversation each step consumed"
        )
    return n, lo, hi


def existing_definitions(db: Database, run: Run) -> dict[str, str]:
    return {n: d for n, d in db.execute(
        "SELECT name, definition_json FROM eval_sets WHERE run_id = ?", [run.id])}


def build(db: Database, run: Run, specs: list[SetSpec], *, force: bool = False,
          reporter: Reporter | None = None) -> list[dict]:
    """Build the planned sets; returns one {"name", "status", "size"} per spec.

    status is "built", "rebuilt" (replaced under force) or "unchanged".
    """
    reporter = reporter or NullReporter()
    n_manifest, _, last_manifest_step = manifest_steps(db, run)
    steps = [s.k_step for s in specs if s.kind == "seen"]
    after = [s.definition["after_step"] for s in specs if s.kind == "unseen"]
    top = max(steps + after)
    if top > last_manifest_step:
        raise BadInput(
            f"run '{run.name}': its training ends at step {last_manifest_step} but sets were asked "
            f"for step {top}; pick checkpoint steps <= {last_manifest_step} with --checkpoints")

    old = existing_definitions(db, run)
    todo, results, conflicts = [], {}, []
    for s in specs:
        if s.name not in old:
            todo.append(s)
        elif old[s.name] == s.definition_json:
            results[s.name] = "unchanged"
        elif force:
            todo.append(s)
        else:
            conflicts.append(f"{s.name}: stored {old[s.name]}, asked {s.definition_json}")
    if conflicts:
        raise BadInput(
            f"run '{run.name}' already has sets with a different definition (pass --force to "
            f"replace them, which keeps existing generations):\n  " + "\n  ".join(conflicts))

    members: dict[str, list[int]] = {}
    shortfalls: list[str] = []
    with reporter.task("selecting set members", total=len(todo), unit="sets") as t:
        for s in todo:
            ids, problem = _select(db, run, s)
            if problem:
                shortfalls.append(problem)
            else:
                members[s.name] = ids
            t.advance(1)
    if shortfalls:
        raise BadInput("not enough candidates; nothing was written:\n  " + "\n  ".join(shortfalls))

    with immediate(db):
        current = existing_definitions(db, run)   # another `sets build` of this run may have written since
        for s in todo:
            stored = current.get(s.name)
            if stored == s.definition_json and s.name not in old:   # it built the same set: nothing to do
                results[s.name] = "unchanged"
                continue
            if stored is not None and s.name not in old and not force:
                raise BadInput(f"run '{run.name}': another process built set {s.name} with another definition "
                               f"while this one selected members (stored {stored}); nothing was written, pass "
                               "--force to replace it")
            replaced = stored is not None
            if replaced:
                db.conn.execute(
                    "DELETE FROM eval_set_members WHERE set_id = "
                    "(SELECT id FROM eval_sets WHERE run_id = ? AND name = ?)", [run.id, s.name])
                db.conn.execute("DELETE FROM eval_sets WHERE run_id = ? AND name = ?", [run.id, s.name])
            insert_set(db.conn, run.id, s, members[s.name])
            results[s.name] = "rebuilt" if replaced else "built"
    return [{"name": s.name, "status": results[s.name], "size": s.size} for s in specs]


def _select(db: Database, run: Run, s: SetSpec) -> tuple[list[int], str | None]:
    """(members, None) or ([], a message saying how many candidates exist and what to change)."""
    if s.kind == "seen":
        ids = selection.seen_members(db, run.id, s.k_step, s.size)
        if len(ids) < s.size:
            return [], (f"{s.name}: only {len(ids)} QA pairs were trained at steps <= {s.k_step}, "
                        f"{s.size} asked; use --seen-size {len(ids)} or less, or leave step "
                        f"{s.k_step} out with --checkpoints")
        return ids, None
    last = s.definition["after_step"]
    cands = selection.unseen_candidates(db, run.id, run.dataset_id, last, s.dedup)
    if len(cands) < s.size:
        return [], (f"{s.name}: only {len(cands)} QA pairs are unseen after step {last} under "
                    f"--dedup {s.dedup}, {s.size} asked; use --unseen-size {len(cands)} or less, "
                    f"evaluate earlier checkpoints (--checkpoints with a smaller last step), or a "
                    f"weaker dedup")
    return sampling.sample(cands, s.size, s.seed, s.definition["stratify"]), None


def fixed_set(db: Database, run: Run, name: str, qa_ids: list[int], definition: dict,
              kind: str = "benchmark") -> str:
    """A set given by its members (e.g. a selection benchmark): "built", or "unchanged" when the run
    already has it with the same definition; a different definition under the name is refused."""
    spec = SetSpec(name, kind, len(qa_ids), seed=0, definition=definition)
    old = existing_definitions(db, run).get(name)
    if old == spec.definition_json:
        return "unchanged"
    if old is not None:
        raise BadInput(f"run '{run.name}' already has a set '{name}' with another definition: stored {old}, "
                       f"asked {spec.definition_json}")
    with db.atomic():
        insert_set(db.conn, run.id, spec, qa_ids)
    return "built"


def insert_set(conn, run_id: int, spec: SetSpec, qa_ids: list[int]) -> int:
    """Write one set and its members (rank = position in ``qa_ids``); the caller owns the
    transaction. Returns the set's id. Its size is the number of members."""
    set_id = conn.execute(
        "INSERT INTO eval_sets(run_id, name, kind, k_step, dedup, size, seed, definition_json, created_at)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        [run_id, spec.name, spec.kind, spec.k_step, spec.dedup, len(qa_ids), spec.seed, spec.definition_json,
         now()]).lastrowid
    conn.executemany("INSERT INTO eval_set_members(set_id, qa_id, rank) VALUES (?,?,?)",
                     [(set_id, qa, r) for r, qa in enumerate(qa_ids)])
    return set_id
