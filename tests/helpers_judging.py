"""Helpers for the judging tests: a run with generations written straight into the tables,
and small deterministic test backends registered in the judge backend registry."""

from __future__ import annotations

import json
import threading
import time

from vlmdyn_cli.judging.backends.base import ModelBackend
from vlmdyn_cli.judging.verdict import Completion, from_completion
from vlmdyn_cli.store.db import triple_hash

# (question, reference, prediction at step 10, prediction at step 20, eval set)
ITEMS = [
    ("What colour is the ball?", "red", "blue", "red", "seen@10"),
    ("How many cats are there?", "3", "two", "three", "seen@10"),
    ("Is the cup left of the plate?", "yes", "No.", "Yes, it is.", "seen@10"),
    ("What is the man holding?", "umbrella", "parasol", "umbrella", "unseen"),
    ("Please provide the bounding box coordinate of the region this sentence describes: red circle.",
     "[0.10, 0.20, 0.50, 0.60]", "[0.70, 0.70, 0.90, 0.90]", "[0.12, 0.21, 0.50, 0.62]", "unseen"),
    ("Why might the man be smiling?", "He is probably happy because he just won a prize at the fair",
     "He is sad.", "Because he won something.", "unseen"),
]


def make_run(db, run_name="r1") -> dict:
    """A dataset, one run with two checkpoints, two eval sets and 12 generations."""
    c = db.conn
    with db.atomic():
        ds = c.execute("INSERT INTO datasets(name, source_path, source_sha256, imported_at) "
                       "VALUES ('ds', '/x.json', 'sha', '2026-01-01')").lastrowid
        run = c.execute("INSERT INTO runs(name, dataset_id, seed, model_id, config_json, out_dir, status, "
                        "total_steps, global_batch, checkpoint_steps_json, created_at) VALUES "
                        "(?, ?, 0, 'tiny', '{}', '/tmp', 'done', 30, 4, '[10, 20]', '2026-01-01')",
                        (run_name, ds)).lastrowid
        sets = {}
        for name, kind in (("seen@10", "seen"), ("unseen", "unseen")):
            sets[name] = c.execute("INSERT INTO eval_sets(run_id, name, kind, size, seed, definition_json, "
                                   "created_at) VALUES (?,?,?,3,0,'{}','2026-01-01')",
                                   (run, name, kind)).lastrowid
        c.execute("INSERT INTO gen_configs(hash, config_json) VALUES ('g', '{}')")
        hashes = {10: [], 20: []}
        for i, (q, a, p10, p20, s) in enumerate(ITEMS):
            conv = c.execute("INSERT INTO conversations(dataset_id, idx, n_turns) VALUES (?,?,1)",
                             (ds, i)).lastrowid
            qa = c.execute("INSERT INTO qa_pairs(dataset_id, conversation_id, turn, question, answer) "
                           "VALUES (?,?,0,?,?)", (ds, conv, q, a)).lastrowid
            c.execute("INSERT INTO eval_set_members(set_id, qa_id, rank) VALUES (?,?,?)", (sets[s], qa, i))
            for step, p in ((10, p10), (20, p20)):
                h = triple_hash(q, a, p)
                hashes[step].append(h)
                # triples are deliberately NOT inserted: the runner must add them from generations
                c.execute("INSERT INTO generations(run_id, step, qa_id, prediction, triple_hash, "
                          "gen_config_hash, backend, created_at) VALUES (?,?,?,?,?, 'g', 'hf', '2026-01-01')",
                          (run, step, qa, p, h))
    return {"run_id": run, "hashes": hashes}


class ScriptedBackend(ModelBackend):
    """A model backend whose answer is a fixed function of the item, parsed like any model's text;
    counts items (class-wide) and can sleep or charge."""

    calls = 0
    lock = threading.Lock()
    answer = staticmethod(lambda item: "{'p': 'yes', 'MS': 5, 'MD': 5, 'H': 5}")
    error = staticmethod(lambda item: None)
    cost_per_item = 0.0
    delay_s = 0.0

    def run(self, items, on_verdict):
        for it in items:
            with ScriptedBackend.lock:
                ScriptedBackend.calls += 1
            if self.delay_s:
                time.sleep(self.delay_s)
            error = type(self).error(it)
            c = Completion(it.key, text=None if error else type(self).answer(it), resolved_model="scripted-1",
                           prompt_tokens=100, completion_tokens=10, cost_usd=self.cost_per_item, latency_s=0.001,
                           error=error)
            on_verdict(from_completion(self.spec, c))


def write_spec(tmp_path, name="scripted", backend="scripted", output="rubric-dict", extra="") -> str:
    (tmp_path / "sys.txt").write_text("Grade it. Reply {'p': 'yes', 'MS': 5, 'MD': 5, 'H': 5}.\n")
    (tmp_path / "user.txt").write_text("Q: {question}\nA: {answer}\nP: {prediction}\n")
    p = tmp_path / f"{name}.toml"
    p.write_text(f'name = "{name}"\nbackend = "{backend}"\nmodel = "m"\noutput = "{output}"\n'
                 f'system_template = "sys.txt"\nuser_template = "user.txt"\n{extra}')
    return str(p)


def dump_db(db) -> str:
    """Every row of every table as text (for 'the secret is nowhere' checks)."""
    out = []
    for (name,) in db.conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        for row in db.conn.execute(f"SELECT * FROM [{name}]"):
            out.append(json.dumps(row, default=str))
    return "\n".join(out)
