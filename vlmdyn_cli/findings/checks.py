"""The paper's findings (METHOD.md section 5) as rules over judged accuracies.

Every check computes one number per run (seed) from the counts in ``data.Study``,
then a verdict from the numbers: *observed*, *not observed*, or *cannot be shown*
(with the sentence saying which data is missing). Nothing here knows what the
answer should be. Accuracies are in percent, differences in points.

The rules are data (``RULES``: one ``Rule`` per finding, its thresholds the constants
below); the README's list is generated from them. Memorisation findings (1-3) compare
category-standardised accuracies (``data.Study.standardised``) of the sets the paper
compares: trained-on Seen@k sets only from k on, the image-de-duplicated unseen set as
the validation frontier, pair against image de-duplication for finding 3. An *effect*
(1, 3, and each set of 2) holds when its mean over seeds is at least ``MIN_EFFECT``
points and it is positive in every seed. Verdicts on 4-8 use the mean curves over
seeds (as the paper's figures do); the per-seed numbers are reported next to them.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Callable

from vlmdyn_cli.findings.data import Counts, Missing, RunData, Study, rate

MIN_EFFECT = 2.0    # points: smallest effect that counts (1, 2, 3, 5)
JUMP_SHARE = 0.8    # finding 2: share of the Seen@k sets that must jump (4 of 5 in the paper's schedule)
NEAR_ZERO = 5.0     # %: "near 0" (4a)
PLATEAU = 3.0       # points: largest late rise of a plateaued curve (4c)
GOOD = 50.0         # %: "improves to about 65%" counts from here (4e)
SLIGHT = 10.0       # points: "only slightly better" (7)
EARLY_GAP = 5.0     # points: semantic ahead of recognition early (8)
RECENCY_RHO = 0.5   # rank correlation that counts as "ordered by recency" (6)
EARLY = 0.25        # fraction of the epoch that ends the "early" checkpoints (4c, 8)

OBSERVED, NOT_OBSERVED, CANNOT = "observed", "not observed", "cannot be shown"


@dataclass(frozen=True)
class Rule:
    """What a finding claims and how it is decided (no data): the README's rules list is generated
    from these (``rules_markdown``)."""

    id: str
    title: str
    rule: str
    measure: str        # what the per-seed number is


RULES: dict[str, Rule] = {r.id: r for r in (
    Rule("1", "Two frontiers: trained-on sets above the unseen set",
         f"At the last evaluated checkpoint L, the trained-on Seen@k sets (k <= L, pooled) beat the "
         f"image-de-duplicated unseen set, category-standardised: by at least {MIN_EFFECT:g} points on "
         f"average over seeds and by more than 0 in every seed.",
         "seen minus unseen at L, points"),
    Rule("2", "Each Seen@k jumps from the validation to the training frontier at k",
         f"For every Seen@k set with an evaluated checkpoint p before k: its category-standardised "
         f"accuracy rises from p to k by at least {MIN_EFFECT:g} points more than the image-de-duplicated "
         f"unseen set's over the same step (on average over seeds, and more than 0 in every seed), for at "
         f"least {JUMP_SHARE:.0%} of the sets. Also reported: the set's distance from the unseen set at p "
         f"(on the validation frontier before k) and from the best other trained-on set at k.",
         f"Seen@k sets rising by >= {MIN_EFFECT:g} points more than unseen over the step to k"),
    Rule("3", "Image re-use inflates unseen accuracy",
         f"At L, the unseen set with pair de-duplication (its images may have been trained with other "
         f"questions) beats the unseen set with image de-duplication, category-standardised: by at least "
         f"{MIN_EFFECT:g} points on average over seeds and by more than 0 in every seed.",
         "pair-dedup minus image-dedup unseen at L, points"),
    Rule("4a", "Bounding starts near 0",
         f"At the first evaluated checkpoint, Bounding accuracy is at most {NEAR_ZERO:g}% on the trained-on "
         f"seen sets and on the unseen set (mean over seeds).",
         "Bounding accuracy at the first checkpoint, higher of seen and unseen, %"),
    Rule("4b", "Bounding is the lowest category at the end",
         "At L, Bounding has the lowest mean accuracy of all categories, on the trained-on seen sets and on "
         "the unseen set.",
         "lowest other category minus Bounding at L (smaller of seen/unseen), points"),
    Rule("4c", "Complex plateaus early",
         f"With q the evaluated checkpoint nearest {EARLY:.0%} of the epoch: Complex's mean accuracy rises "
         f"by at most {PLATEAU:g} points from q to L, and by less than it rose from the first checkpoint to q, "
         f"on the trained-on seen sets and on the unseen set.",
         "Complex rise from q to L on the unseen set, points"),
    Rule("4d", "OCR ends best despite being 14% of the data",
         "At L, OCR has the highest mean accuracy of all categories, on the trained-on seen sets and on the "
         "unseen set.",
         "OCR minus the best other category at L (smaller of seen/unseen), points"),
    Rule("4e", "Object, Spatial and OCR improve to about 65%",
         f"At L, Object, Spatial and OCR each reach at least {GOOD:g}% mean accuracy on the unseen set "
         f"(the paper: about 65%).",
         "lowest of Object, Spatial, OCR on unseen at L, %"),
    Rule("5", "Seen-vs-unseen gap: large for OCR, small for Object/Spatial, none for Bounding",
         f"At L, per category, trained-on seen sets minus the unseen set (mean over seeds): OCR's gap is at "
         f"least {MIN_EFFECT:g} points and larger than Object's and Spatial's, and Bounding's is within "
         f"{MIN_EFFECT:g} points of 0 (Complex's is reported: the paper finds it odd).",
         "OCR gap at L, points"),
    Rule("6a", "OCR best on the most recent seen set, older ones by recency",
         f"At L, across the trained-on Seen@k sets, mean OCR accuracy is highest on the most recent set and "
         f"its rank correlation with k is at least {RECENCY_RHO:g}.",
         "rank correlation of OCR accuracy with k"),
    Rule("6b", "Complex worse on later seen sets",
         f"At L, across the trained-on Seen@k sets, the rank correlation of mean Complex accuracy with k is at "
         f"most -{RECENCY_RHO:g}.",
         "rank correlation of Complex accuracy with k"),
    Rule("7", "Bounding describe only slightly better than bbox",
         f"At L, on the trained-on seen sets and the unseen set pooled, mean accuracy of Bounding 'describe' "
         f"minus 'bbox' is between 0 and {SLIGHT:g} points.",
         "describe minus bbox at L, points"),
    Rule("8", "OCR semantic learned much earlier than recognition",
         f"At every evaluated checkpoint after the first up to the one nearest {EARLY:.0%} of the epoch, "
         f"mean OCR 'semantic' accuracy exceeds 'recognition' by at least {EARLY_GAP:g} points, on the "
         f"trained-on seen sets and on the unseen set.",
         "smallest semantic minus recognition gap early, points"),
)}


def rules_markdown() -> str:
    """The rules as a Markdown list (README, generated by ``python -m vlmdyn_cli.readme``)."""
    return "\n".join(f"- **{r.id}. {r.title}.** {r.rule} Per seed: {r.measure}." for r in RULES.values()) + "\n"


def _new(fid: str) -> "Finding":
    r = RULES[fid]
    return Finding(r.id, r.title, r.rule, r.measure)


@dataclass
class Finding:
    id: str
    title: str
    rule: str
    measure: str                                   # what the per-seed number is
    verdict: str = CANNOT
    why: str = ""                                  # the numbers behind the verdict, or what is missing
    per_seed: dict[str, float | None] = field(default_factory=dict)
    mean: float | None = None
    sd: float | None = None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _pts(x: float) -> float:
    return round(100 * x, 2)


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return round(statistics.fmean(values), 2), (round(statistics.stdev(values), 2) if len(values) > 1 else None)


def _effect(values: list[float]) -> bool:
    return bool(values) and statistics.fmean(values) >= MIN_EFFECT and all(v > 0 for v in values)


def _fmt(v: float | None, unit: str = "") -> str:
    return "n/a" if v is None else f"{v:+.1f}{unit}" if unit == " pts" else f"{v:.1f}{unit}"


def _per_run(st: Study, f: Finding, fn: Callable[[RunData], tuple[float, dict]]) -> bool:
    """Run ``fn`` on every run; fill per_seed/mean/sd/details. False (and the reason in
    ``f.why``) when any run lacks the data."""
    missing = []
    for rd in st.runs:
        try:
            value, detail = fn(rd)
        except Missing as exc:
            missing.append(str(exc))
            continue
        f.per_seed[rd.name] = value
        f.details[rd.name] = detail
    if missing:
        f.verdict, f.why = CANNOT, "; ".join(dict.fromkeys(missing))
        return False
    f.mean, f.sd = _mean_sd([v for v in f.per_seed.values() if v is not None])
    return True


def _step_word(steps) -> str:
    """"step 565", or "steps 565/566" when the runs' schedules differ."""
    steps = sorted(set(steps))
    return f"step {steps[0]}" if len(steps) == 1 else "steps " + "/".join(map(str, steps))


