"""Checks of METHOD.md section 5's effects on the measured data.

Each check computes its numbers from the judged accuracies (the same SQL
aggregation the figures use), states the rule it applied, and says whether
the effect was observed. Nothing here knows what the answer "should" be; a
demo that did not learn reports "not observed" with the numbers. Comparisons
over checkpoints skip those where both curves are still under LEARNED (the
untrained start), and say how many they skipped.
"""

from __future__ import annotations

from vlmdyn_cli.plots import aggregate as A

MARGIN = 0.02   # differences smaller than 2 accuracy points count as "no difference"
LEARNED = 0.05  # a checkpoint where both compared curves are under 5% is before learning began:
                # the two cannot differ there, so it is left out of "ahead at n of m checkpoints"


def _sel(db, runs: list[str], spec_hash: str) -> A.Selection:
    return A.selection(db, runs=runs, judge=spec_hash)


def _table(points) -> dict[tuple, dict[int, A.Point]]:
    out: dict[tuple, dict[int, A.Point]] = {}
    for p in points:
        out.setdefault(p.key, {})[p.step] = p
    return out


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def check_effects(db, runs: list[str], spec_hash: str) -> list[dict]:
    sel = _sel(db, runs, spec_hash)
    A.ensure_cells(db, sel)
    steps = sorted({s for (s,) in A._q(db, f"SELECT DISTINCT k_step FROM eval_sets WHERE kind = 'seen' AND "
                                             f"run_id IN ({A._ph(len(sel.runs))})", sel.run_ids)})
    out = [_seen_vs_unseen(db, sel), _seen_k_jump(db, sel, steps), _image_reuse(db, sel),
           _ocr_semantic_first(db, sel, steps), _bounding_slow(db, sel)]
    return out


def _last(series: dict[int, A.Point]) -> tuple[int, A.Point] | None:
    good = [(s, p) for s, p in series.items() if p.mean is not None]
    return max(good, key=lambda sp: sp[0]) if good else None


def _learning(steps: list[int], a: dict, b: dict) -> list[int]:
    """The steps at which curve a or b is at or above LEARNED."""
    return [s for s in steps if max(a[s].mean, b[s].mean) >= LEARNED]


def _skipped(all_steps: list[int], kept: list[int]) -> str:
    gone = [s for s in all_steps if s not in kept]
    return (f" (skipped {', '.join(map(str, gone))}: both under {100 * LEARNED:.0f}%, before learning began)"
            if gone else "")


def _seen_vs_unseen(db, sel) -> dict:
    seen = _table(A.seed_stats(db, sel, ["'seen'"], A.SEEN_AT_STEP, cells_ready=True)).get(("seen",), {})
    val = _table(A.seed_stats(db, sel, ["'unseen'"], A.VALIDATION, cells_ready=True)).get(("unseen",), {})
    both = sorted(s for s in seen if s in val and seen[s].mean is not None and val[s].mean is not None)
    common = _learning(both, seen, val)
    name = "seen above unseen (training frontier above validation)"
    if not common:
        return {"effect": name, "observed": None, "detail": "no step with both seen and unseen accuracy "
                "above the untrained floor"}
    gaps = [seen[s].mean - val[s].mean for s in common]
    last = common[-1]
    observed = sum(g > MARGIN for g in gaps) > len(gaps) / 2
    return {"effect": name, "observed": observed,
            "detail": f"at step {last}: trained-on sets {_pct(seen[last].mean)} vs unseen {_pct(val[last].mean)}; "
                      f"seen ahead by > {100 * MARGIN:.0f} points at {sum(g > MARGIN for g in gaps)} of "
                      f"{len(gaps)} checkpoints" + _skipped(both, common),
            "numbers": {str(s): [seen[s].mean, val[s].mean] for s in common}}


