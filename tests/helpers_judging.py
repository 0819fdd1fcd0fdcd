"""Helpers for the judging tests: a run with generations (written through vlmdyn_cli.testing's
factories, but for the generations whose triples are missing on purpose), and small
deterministic test backends registered in the judge backend registry."""

from __future__ import annotations

import json
import threading
import time

from vlmdyn_cli.judging.backends.base import ModelBackend
from vlmdyn_cli.judging.verdict import Completion, from_completion
from vlmdyn_cli.store.db import triple_hash
from vlmdyn_cli.testing import factories as f

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
    with f.fixed_now("2026-01-01"), f.immediate(db) as c:
        ds = f.dataset(db, "ds", source_path="/x.json", source_sha256="sha")
        run = f.run(db, run_name, ds, out_dir="/tmp", total_steps=30, global_batch=4, checkpoint_steps=[10, 20])
        gen_config = f.gen_config(db)
        members = {"seen@10": [], "unseen": []}
        hashes = {10: [], 20: []}
        for i, (q, a, p10, p20, s) in enumerate(ITEMS):
            _, (qa,) = f.conversation(db, ds, i, [f.qa(q, a)])
            members[s].append(qa)
            for step, p in ((10, p10), (20, p20)):
                h = triple_hash(q, a, p)
                hashes[step].append(h)
                # raw on purpose: generations whose triples are NOT stored (the runner must add them)
                c.execute("INSERT INTO generations(run_id, step, qa_id, prediction, triple_hash, "
                          "gen_config_hash, backend, created_at) VALUES (?,?,?,?,?,?, 'hf', '2026-01-01')",
                          (run, step, qa, p, h, gen_config))
        for name, kind in (("seen@10", "seen"), ("unseen", "unseen")):
            f.eval_set(db, run, name, kind, members[name])
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