def _seen(rd: RunData, step: int) -> Counts:
    return rd.counts(step, rd.trained_seen(step))


def _val(rd: RunData, step: int) -> Counts:
    return rd.counts(step, [rd.unseen("image")])


# ------------------------------------------------------------------ 1, 2, 3: memorisation


def two_frontiers(st: Study) -> Finding:
    f = _new("1")

    def one(rd: RunData):
        last = rd.require_last()
        (s, v), cats = st.standardised(_seen(rd, last), _val(rd, last))
        curve = {}
        for step in rd.steps:
            try:
                (a, b), _ = st.standardised(_seen(rd, step), _val(rd, step))
                curve[step] = _pts(a - b)
            except Missing:
                pass
        return _pts(s - v), {"step": last, "seen": _pts(s), "unseen": _pts(v), "categories": cats,
                             "gap_by_step": curve}

    if _per_run(st, f, one):
        vals = list(f.per_seed.values())
        f.verdict = OBSERVED if _effect(vals) else NOT_OBSERVED
        seen_m, _ = _mean_sd([d["seen"] for d in f.details.values()])
        val_m, _ = _mean_sd([d["unseen"] for d in f.details.values()])
        f.why = (f"at {_step_word(rd.last for rd in st.runs)}: trained-on Seen@k {seen_m:.1f}% vs unseen {val_m:.1f}%; gap "
                 f"{_fmt(f.mean, ' pts')} on average, positive in {sum(v > 0 for v in vals)} of {len(vals)} seeds")
    return f


