"""Checks of METHOD.md section 5's effects on the measured data.

Each check computes its numbers from the judged accuracies (the same SQL
aggregation the figures use), states the rule it applied, and says whether
the effect was observed. Nothing here knows what the answer "should" be; a
demo that did not learn reports "not observed" with the numbers. Comparisons
over checkpoints skip those where both curves are still under LEARNED (the
untrained start), and say how many they skipped.

The three memorisation checks (seen vs unseen, Seen@k jump, image re-use)
compare *category-standardised* accuracies: each set's per-category accuracies
are averaged with one common category mix (all judged items at that step).
The demo's sets hold a few hundred items, and their category mixes differ by
chance (Bounding, at a few percent accuracy, is 30-40% of a set), which alone
moves a raw set accuracy by 1-2 points: as much as the effects themselves.
"""

from __future__ import annotations

from vlmdyn_cli.plots import aggregate as A

MARGIN = 0.02   # differences smaller than 2 accuracy points count as "no difference"
LEARNED = 0.05  # a checkpoint where both compared curves are under 5% is before learning began:
                # the two cannot differ there, so it is left out of "ahead at n of m checkpoints"


def _mix(db, sel) -> dict[int, dict[str, int]]:
    """Scored items per category at every step, over all sets: the common reference mix."""
    out: dict[int, dict[str, int]] = {}
    for p in A.seed_stats(db, sel, ["c.category"], "1", cells_ready=True):
        if p.key[0] and p.scored:
            out.setdefault(p.step, {})[p.key[0]] = p.scored
    return out


def _cats(db, sel, keys: list[str], where: str) -> dict[tuple, dict[int, dict[str, float]]]:
    """Accuracy (mean over seeds) per key, step and category."""
    out: dict[tuple, dict[int, dict[str, float]]] = {}
    for p in A.seed_stats(db, sel, keys + ["c.category"], where, cells_ready=True):
        if p.mean is not None and p.key[-1]:
            out.setdefault(p.key[:-1], {}).setdefault(p.step, {})[p.key[-1]] = p.mean
    return out


def _std(weights: dict[str, int], *accs: dict[str, float] | None) -> tuple[float, ...] | None:
    """Each per-category accuracy dict averaged with one category mix, over the categories all
    of them have (None when they share none)."""
    if any(not a for a in accs):
        return None
    cats = [c for c in accs[0] if all(c in a for a in accs) and weights.get(c)]
    total = sum(weights[c] for c in cats)
    if not total:
        return None
    return tuple(sum(weights[c] * a[c] for c in cats) / total for a in accs)


def _table(points) -> dict[tuple, dict[int, A.Point]]:
    out: dict[tuple, dict[int, A.Point]] = {}
    for p in points:
        out.setdefault(p.key, {})[p.step] = p
    return out


def _means(series: dict[int, A.Point]) -> dict[int, float]:
    """step -> mean accuracy, for the steps that have one."""
    return {s: p.mean for s, p in series.items() if p.mean is not None}


def _sel(db, runs: list[str], spec_hash: str) -> A.Selection:
    return A.selection(db, runs=runs, judge=spec_hash)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def check_effects(db, runs: list[str], spec_hash: str) -> list[dict]:
    sel = _sel(db, runs, spec_hash)
    A.ensure_cells(db, sel)
    mix = _mix(db, sel)
    return [_seen_vs_unseen(db, sel, mix), _seen_k_jump(db, sel, mix), _image_reuse(db, sel, mix),
            _ocr_semantic_first(db, sel), _bounding_slow(db, sel)]


def _learning(steps: list[int], a: dict[int, float], b: dict[int, float]) -> list[int]:
    """The steps at which curve a or b is at or above LEARNED."""
    return [s for s in steps if max(a[s], b[s]) >= LEARNED]


def _skipped(all_steps: list[int], kept: list[int]) -> str:
    gone = [s for s in all_steps if s not in kept]
    return (f" (skipped {', '.join(map(str, gone))}: both under {100 * LEARNED:.0f}%, before learning began)"
            if gone else "")


def _seen_vs_unseen(db, sel, mix) -> dict:
    seen_c = _cats(db, sel, ["'seen'"], A.SEEN_AT_STEP).get(("seen",), {})
    val_c = _cats(db, sel, ["'unseen'"], A.VALIDATION).get(("unseen",), {})
    seen, val = {}, {}
    for step in seen_c:
        pair = _std(mix.get(step, {}), seen_c[step], val_c.get(step))
        if pair:
            seen[step], val[step] = pair
    both = sorted(seen)
    common = _learning(both, seen, val)
    name = "seen above unseen (training frontier above validation)"
    if not common:
        return {"effect": name, "observed": None, "detail": "no step with both seen and unseen accuracy "
                "above the untrained floor"}
    gaps = [seen[s] - val[s] for s in common]
    last = common[-1]
    observed = sum(g > MARGIN for g in gaps) > len(gaps) / 2
    return {"effect": name, "observed": observed,
            "detail": f"category-standardised; at step {last}: trained-on sets {_pct(seen[last])} vs unseen {_pct(val[last])}; "
                      f"seen ahead by > {100 * MARGIN:.0f} points at {sum(g > MARGIN for g in gaps)} of "
                      f"{len(gaps)} checkpoints" + _skipped(both, common),
            "numbers": {str(s): [seen[s], val[s]] for s in common}}