def _seen_k_jump(db, sel, ks: list[int]) -> dict:
    per_set = _table(A.seed_stats(db, sel, ["s.name", "s.k_step"], "s.kind = 'seen'", cells_ready=True))
    val = _table(A.seed_stats(db, sel, ["'unseen'"], A.VALIDATION, cells_ready=True)).get(("unseen",), {})
    name = "Seen@k jumps at k (from the validation to the training frontier)"
    rows, wins = [], 0
    for (set_name, k), series in sorted(per_set.items(), key=lambda kv: kv[0][1]):
        before = [s for s in series if s < k and series[s].mean is not None]
        if not before or k not in series or series[k].mean is None:
            continue
        b = max(before)
        jump = series[k].mean - series[b].mean
        base = (val[k].mean - val[b].mean) if (k in val and b in val and val[k].mean is not None
                                                and val[b].mean is not None) else 0.0
        won = jump - base > MARGIN
        wins += won
        rows.append(f"{set_name}: {_pct(series[b].mean)} at {b} -> {_pct(series[k].mean)} at {k} "
                    f"(unseen moved {100 * base:+.1f})")
    if not rows:
        return {"effect": name, "observed": None, "detail": "needs a Seen@k set with a checkpoint before k"}
    return {"effect": name, "observed": wins > len(rows) / 2,
            "detail": f"{wins} of {len(rows)} sets rose more than the unseen set over the step to k; "
                      + "; ".join(rows)}


def _image_reuse(db, sel) -> dict:
    pts = _table(A.seed_stats(db, sel, ["COALESCE(s.dedup, 'image')"], "s.kind = 'unseen'", cells_ready=True))
    name = "image re-use inflates unseen accuracy (no de-dup above image de-dup)"
    img = _last(pts.get(("image",), {}))
    other = _last(pts.get(("none",), {})) or _last(pts.get(("pair",), {}))
    if not img or not other:
        return {"effect": name, "observed": None, "detail": "needs unseen sets with image and pair/none de-dup"}
    d = other[1].mean - img[1].mean
    return {"effect": name, "observed": d > MARGIN,
            "detail": f"at step {img[0]}: without image de-dup {_pct(other[1].mean)} vs with "
                      f"{_pct(img[1].mean)} ({100 * d:+.1f} points)"}


def _ocr_semantic_first(db, sel, ks: list[int]) -> dict:
    pts = _table(A.seed_stats(db, sel, ["c.subcategory"], "c.category = 'OCR'", cells_ready=True))
    sem, rec = pts.get(("semantic",), {}), pts.get(("recognition",), {})
    name = "OCR semantic learned before recognition"
    both = sorted(s for s in sem if s in rec and sem[s].mean is not None and rec[s].mean is not None)
    common = _learning(both, sem, rec)
    if not common:
        return {"effect": name, "observed": None, "detail": "no OCR semantic and recognition accuracy above "
                "the untrained floor"}
    early = common[: max(1, len(common) // 2)]
    gaps = [sem[s].mean - rec[s].mean for s in early]
    return {"effect": name, "observed": all(g > MARGIN for g in gaps),
            "detail": "semantic ahead by > 2 points at every early checkpoint? " + ", ".join(
                f"{s}: semantic {_pct(sem[s].mean)} vs recognition {_pct(rec[s].mean)}" for s in early)
            + _skipped(both[: both.index(early[-1]) + 1], early)}


def _bounding_slow(db, sel) -> dict:
    pts = _table(A.seed_stats(db, sel, ["c.category"], "1", cells_ready=True))
    name = "Bounding learned slowly (lowest category at the end)"
    finals = {k[0]: _last(v) for k, v in pts.items() if k[0] and _last(v)}
    if "Bounding" not in finals or len(finals) < 2:
        return {"effect": name, "observed": None, "detail": "no Bounding items judged"}
    ranked = sorted(finals.items(), key=lambda kv: kv[1][1].mean)
    return {"effect": name, "observed": ranked[0][0] == "Bounding",
            "detail": "final accuracy by category: " + ", ".join(f"{c} {_pct(p.mean)}" for c, (_, p) in ranked)}


def accuracy_table(db, runs: list[str], spec_hash: str) -> list[dict]:
    """Mean accuracy per (set, checkpoint) over seeds: the demo's printed table."""
    sel = _sel(db, runs, spec_hash)
    pts = A.seed_stats(db, sel, ["s.name", "s.kind", "COALESCE(s.k_step, 1e9)"], "1")
    rows: dict[str, dict] = {}
    order: dict[str, tuple] = {}
    for p in pts:
        name, kind, k = p.key
        rows.setdefault(name, {"set": name})[str(p.step)] = p.mean
        order[name] = (kind != "seen", k, name)
    return [rows[n] for n in sorted(rows, key=lambda n: order[n])]