def seen_k_jump(st: Study) -> Finding:
    f = _new("2")

    def one(rd: RunData):
        sets = {}
        for s in rd.seen_sets():
            before = [p for p in rd.steps if p < s.k]
            if s.k not in rd.steps or not before:
                continue
            p = before[-1]
            (a, b, c, d), _ = st.standardised(rd.counts(p, [s]), rd.counts(s.k, [s]), _val(rd, p), _val(rd, s.k))
            row = {"from": p, "to": s.k, "seen_before": _pts(a), "seen_at_k": _pts(b), "unseen_before": _pts(c),
                   "unseen_at_k": _pts(d), "excess_rise": _pts((b - a) - (d - c)), "before_minus_unseen": _pts(a - c)}
            others = [o for o in rd.seen_sets() if o.k < s.k]
            if others:
                accs, _ = st.standardised(rd.counts(s.k, [s]), *[rd.counts(s.k, [o]) for o in others])
                row["at_k_minus_best_other"] = _pts(accs[0] - max(accs[1:]))
            sets[s.name] = row
        if not sets:
            raise Missing(f"run {rd.name}: no Seen@k set has an evaluated checkpoint before k")
        return float(sum(r["excess_rise"] >= MIN_EFFECT for r in sets.values())), {"sets": sets}

    if _per_run(st, f, one):
        names = [n for n in next(iter(f.details.values()))["sets"]
                 if all(n in d["sets"] for d in f.details.values())]
        summary, jumps = {}, 0
        for n in names:
            vals = [d["sets"][n]["excess_rise"] for d in f.details.values()]
            m, sd = _mean_sd(vals)
            ok = _effect(vals)
            jumps += ok
            summary[n] = {"excess_rise_mean": m, "excess_rise_sd": sd, "jumps": ok,
                          "before_minus_unseen_mean": _mean_sd(
                              [d["sets"][n]["before_minus_unseen"] for d in f.details.values()])[0]}
        need = math.ceil(JUMP_SHARE * len(names))
        f.details["summary"] = summary
        f.verdict = OBSERVED if names and jumps >= need else NOT_OBSERVED
        f.why = (f"{jumps} of {len(names)} sets jump (need {need}): " + ", ".join(
            f"{n} {_fmt(summary[n]['excess_rise_mean'], ' pts')}" for n in names))
    return f


