"""Benchmark: batched vs one-at-a-time greedy generation on the tiny LLaVA, side by side.

Builds the default `tiny` model through the model registry (vocabulary from a
small synthetic question/answer text), saves it as a real checkpoint folder,
loads it through the `hf` inference backend and answers the same items twice
in one process:

  baseline   --batch-size 1   (one prompt per generate call)
  new        --batch-size B   (left-padded batches, KV cache; default 32)

Both use exactly the code path of `vlmdyn infer` (items.batches + HFBackend.generate),
interleaved (baseline, new, baseline, new ...), the best of --reps each. Half the items
have an image, half are text-only, prompts differ in length. Reports items/s and
generated tokens/s per mode and the speed-up ratio; writes benchmarks/out/bench_generate.json.

Targets (benchmarks/checks.py; exit 1 when missed): batched at least TARGET x the items/s
of one at a time, and identical greedy answers in both modes.

    .venv/bin/python benchmarks/bench_generate.py                 # 96 items, B=32, 16 new tokens
    .venv/bin/python benchmarks/bench_generate.py --items 256 --batch-size 64 --threads 2
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from checks import Must, Ratio, finish

OUT = Path(__file__).resolve().parent / "out"
TARGET = 5.0   # batched items/s over one-at-a-time items/s (measured 8.75-25x, notes/evalsets-inference.md)

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
SHAPES = ["circle", "square", "triangle", "star", "cross"]


def make_items(folder: Path, n: int, seed: int):
    import numpy as np
    from PIL import Image

    from vlmdyn_cli.inference.items import GenItem

    rng = random.Random(seed)
    items = []
    for i in range(n):
        c, s = rng.choice(COLOURS), rng.choice(SHAPES)
        q = rng.choice([f"what colour is the {s} ?", f"what shape is the {c} object ?",
                        f"is there a {c} {s} in the picture near the top left corner ?",
                        f"describe the {s} in one word please"])
        path = None
        if i % 2 == 0:
            arr = np.full((32, 32, 3), rng.randrange(256), dtype=np.uint8)
            path = folder / f"img{i}.png"
            Image.fromarray(arr).save(path)
            path = str(path)
        items.append(GenItem(i, q, c, path))
    return items


def training_text(items) -> list[str]:
    from vlmdyn_cli.models.chat import render_conversation

    return ["".join(seg for seg, _ in render_conversation([(it.question, it.answer)],
                                                          it.image_path is not None)) for it in items]


def run_mode(backend, items, batch_size: int, cfg) -> tuple[dict, dict[int, str]]:
    from vlmdyn_cli.inference.items import batches

    preds: dict[int, str] = {}
    t0 = time.perf_counter()
    for b in batches(items, batch_size):
        preds.update(zip([it.qa_id for it in b], backend.generate(b, cfg)))
    secs = time.perf_counter() - t0
    tok = backend.processor.tokenizer
    n_tokens = sum(len(tok(p, add_special_tokens=False)["input_ids"]) + 1 for p in preds.values())
    return {"batch_size": batch_size, "items": len(items), "seconds": round(secs, 3),
            "items_per_s": round(len(items) / secs, 2), "tokens_per_s": round(n_tokens / secs, 1)}, preds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reps", type=int, default=2, help="interleaved repetitions; the best of each counts")
    ap.add_argument("--out", type=Path, default=OUT / "bench_generate.json")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from vlmdyn_cli.inference.backends.hf import HFBackend
    from vlmdyn_cli.inference.config import GenConfig
    from vlmdyn_cli.models.checkpoint import save_checkpoint
    from vlmdyn_cli.models.registry import build_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        items = make_items(tmp, args.items, args.seed)
        model, processor = build_model("tiny", {"seed": args.seed}, texts=training_text(items))
        save_checkpoint(model, processor, tmp / "ckpt", {"step": 0})
        n_params = sum(p.numel() for p in model.parameters())
        backend = HFBackend(device="cpu")
        backend.load(str(tmp / "ckpt"))
        cfg = GenConfig(max_new_tokens=args.max_new_tokens)
        run_mode(backend, items[:4], 2, cfg)                      # warm-up
        base = new = None
        for _ in range(max(1, args.reps)):                        # interleaved, best of reps
            b, base_preds = run_mode(backend, items, 1, cfg)
            n, new_preds = run_mode(backend, items, args.batch_size, cfg)
            base = b if base is None or b["seconds"] < base["seconds"] else base
            new = n if new is None or n["seconds"] < new["seconds"] else new
    same = base_preds == new_preds
    result = {
        "model": "tiny (registry defaults)", "parameters": n_params, "threads": args.threads,
        "max_new_tokens": args.max_new_tokens, "baseline": base, "new": new,
        "speedup_items_per_s": round(new["items_per_s"] / base["items_per_s"], 2),
        "identical_predictions": same,
    }
    print(f"{'mode':<10} {'batch':>5} {'items':>6} {'seconds':>8} {'items/s':>9} {'tokens/s':>9}")
    for name, r in (("baseline", base), ("new", new)):
        print(f"{name:<10} {r['batch_size']:>5} {r['items']:>6} {r['seconds']:>8} {r['items_per_s']:>9} "
              f"{r['tokens_per_s']:>9}")
    print(f"speed-up {result['speedup_items_per_s']}x; identical greedy answers: {same}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return finish("bench_generate", [
        Ratio(f"generation: batch {args.batch_size} vs one at a time", new["items_per_s"], base["items_per_s"],
              "items/s", TARGET, higher_is_better=True, note=f"{args.items} items, {args.threads} thread(s)"),
        Must("generation: identical greedy answers, batched and one at a time", same,
             "identical" if same else "DIFFERENT", "identical")])


if __name__ == "__main__":
    sys.exit(main())