def _seen_k_jump(db, sel, mix) -> dict:
    per_set = _cats(db, sel, ["s.name", "s.k_step"], "s.kind = 'seen'")
    val = _cats(db, sel, ["'unseen'"], A.VALIDATION).get(("unseen",), {})
    name = "Seen@k jumps at k (from the validation to the training frontier)"
    rows, wins = [], 0
    for (set_name, k), series in sorted(per_set.items(), key=lambda kv: kv[0][1]):
        before = [s for s in series if s < k]
        if not before or k not in series:
            continue
        b = max(before)
        four = _std(mix.get(k, {}), series[b], series[k], val.get(b), val.get(k))
        if four is None:
            continue
        sb, sk, vb, vk = four
        won = (sk - sb) - (vk - vb) > MARGIN
        wins += won
        rows.append(f"{set_name}: {_pct(sb)} at {b} -> {_pct(sk)} at {k} (unseen moved {100 * (vk - vb):+.1f})")
    if not rows:
        return {"effect": name, "observed": None, "detail": "needs a Seen@k set with a checkpoint before k"}
    return {"effect": name, "observed": wins > len(rows) / 2,
            "detail": f"category-standardised; {wins} of {len(rows)} sets rose more than the unseen set over "
                      f"the step to k; "
                      + "; ".join(rows)}


def _image_reuse(db, sel, mix) -> dict:
    pts = _cats(db, sel, ["COALESCE(s.dedup, 'image')"], "s.kind = 'unseen'")
    name = "image re-use inflates unseen accuracy (no de-dup above image de-dup)"
    img = pts.get(("image",), {})
    other_name = "none" if ("none",) in pts else "pair"
    other = pts.get((other_name,), {})
    steps = sorted(s for s in img if s in other)
    pair = _std(mix.get(steps[-1], {}), other[steps[-1]], img[steps[-1]]) if steps else None
    if pair is None:
        return {"effect": name, "observed": None, "detail": "needs unseen sets with image and pair/none de-dup"}
    d = pair[0] - pair[1]
    return {"effect": name, "observed": d > MARGIN,
            "detail": f"category-standardised; at step {steps[-1]}: without image de-dup ({other_name}) "
                      f"{_pct(pair[0])} vs with {_pct(pair[1])} ({100 * d:+.1f} points)"}


def _ocr_semantic_first(db, sel) -> dict:
    pts = _table(A.seed_stats(db, sel, ["c.subcategory"], "c.category = 'OCR'", cells_ready=True))
    sem, rec = _means(pts.get(("semantic",), {})), _means(pts.get(("recognition",), {}))
    name = "OCR semantic learned before recognition"
    both = sorted(s for s in sem if s in rec)
    common = _learning(both, sem, rec)
    if not common:
        return {"effect": name, "observed": None, "detail": "no OCR semantic and recognition accuracy above "
                "the untrained floor"}
    early = common[: max(1, len(common) // 2)]
    gaps = [sem[s] - rec[s] for s in early]
    return {"effect": name, "observed": all(g > MARGIN for g in gaps),
            "detail": "semantic ahead by > 2 points at every early checkpoint? " + ", ".join(
                f"{s}: semantic {_pct(sem[s])} vs recognition {_pct(rec[s])}" for s in early)
            + _skipped(both[: both.index(early[-1]) + 1], early)}


def _bounding_slow(db, sel) -> dict:
    pts = _table(A.seed_stats(db, sel, ["c.category"], "1", cells_ready=True))
    name = "Bounding learned slowly (lowest category at the end)"
    finals = {}
    for key, series in pts.items():
        means = _means(series)
        if key[0] and means:
            finals[key[0]] = means[max(means)]          # the accuracy at the last judged step
    if "Bounding" not in finals or len(finals) < 2:
        return {"effect": name, "observed": None, "detail": "no Bounding items judged"}
    ranked = sorted(finals.items(), key=lambda kv: kv[1])
    return {"effect": name, "observed": ranked[0][0] == "Bounding",
            "detail": "final accuracy by category: " + ", ".join(f"{c} {_pct(v)}" for c, v in ranked)}


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