def image_reuse(st: Study) -> Finding:
    f = _new("3")

    def one(rd: RunData):
        last = rd.require_last()
        (p, i), cats = st.standardised(rd.counts(last, [rd.unseen("pair")]), _val(rd, last))
        curve = {}
        for step in rd.steps:
            try:
                (a, b), _ = st.standardised(rd.counts(step, [rd.unseen("pair")]), _val(rd, step))
                curve[step] = _pts(a - b)
            except Missing:
                pass
        detail = {"step": last, "pair": _pts(p), "image": _pts(i), "categories": cats, "gap_by_step": curve}
        try:
            (n, i2), _ = st.standardised(rd.counts(last, [rd.unseen("none")]), _val(rd, last))
            detail["none_minus_image"] = _pts(n - i2)
        except Missing:
            pass
        return _pts(p - i), detail

    if _per_run(st, f, one):
        vals = list(f.per_seed.values())
        f.verdict = OBSERVED if _effect(vals) else NOT_OBSERVED
        pm, _ = _mean_sd([d["pair"] for d in f.details.values()])
        im, _ = _mean_sd([d["image"] for d in f.details.values()])
        f.why = (f"at {_step_word(rd.last for rd in st.runs)}: pair de-dup {pm:.1f}% vs image de-dup {im:.1f}%; inflation "
                 f"{_fmt(f.mean, ' pts')} on average, positive in {sum(v > 0 for v in vals)} of {len(vals)} seeds")
    return f


# ------------------------------------------------------------------ 4-8: categories


def _curves(st: Study, fn: Callable[[RunData], dict]) -> tuple[dict, list[str]]:
    """Mean over runs of nested {key: value} dicts returned by fn; missing messages."""
    got, missing = [], []
    for rd in st.runs:
        try:
            got.append(fn(rd))
        except Missing as exc:
            missing.append(str(exc))
    if missing or not got:
        return {}, list(dict.fromkeys(missing))
    out = {}
    for key in got[0]:
        vals = [g[key] for g in got if g.get(key) is not None]
        out[key] = round(statistics.fmean(vals), 2) if len(vals) == len(got) else None
    return out, []


def _cat(counts: Counts, cat: str) -> float | None:
    r = rate(counts, cat)
    return None if r is None else _pts(r)


def _need(value: float | None, what: str) -> float:
    if value is None:
        raise Missing(f"no scored {what} items")
    return value


def _nearest(rd: RunData, fraction: float) -> int:
    return min(rd.steps, key=lambda s: abs(s / rd.total_steps - fraction))


