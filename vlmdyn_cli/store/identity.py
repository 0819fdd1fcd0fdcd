"""What makes a run, an evaluation set and a QA pair the same in two experiment databases.

Row ids mean nothing across files, so `db merge` compares content:

- a run: its name, plus dataset (file hash), seed, model id, training config,
  total steps, global batch, checkpoint schedule and the order manifest (a hash
  of every (conversation index, step, position) row);
- an evaluation set: (run name, set name), plus kind, k, dedup mode, size,
  seed, definition and members (a hash of every member's QA pair key, texts
  and rank);
- a QA pair: (dataset file hash, conversation index, turn), with the same
  question and answer.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3

from vlmdyn_cli.errors import BadInput

_RUN_FIELDS = ("dataset", "seed", "model", "training config", "total steps", "global batch",
               "checkpoint schedule", "order manifest")
_SET_FIELDS = ("kind", "k", "dedup", "size", "seed", "definition", "members")


def run_identity(conn: sqlite3.Connection, run_id: int) -> dict:
    r = conn.execute("SELECT d.source_sha256, r.seed, r.model_id, r.config_json, r.total_steps, r.global_batch, "
                     "r.checkpoint_steps_json FROM runs r LEFT JOIN datasets d ON d.id = r.dataset_id "
                     "WHERE r.id = ?", [run_id]).fetchone()
    manifest = _digest(conn.execute(
        "SELECT c.idx, o.step, o.position FROM run_order o JOIN conversations c ON c.id = o.conversation_id "
        "WHERE o.run_id = ? ORDER BY o.step, o.position, c.idx", [run_id]))
    return dict(zip(_RUN_FIELDS, (_short(r[0]), r[1], r[2], _short(_sha(r[3])), r[4], r[5],
                                  json.loads(r[6] or "[]"), manifest)))


def set_identity(conn: sqlite3.Connection, set_id: int) -> dict:
    r = conn.execute("SELECT kind, k_step, dedup, size, seed, definition_json FROM eval_sets WHERE id = ?",
                     [set_id]).fetchone()
    members = _digest(conn.execute(
        "SELECT d.source_sha256, c.idx, q.turn, q.question, q.answer, m.rank FROM eval_set_members m "
        "JOIN qa_pairs q ON q.id = m.qa_id JOIN conversations c ON c.id = q.conversation_id "
        "JOIN datasets d ON d.id = c.dataset_id WHERE m.set_id = ? ORDER BY m.rank, c.idx, q.turn", [set_id]))
    definition = json.dumps(json.loads(r[5]), sort_keys=True)
    return dict(zip(_SET_FIELDS, (r[0], r[1], r[2], r[3], r[4], _short(_sha(definition)), members)))


def compare(src: sqlite3.Connection, tgt: sqlite3.Connection, src_runs: dict[str, int], src_name: str,
            tgt_name: str, cache: dict) -> list[str]:
    """What differs between the source's runs and sets and the target's, in words ([] = the same).

    ``cache`` keeps the target's identities between sources (one target, many node files).
    """
    tgt_runs = dict(tgt.execute("SELECT name, id FROM runs").fetchall())
    missing = [n for n in src_runs if n not in tgt_runs]
    if missing and len(missing) == len(src_runs):
        return [f"{src_name} is from another experiment: none of its runs ({', '.join(missing[:5])}) is in "
                f"{tgt_name}"]
    problems = [f"{src_name}: run '{n}' is not in {tgt_name}" for n in missing]
    same_runs = []
    for name, sid in src_runs.items():
        if name in missing:
            continue
        if ("run", name) not in cache:
            cache[("run", name)] = run_identity(tgt, tgt_runs[name])
        a, b = run_identity(src, sid), cache[("run", name)]
        diff = [f"{k} {a[k]} vs {b[k]}" for k in _RUN_FIELDS if a[k] != b[k]]
        if diff:
            problems.append(f"{src_name}: run '{name}' is not the same run as in {tgt_name} ({'; '.join(diff)})")
        else:
            same_runs.append(name)
    tgt_sets = {(r, s): i for i, r, s in tgt.execute(
        "SELECT s.id, r.name, s.name FROM eval_sets s JOIN runs r ON r.id = s.run_id")}
    for sid, run, name in src.execute("SELECT s.id, r.name, s.name FROM eval_sets s JOIN runs r ON r.id = s.run_id "
                                      "ORDER BY s.id"):
        if run not in same_runs:
            continue
        if (run, name) not in tgt_sets:
            problems.append(f"{src_name}: set '{name}' of run '{run}' is not in {tgt_name} (build sets before "
                            f"exporting, not on a node)")
            continue
        key = ("set", run, name)
        if key not in cache:
            cache[key] = set_identity(tgt, tgt_sets[(run, name)])
        a, b = set_identity(src, sid), cache[key]
        diff = [f"{k} {a[k]} vs {b[k]}" for k in _SET_FIELDS if a[k] != b[k]]
        if diff:
            problems.append(f"{src_name}: set '{name}' of run '{run}' differs from {tgt_name}'s ({'; '.join(diff)})")
    return problems


def map_qa_pairs(src: sqlite3.Connection, tgt: sqlite3.Connection, src_run: int, src_name: str) -> dict[int, int]:
    """Source QA pair id -> target QA pair id for every pair the source run has generations for.

    BadInput naming the first pairs the target lacks or holds with other texts.
    """
    rows = src.execute(
        "SELECT DISTINCT q.id, d.source_sha256, c.idx, q.turn, q.question, q.answer FROM generations g "
        "JOIN qa_pairs q ON q.id = g.qa_id JOIN conversations c ON c.id = q.conversation_id "
        "JOIN datasets d ON d.id = c.dataset_id WHERE g.run_id = ?", [src_run]).fetchall()
    datasets = dict(tgt.execute("SELECT source_sha256, id FROM datasets").fetchall())
    tgt.execute("CREATE TEMP TABLE IF NOT EXISTS _qa_keys (src INTEGER PRIMARY KEY, ds, idx, turn)")
    tgt.execute("DELETE FROM temp._qa_keys")
    tgt.executemany("INSERT INTO temp._qa_keys VALUES (?,?,?,?)",
                    [(q, datasets.get(sha), idx, turn) for q, sha, idx, turn, _, _ in rows])
    found = {s: (t, qq, a) for s, t, qq, a in tgt.execute(
        "SELECT k.src, q.id, q.question, q.answer FROM temp._qa_keys k JOIN conversations c "
        "ON c.dataset_id = k.ds AND c.idx = k.idx JOIN qa_pairs q ON q.conversation_id = c.id AND q.turn = k.turn")}
    out, bad = {}, []
    for q, sha, idx, turn, question, answer in rows:
        hit = found.get(q)
        if hit is None:
            bad.append(f"conversation {idx} turn {turn} of dataset {_short(sha)} is not in the target")
        elif (hit[1], hit[2]) != (question, answer):
            bad.append(f"conversation {idx} turn {turn} of dataset {_short(sha)} has another question or answer "
                       f"in the target")
        else:
            out[q] = hit[0]
    if bad:
        raise BadInput(f"nothing merged, the target is unchanged: {src_name} answers {len(bad)} QA pairs the "
                       f"target does not have as they are: " + "; ".join(bad[:3]) + ("; ..." if len(bad) > 3 else ""))
    return out


GENERATION_KEY = ("run", "step", "dataset", "conversation", "turn", "prediction", "triple_hash", "gen_config_hash")


def generations_by_content(conn: sqlite3.Connection) -> list[tuple]:
    """Every generation as (run name, step, dataset hash, conversation index, turn, prediction, triple hash,
    generation config hash), sorted: rows of two databases compare equal when their generations are
    the same, whatever their row ids."""
    return sorted(conn.execute(
        "SELECT r.name, g.step, d.source_sha256, c.idx, q.turn, g.prediction, g.triple_hash, g.gen_config_hash "
        "FROM generations g JOIN runs r ON r.id = g.run_id JOIN qa_pairs q ON q.id = g.qa_id "
        "JOIN conversations c ON c.id = q.conversation_id JOIN datasets d ON d.id = c.dataset_id").fetchall())


def _digest(rows) -> str:
    h, n = hashlib.sha256(), 0
    for row in rows:             # repr: unambiguous for tuples of ints and strings, and fast
        h.update(repr(row).encode("utf-8"))
        n += 1
    return f"{n} rows, sha256 {h.hexdigest()[:12]}"


def _sha(text: str | None) -> str:
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


def _short(h: str | None) -> str | None:
    return None if h is None else h[:12]
