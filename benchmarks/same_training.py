"""Check: two versions of the code train identically (for refactors that must not change results).

Trains the same small runs with the code of a git revision (default: main) and with this
working tree, each in its own process, and compares per-step losses, the order manifest,
the checkpoint steps and the final weights (every tensor, exactly). Runs: the default tiny
config, and L2T + gradient checkpointing + grad_accum 2. Exits 1 when anything differs.

    .venv/bin/python benchmarks/same_training.py                  # main vs the working tree
    .venv/bin/python benchmarks/same_training.py --base HEAD~3 --images 400
Writes benchmarks/out/same_training.json (the seconds per run are for information only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"

RUNS = {
    "default": {},
    "l2t_checkpointing_accum": {"train": {"loss": "instruction+answer", "grad_accum": 2, "per_device_batch": 4},
                                "model": {"gradient_checkpointing": True}},
}

# Runs inside the tree under test: only the public API both versions share (load_config, train).
CHILD = r'''
import hashlib, json, sys, time
from pathlib import Path
tree, work, images, runs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
sys.path.insert(0, tree)
import torch
torch.set_num_threads(1)
import vlmdyn_cli
assert vlmdyn_cli.__file__.startswith(tree), vlmdyn_cli.__file__
from safetensors.torch import load_file
from vlmdyn_cli.data.importer import import_dataset
from vlmdyn_cli.data.synth import generate
from vlmdyn_cli.store import open_db
from vlmdyn_cli.training.config import load_config
from vlmdyn_cli.training.trainer import train

data = generate(work / "synth", n_images=images, seed=0)
db = open_db(work / "x.db")
import_dataset(db, data.json_path, data.images_dir, name="synth")
out = {}
for name, ov in runs.items():
    ov.setdefault("train", {})["out_dir"] = str(work / "runs")
    ov["checkpoints"] = {"steps": [0.5]}
    t = time.time()
    s = train(db, load_config(None, ov), seed=0, run_name=name)
    q = "SELECT {} FROM {} WHERE run_id = ? ORDER BY step{}"
    losses = [r[0] for r in db.execute(q.format("loss", "metrics", ""), [s["run_id"]])]
    order = db.execute(q.format("conversation_id, step, position", "run_order", ", position"), [s["run_id"]]).fetchall()
    weights = load_file(Path(s["checkpoints"][str(s["total_steps"])]) / "model.safetensors")
    digest = hashlib.sha256(b"".join(k.encode() + weights[k].numpy().tobytes() for k in sorted(weights)))
    out[name] = {"losses": losses, "order": order, "checkpoints": sorted(map(int, s["checkpoints"])),
                 "weights_sha256": digest.hexdigest(), "seconds": round(time.time() - t, 1)}
print(json.dumps(out))
'''


def train_in(tree: Path, images: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="same_training_") as work:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        proc = subprocess.run([sys.executable, "-c", CHILD, str(tree), work, str(images), json.dumps(RUNS)],
                              capture_output=True, text=True, env=env, cwd=work)
        if proc.returncode:
            sys.exit(f"training with the code in {tree} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="main", help="git revision to compare the working tree with")
    ap.add_argument("--images", type=int, default=200, help="synthetic benchmark images (200: ~600 conversations)")
    ap.add_argument("--out", type=Path, default=OUT / "same_training.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="same_training_base_") as base_tree:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", base_tree], input=archive.stdout, check=True)
        base = train_in(Path(base_tree), args.images)
    new = train_in(ROOT, args.images)
    report, same = {}, True
    for name in RUNS:
        b, n = base[name], new[name]
        checks = {key: b[key] == n[key] for key in ("losses", "order", "checkpoints", "weights_sha256")}
        same &= all(checks.values())
        report[name] = {"identical": checks, "steps": len(n["losses"]), "first_last_loss": [n["losses"][0],
                        n["losses"][-1]], "seconds": {"base": b["seconds"], "new": n["seconds"]}}
        print(f"{name:26s} {len(n['losses'])} steps, loss {n['losses'][0]:.4f} -> {n['losses'][-1]:.4f}: "
              + ", ".join(f"{k} {'same' if v else 'DIFFERENT'}" for k, v in checks.items())
              + f"  ({b['seconds']} s {args.base}, {n['seconds']} s working tree)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"base": args.base, "images": args.images, "identical": same, "runs": report},
                                   indent=2))
    print(f"identical to {args.base}: {'yes' if same else 'NO'}  -> {args.out}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