def bounding_starts_near_zero(st: Study) -> Finding:
    f = _new("4a")

    def one(rd: RunData):
        s1 = rd.steps[0] if rd.steps else None
        if s1 is None:
            raise Missing(f"run {rd.name}: no evaluated checkpoint")
        seen = _need(_cat(_seen(rd, s1), "Bounding"), f"Bounding (run {rd.name}, seen, step {s1})")
        val = _need(_cat(_val(rd, s1), "Bounding"), f"Bounding (run {rd.name}, unseen, step {s1})")
        return max(seen, val), {"step": s1, "seen": seen, "unseen": val}

    if _per_run(st, f, one):
        seen_m, _ = _mean_sd([d["seen"] for d in f.details.values()])
        val_m, _ = _mean_sd([d["unseen"] for d in f.details.values()])
        f.verdict = OBSERVED if max(seen_m, val_m) <= NEAR_ZERO else NOT_OBSERVED
        f.why = f"at {_step_word(d['step'] for d in f.details.values())}: seen {seen_m:.1f}%, unseen {val_m:.1f}%"
    return f


def _finals(rd: RunData) -> dict:
    last = rd.require_last()
    seen, val = _seen(rd, last), _val(rd, last)
    return {(w, c): _cat(t, c) for w, t in (("seen", seen), ("unseen", val)) for c in sorted(set(seen) | set(val))}


def _ranked_at_last(st: Study, f: Finding, cat: str, lowest: bool) -> Finding:
    def one(rd: RunData):
        fin = _finals(rd)
        margins = []
        for w in ("seen", "unseen"):
            mine = _need(fin.get((w, cat)), f"{cat} (run {rd.name}, {w}, step {rd.last})")
            others = [v for (ww, c), v in fin.items() if ww == w and c != cat and v is not None]
            if not others:
                raise Missing(f"run {rd.name}: only {cat} has scored items at step {rd.last}")
            margins.append(min(others) - mine if lowest else mine - max(others))
        return round(min(margins), 2), {f"{w}/{c}": v for (w, c), v in fin.items()}

    if _per_run(st, f, one):
        means, _ = _curves(st, lambda rd: {f"{w}/{c}": v for (w, c), v in _finals(rd).items()})
        ok = True
        parts = []
        for w in ("seen", "unseen"):
            row = {k.split("/", 1)[1]: v for k, v in means.items() if k.startswith(w + "/") and v is not None}
            pick = min(row, key=row.get) if lowest else max(row, key=row.get)
            ok &= pick == cat
            parts.append(f"{w}: " + ", ".join(f"{c} {v:.1f}%" for c, v in sorted(row.items(), key=lambda kv: kv[1])))
        f.verdict = OBSERVED if ok else NOT_OBSERVED
        f.why = f"at {_step_word(rd.last for rd in st.runs)}, mean over seeds: " + "; ".join(parts)
    return f


def bounding_lowest(st: Study) -> Finding:
    return _ranked_at_last(st, _new("4b"), "Bounding", lowest=True)


def ocr_best(st: Study) -> Finding:
    return _ranked_at_last(st, _new("4d"), "OCR", lowest=False)


