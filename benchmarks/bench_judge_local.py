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

Then batched judging (issue 19 part 4): the backend judging --batch-items items in one
``run`` call (however it batches them) against one item per call, interleaved, best of
--reps, at --batch-threads threads, same items, spec's default (full) mode.

Targets (benchmarks/checks.py; exit 1 when one is missed; ratios in this one run, warm vs
cold by process CPU time: steadier than wall time on a shared machine): score mode warm at
least 8x cheaper than cold, full mode at least 4x; 0 state copies; batched at least 2x the
items/s of one at a time, with identical verdicts (the ratio is expected to fail until part 4
lands: benchmarks/run.py lists it).

Part ``4bit``: the `transformers` judge backend on a random-init Llama saved to disk (4 layers
x 512, 13M linear weights), fp32 vs ``load_in_4bit`` (bitsandbytes NF4 on the CPU), score mode
over the same items side by side: items/s of each, the bytes of the linear layers' weights,
and the largest |p_yes(4-bit) - p_yes(fp32)|. Targets: linear weights at most 0.2x the fp32
bytes and p_yes within 0.05; items/s is reported (on the CPU, without bitsandbytes' optional
``kernels`` package, NF4 dequantizes per matmul: it saves memory, not time).

    .venv/bin/python benchmarks/bench_judge_local.py [--part all|gguf|4bit] [--items 12] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from checks import Must, Ratio, best_of, finish

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


def batched_vs_one_at_a_time(spec, items, threads: int, reps: int) -> dict:
    """items/s of the backend judging all items in one run() call vs one item per call (same backend)."""
    from vlmdyn_cli.judging.backends import create_backend
    from vlmdyn_cli.judging.backends.base import Item

    b = create_backend(spec, {"n_threads": threads})
    todo = [Item(f"b{i}", *it) for i, it in enumerate(items)]
    got: dict[str, list] = {"batched": [], "one": []}

    def batched():
        got["batched"] = []
        b.run(todo, got["batched"].append)

    def one_at_a_time():
        got["one"] = []
        for it in todo:
            b.run([it], got["one"].append)

    one_at_a_time()  # warm the shared prompt prefix
    best = best_of({"batched": batched, "one": one_at_a_time}, reps)
    b.close()
    same = sorted((v.key, v.verdict) for v in got["batched"]) == sorted((v.key, v.verdict) for v in got["one"])
    return {"items": len(todo), "threads": threads, "batched_items_per_s": len(todo) / best["batched"],
            "one_items_per_s": len(todo) / best["one"], "same_verdicts": same}


