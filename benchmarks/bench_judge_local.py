"""Local judge latency: prefix KV reuse vs cold prompting, score mode, state copies.

One long-lived Llama (the `local` spec: shipped SmolLM2-135M-Instruct GGUF, the
~480-token rubric first and the item last). Side by side in one run, same items:

* warm  the backend as shipped: each item is evaluated against the KV cache, so
        only the item's suffix is decoded;
* cold  the same backend, but the context is reset before each item, so the
        whole prompt is decoded every time (what a naive per-item call does).

Both are measured in score mode (one forward pass over the prompt, P(yes) from
the next-token logits, no decoding) and in full mode (score + grammar-constrained
rubric dict by slot filling, the spec's default), plus warm full mode with
grammar sampling (``fill = "sample"``) for comparison. save_state/load_state
calls are counted (must be 0 per item).

Targets (ratios in this one run, by process CPU time: steadier than wall time on a shared
machine): score mode warm at least 8x cheaper than cold, full mode at least 4x; 0 state
copies. Exits 1 when one is missed.

    .venv/bin/python benchmarks/bench_judge_local.py [--items 12] [--threads 1] [--model PATH|pkg:...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

ITEMS = [
    ("What colour is the umbrella?", "blue", "The umbrella is blue."),
    ("How many people are in the picture?", "4", "three"),
    ("Who wrote this book?", "Agatha Christie", "Agatha Christie"),
    ("Is the cat on the left of the sofa?", "no", "Yes, it is."),
    ("What is the genre of this book?", "Cookbooks, Food & Wine", "cooking"),
    ("Why might the people be gathered here?", "They are waiting for a parade to start.", "For a parade."),
    ("What is the man holding?", "a tennis racket", "He holds a racket."),
    ("Which animal is bigger?\nA. cat\nB. horse", "B", "A"),
    ("What does the sign say?", "STOP", "stop"),
    ("Where is the dog?", "under the table", "on the bed"),
    ("What colour is the car?", "red", "It is a red car."),
    ("How many windows are there?", "6", "six windows"),
]


CPU: list[float] = []     # process CPU seconds of the last measure() call, per item


def measure(backend, spec, items, *, cold: bool, score_only: bool) -> list[float]:
    """Wall seconds per item (CPU seconds per item left in CPU: less sensitive to a busy machine)."""
    from vlmdyn_cli.judging.backends.base import Item

    out = []
    CPU.clear()
    for i, (q, a, p) in enumerate(items):
        req = spec.render(Item(f"k{i}", q, a, p))
        req.score_only = score_only
        if cold:
            backend.reset_context()
        t0, c0 = time.perf_counter(), time.process_time()
        r = backend.respond(req)
        out.append(time.perf_counter() - t0)
        CPU.append(time.process_time() - c0)
        assert r.error is None, r.error
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default=None, help="GGUF path or pkg:<package> (default: the local spec's)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out" / "bench_judge_local.json"))
    args = ap.parse_args()

    import llama_cpp

    from vlmdyn_cli.judging.backends import create_backend
    from vlmdyn_cli.judging.spec import load_spec

    copies = {"n": 0}
    for name in ("save_state", "load_state"):
        orig = getattr(llama_cpp.Llama, name)

        def counted(self, *a, _o=orig, **k):
            copies["n"] += 1
            return _o(self, *a, **k)
        setattr(llama_cpp.Llama, name, counted)

    spec = load_spec("local").with_overrides(model=args.model)
    t0 = time.perf_counter()
    b = create_backend(spec, {"n_threads": args.threads})
    load_s = time.perf_counter() - t0
    items = (ITEMS * (args.items // len(ITEMS) + 1))[:args.items]
    from vlmdyn_cli.judging.backends.base import Item

    prompt_tokens = len(b.tokens_for(spec.render(Item("x", *items[0]))))
    measure(b, spec, items[:1], cold=False, score_only=True)      # warm the prefix once

    res = {}
    for mode, score_only in (("score", True), ("full", False)):
        tok0 = b.evaluated_tokens
        warm = measure(b, spec, items, cold=False, score_only=score_only)
        warm_cpu = statistics.median(CPU)
        warm_tokens = (b.evaluated_tokens - tok0) / len(items)
        tok0 = b.evaluated_tokens
        cold = measure(b, spec, items, cold=True, score_only=score_only)
        cold_cpu = statistics.median(CPU)
        cold_tokens = (b.evaluated_tokens - tok0) / len(items)
        res[mode] = {
            "warm_median_s": statistics.median(warm), "warm_mean_s": statistics.mean(warm),
            "cold_median_s": statistics.median(cold), "cold_mean_s": statistics.mean(cold),
            "speedup_median": statistics.median(cold) / statistics.median(warm),
            "warm_cpu_median_s": warm_cpu, "cold_cpu_median_s": cold_cpu, "speedup_cpu": cold_cpu / warm_cpu,
            "decoded_prompt_tokens_per_item_warm": warm_tokens,
            "decoded_prompt_tokens_per_item_cold": cold_tokens,
        }
    # the other way to enforce the format: ordinary sampling under a GBNF grammar (warm only)
    b.fill = "sample"
    sample = measure(b, spec, items, cold=False, score_only=False)
    b.fill = "slots"
    res["full_grammar_sampling_warm_median_s"] = statistics.median(sample)
    report = {
        "load_average_1min": os.getloadavg()[0],
        "model": b.resolved, "threads": args.threads, "items": len(items), "prompt_tokens": prompt_tokens,
        "load_s": load_s, "state_copies_total": copies["n"], "state_copies_per_item": copies["n"] / (5 * len(items) + 1),   # 5 measured passes + the warm-up
        **res,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    s, f = res["score"], res["full"]
    print(f"\nscore mode: warm {s['warm_median_s']:.3f} s/item vs cold {s['cold_median_s']:.3f} s/item "
          f"-> {s['speedup_median']:.1f}x (aim >= 8x; warm aim <= 0.4 s); CPU s/item warm "
          f"{s['warm_cpu_median_s']:.3f} vs cold {s['cold_cpu_median_s']:.3f} -> {s['speedup_cpu']:.1f}x")
    print(f"full mode : warm {f['warm_median_s']:.3f} s/item vs cold {f['cold_median_s']:.3f} s/item "
          f"-> {f['speedup_median']:.1f}x; CPU s/item warm {f['warm_cpu_median_s']:.3f} vs cold "
          f"{f['cold_cpu_median_s']:.3f} -> {f['speedup_cpu']:.1f}x")
    print(f"(1-min load average at the end: {report['load_average_1min']:.1f} on {os.cpu_count()} cores)")
    print(f"full mode with grammar sampling instead of slot filling: warm "
          f"{res['full_grammar_sampling_warm_median_s']:.3f} s/item")
    print(f"state copies: {copies['n']} (aim 0)")
    misses = [m for m, bad in (
        (f"score mode warm vs cold {s['speedup_cpu']:.1f}x CPU (target >= 8x)", s["speedup_cpu"] < 8),
        (f"full mode warm vs cold {f['speedup_cpu']:.1f}x CPU (target >= 4x)", f["speedup_cpu"] < 4),
        (f"{copies['n']} state copies (target 0)", copies["n"] != 0)) if bad]
    for m in misses:
        print(f"MISSED: {m}")
    raise SystemExit(1 if misses else 0)


if __name__ == "__main__":
    main()