def complex_plateaus(st: Study) -> Finding:
    f = _new("4c")

    def rises(rd: RunData) -> dict:
        last = rd.require_last()
        q = _nearest(rd, EARLY)
        s1 = rd.steps[0]
        if not s1 < q < last:
            raise Missing(f"run {rd.name}: needs evaluated checkpoints before and after {EARLY:.0%} of the "
                          f"epoch (has {', '.join(map(str, rd.steps))})")
        out = {"q": q}
        for w, get in (("seen", _seen), ("unseen", _val)):
            a, b, c = (_need(_cat(get(rd, s), "Complex"), f"Complex (run {rd.name}, {w}, step {s})")
                       for s in (s1, q, last))
            out[f"{w}/early"], out[f"{w}/late"] = round(b - a, 2), round(c - b, 2)
        return out

    if _per_run(st, f, lambda rd: (rises(rd)["unseen/late"], rises(rd))):
        m, _ = _curves(st, rises)
        ok = all(m[f"{w}/late"] <= PLATEAU and m[f"{w}/late"] < m[f"{w}/early"] for w in ("seen", "unseen"))
        f.verdict = OBSERVED if ok else NOT_OBSERVED
        f.why = "; ".join(f"{w}: {_fmt(m[f'{w}/early'], ' pts')} before q, {_fmt(m[f'{w}/late'], ' pts')} after"
                          for w in ("seen", "unseen")) + f" (q = {_step_word(d['q'] for d in f.details.values())})"
    return f


def strong_categories(st: Study) -> Finding:
    f = _new("4e")

    def one(rd: RunData):
        val = _val(rd, rd.require_last())
        accs = {c: _need(_cat(val, c), f"{c} (run {rd.name}, unseen)") for c in ("Object", "Spatial", "OCR")}
        return min(accs.values()), accs

    if _per_run(st, f, one):
        means = {c: _mean_sd([d[c] for d in f.details.values()])[0] for c in ("Object", "Spatial", "OCR")}
        f.verdict = OBSERVED if all(v >= GOOD for v in means.values()) else NOT_OBSERVED
        f.why = f"at {_step_word(rd.last for rd in st.runs)}, unseen: " + ", ".join(f"{c} {v:.1f}%" for c, v in means.items())
    return f


def category_gaps(st: Study) -> Finding:
    f = _new("5")

    def gaps(rd: RunData) -> dict:
        fin = _finals(rd)
        return {c: (round(fin[("seen", c)] - fin[("unseen", c)], 2)
                    if fin.get(("seen", c)) is not None and fin.get(("unseen", c)) is not None else None)
                for c in ("OCR", "Object", "Spatial", "Bounding", "Complex")}

    def one(rd: RunData):
        g = gaps(rd)
        return _need(g["OCR"], f"OCR (run {rd.name}, seen and unseen at L)"), g

    if _per_run(st, f, one):
        m, _ = _curves(st, gaps)
        ok = (m["OCR"] is not None and m["OCR"] >= MIN_EFFECT
              and all(m[c] is not None and m[c] < m["OCR"] for c in ("Object", "Spatial"))
              and m["Bounding"] is not None and abs(m["Bounding"]) < MIN_EFFECT)
        f.verdict = OBSERVED if ok else NOT_OBSERVED
        f.why = "gap at L: " + ", ".join(f"{c} {_fmt(v, ' pts')}" for c, v in m.items())
    return f


def _spearman(xs: list[float], ys: list[float]) -> float | None:
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for t in range(i, j + 1):
                r[order[t]] = (i + j) / 2
            i = j + 1
        return r

    if len(xs) < 3:
        return None
    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    num = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    den = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return round(num / den, 3) if den else None


def _by_set(rd: RunData, cat: str) -> dict[int, float | None]:
    """k -> accuracy of that Seen@k set on ``cat`` at L."""
    last = rd.require_last()
    sets = rd.trained_seen(last)
    if len(sets) < 3:
        raise Missing(f"run {rd.name}: needs at least 3 Seen@k sets, has {len(sets)}")
    return {s.k: _cat(rd.counts(last, [s]), cat) for s in sets}