def bench_4bit(items, threads: int) -> tuple[dict, list]:
    """fp32 vs NF4 4-bit, the transformers backend, score mode, same items (see the module doc)."""
    import tempfile

    import bitsandbytes as bnb
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from vlmdyn_cli.judging.backends import create_backend
    from vlmdyn_cli.judging.backends.base import Item
    from vlmdyn_cli.judging.spec import load_spec
    from vlmdyn_cli.models.tokenizer import build_word_tokenizer

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "llama"
        tok = build_word_tokenizer([" ".join(" ".join(x) for x in items) + " yes no Yes No"] * 3, vocab_size=400)
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=512, intermediate_size=1024, num_hidden_layers=4,
                          num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=512,
                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        LlamaForCausalLM(cfg).save_pretrained(folder)
        tok.save_pretrained(folder)
        (Path(tmp) / "p.txt").write_text("Question : {question} Reference : {answer} Answer : {prediction} yes or no ?")
        out, p_yes = {}, {}
        for name, extra in (("fp32", ""), ("nf4", 'load_in_4bit = true\ndevice = "cpu"')):
            sp = Path(tmp) / f"{name}.toml"
            sp.write_text(f'name = "bench-{name}"\nbackend = "transformers"\nmodel = "{folder}"\n'
                          f'output = "yesno"\ntext_template = "p.txt"\n[decoding]\nscore_mode = "only"\n'
                          f'[options]\nn_threads = {threads}\n{extra}\n')
            spec = load_spec(str(sp))
            be = create_backend(spec)
            linear = [m for m in be.model.modules() if isinstance(m, (torch.nn.Linear, bnb.nn.Linear4bit))
                      and m is not be.model.get_output_embeddings()]
            wbytes = sum(m.weight.numel() * m.weight.element_size() for m in linear)
            reqs = [spec.render(Item(f"k{i}", *it)) for i, it in enumerate(items)]
            for r in reqs[:2]:
                be.respond(r)                                   # warm-up
            t0 = time.process_time()
            p_yes[name] = [be.respond(r).p_yes for r in reqs]
            cpu = time.process_time() - t0
            out[name] = {"items_per_cpu_s": len(reqs) / cpu, "linear_weight_bytes": wbytes,
                         "linear_layers_4bit": sum(isinstance(m, bnb.nn.Linear4bit) for m in linear)}
            be.close()
    diff = max(abs(a - b) for a, b in zip(p_yes["fp32"], p_yes["nf4"]))
    res = {**out, "speed_ratio_nf4_vs_fp32": out["nf4"]["items_per_cpu_s"] / out["fp32"]["items_per_cpu_s"],
           "weight_bytes_ratio_nf4_vs_fp32": out["nf4"]["linear_weight_bytes"] / out["fp32"]["linear_weight_bytes"],
           "p_yes_max_abs_diff": diff}
    print(f"4-bit NF4 vs fp32 (transformers backend, CPU, score mode, {len(items)} items): "
          f"{out['nf4']['items_per_cpu_s']:.1f} vs {out['fp32']['items_per_cpu_s']:.1f} items per CPU second "
          f"({res['speed_ratio_nf4_vs_fp32']:.2f}x); linear weights {res['weight_bytes_ratio_nf4_vs_fp32']:.3f}x "
          f"the bytes ({out['nf4']['linear_layers_4bit']} Linear4bit layers); max |p_yes diff| {diff:.4f}")
    return res, [
        Ratio("transformers judge: NF4 4-bit vs fp32 linear-weight bytes", out["nf4"]["linear_weight_bytes"],
              out["fp32"]["linear_weight_bytes"], "B", 5.0,
              note=f"items/s {res['speed_ratio_nf4_vs_fp32']:.2f}x fp32 (reported, no target)"),
        Must("transformers judge: NF4 p_yes within 0.05 of fp32", diff <= 0.05, f"max |diff| {diff:.4f}", "<= 0.05"),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("all", "gguf", "4bit"), default="all")
    ap.add_argument("--items", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-items", type=int, default=8, help="items of the batched-judging comparison")
    ap.add_argument("--batch-threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2, help="interleaved repetitions of the batched comparison")
    ap.add_argument("--model", default=None, help="GGUF path or pkg:<package> (default: the local spec's)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out" / "bench_judge_local.json"))
    args = ap.parse_args()
    items = (ITEMS * (args.items // len(ITEMS) + 1))[:args.items]
    quant_checks: list = []
    if args.part in ("all", "4bit"):
        quant, quant_checks = bench_4bit(items, args.threads)
        if args.part == "4bit":
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).with_name("bench_judge_local_4bit.json").write_text(json.dumps(quant, indent=2))
            return finish("bench_judge_local", quant_checks)

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
    bat = batched_vs_one_at_a_time(spec, (ITEMS * (args.batch_items // len(ITEMS) + 1))[:args.batch_items],
                                   args.batch_threads, args.reps)
    report["batched"] = bat
    Path(args.out).write_text(json.dumps(report, indent=2))
    return finish("bench_judge_local", [
        Ratio("local judging, score mode: prefix KV reuse vs cold prompt (CPU s/item)", s["warm_cpu_median_s"],
              s["cold_cpu_median_s"], "s", 8.0),
        Ratio("local judging, full mode: prefix KV reuse vs cold prompt (CPU s/item)", f["warm_cpu_median_s"],
              f["cold_cpu_median_s"], "s", 4.0),
        Must("local judging: no state copies per item", copies["n"] == 0, f"{copies['n']} copies", "0"),
        Ratio(f"local judging: batched vs one item per call ({bat['items']} items, {bat['threads']} threads)",
              bat["batched_items_per_s"], bat["one_items_per_s"], "items/s", 2.0, higher_is_better=True,
              note="same verdicts" if bat["same_verdicts"] else "verdicts DIFFER"),
        Must("local judging: batched verdicts identical to one at a time", bat["same_verdicts"],
             "identical" if bat["same_verdicts"] else "DIFFERENT", "identical"),
        *quant_checks,
    ])


if __name__ == "__main__":
    sys.exit(main())