def _recency(st: Study, f: Finding, cat: str, rising: bool) -> Finding:
    def one(rd: RunData):
        accs = {k: v for k, v in _by_set(rd, cat).items() if v is not None}
        rho = _spearman([float(k) for k in accs], list(accs.values()))
        if rho is None:
            raise Missing(f"run {rd.name}: fewer than 3 Seen@k sets with scored {cat} items")
        return rho, {f"seen@{k}": v for k, v in accs.items()}

    if _per_run(st, f, one):
        m, _ = _curves(st, lambda rd: _by_set(rd, cat))
        ks = sorted(k for k, v in m.items() if v is not None)
        rho = _spearman([float(k) for k in ks], [m[k] for k in ks])
        f.details["mean_by_set"] = {f"seen@{k}": m[k] for k in ks}
        f.details["rho_of_mean"] = rho
        if rising:
            ok = rho is not None and rho >= RECENCY_RHO and m[ks[-1]] == max(m[k] for k in ks)
        else:
            ok = rho is not None and rho <= -RECENCY_RHO
        f.verdict = OBSERVED if ok else NOT_OBSERVED
        f.why = (f"{cat} at {_step_word(rd.last for rd in st.runs)} by set (mean): "
                 + ", ".join(f"seen@{k} {m[k]:.1f}%" for k in ks) + f"; rank correlation with k {rho}")
    return f


def ocr_by_recency(st: Study) -> Finding:
    return _recency(st, _new("6a"), "OCR", rising=True)


def complex_later_worse(st: Study) -> Finding:
    return _recency(st, _new("6b"), "Complex", rising=False)


def describe_vs_bbox(st: Study) -> Finding:
    f = _new("7")

    def one(rd: RunData):
        last = rd.require_last()
        c = rd.counts(last, rd.trained_seen(last) + [rd.unseen("image")], by="subcategory")
        d = _need(_cat(c, "Bounding/describe"), f"Bounding describe (run {rd.name})")
        b = _need(_cat(c, "Bounding/bbox"), f"Bounding bbox (run {rd.name})")
        return round(d - b, 2), {"describe": d, "bbox": b}

    if _per_run(st, f, one):
        f.verdict = OBSERVED if 0 <= f.mean <= SLIGHT else NOT_OBSERVED
        dm, _ = _mean_sd([d["describe"] for d in f.details.values()])
        bm, _ = _mean_sd([d["bbox"] for d in f.details.values()])
        f.why = f"at {_step_word(rd.last for rd in st.runs)}: describe {dm:.1f}%, bbox {bm:.1f}% ({_fmt(f.mean, ' pts')})"
    return f


def ocr_semantic_first(st: Study) -> Finding:
    f = _new("8")

    def gaps(rd: RunData) -> dict:
        q = _nearest(rd, EARLY)
        early = [s for s in rd.steps[1:] if s <= q]
        if not early:
            raise Missing(f"run {rd.name}: needs evaluated checkpoints after the first, up to {EARLY:.0%} of "
                          f"the epoch (has {', '.join(map(str, rd.steps))})")
        out = {}
        for s in early:
            for w, sets in (("seen", rd.trained_seen(s)), ("unseen", [rd.unseen("image")])):
                c = rd.counts(s, sets, by="subcategory")
                sem = _need(_cat(c, "OCR/semantic"), f"OCR semantic (run {rd.name}, {w}, step {s})")
                rec = _need(_cat(c, "OCR/recognition"), f"OCR recognition (run {rd.name}, {w}, step {s})")
                out[f"{w}@{s}"] = round(sem - rec, 2)
        return out

    if _per_run(st, f, lambda rd: (min(gaps(rd).values()), gaps(rd))):
        m, _ = _curves(st, gaps)
        f.verdict = OBSERVED if m and all(v is not None and v >= EARLY_GAP for v in m.values()) else NOT_OBSERVED
        f.why = "semantic minus recognition (mean): " + ", ".join(f"{k} {_fmt(v, ' pts')}" for k, v in m.items())
    return f


CHECKS: tuple[Callable[[Study], Finding], ...] = (
    two_frontiers, seen_k_jump, image_reuse, bounding_starts_near_zero, bounding_lowest, complex_plateaus,
    ocr_best, strong_categories, category_gaps, ocr_by_recency, complex_later_worse, describe_vs_bbox,
    ocr_semantic_first)
