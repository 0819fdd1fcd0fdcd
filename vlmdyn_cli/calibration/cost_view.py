"""The cost/agreement view of `calibrate report`: agreement with the human verdicts against
$ per 1,000 judgements, one point per judge, a calibrated cascade's curve over its band, and
the paper's gpt-4o-mini agreement (METHOD.md section 4) as reference lines (the paper gives
no cost, so they are horizontal lines, not points).

``cascade_curve`` (``cascade_curves``: for each calibrated cascade, both stages judging the labelled
items first) is computed on the labelled items (in sample: the band was chosen on them;
`calibrate fit` prints the held-out figures). ``render_text`` draws a character grid for the
terminal, ``render_png`` a matplotlib figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlmdyn_cli.atomic import save_figure
from vlmdyn_cli.calibration.report import PAPER_TABLE

PAPER_LINES = {label.replace("gpt-4o-mini (paper, ", "paper gpt-4o-mini, ").rstrip(")"): v["accuracy"]
               for label, v in PAPER_TABLE.items()}


def points(reports: list[dict]) -> list[dict]:
    """One point per judge report: its agreement and $ per 1,000 judgements."""
    return [{"judge": r["judge"], "usd_per_1000": r["usd_per_1000"], "agreement": r["accuracy"],
             "n": r["n_scored"]} for r in reports if r["accuracy"] is not None]


def cascade_curve(p_yes, llm_yes, truth, band: tuple[float, float], llm_usd_per_1000: float | None,
                  steps: int = 21, priority=None) -> list[dict]:
    """Agreement and $/1k of the cascade as its band widens around its centre, from the cheap
    judge alone (escalated share 0) to the LLM alone (1). ``llm_yes``: 1/0, or None (unscored).
    ``priority``: the cheap stage's defer priority per item, when it ranks a budget by more than P(yes)
    (the items are then escalated in that order, as the cascade does)."""
    p = np.asarray(p_yes, dtype=float)
    y = np.asarray([1 if t == "yes" else 0 for t in truth])
    centre = (band[0] + band[1]) / 2
    order = (np.argsort(np.abs(p - centre), kind="stable") if priority is None      # least sure first
             else np.argsort(-np.asarray(priority, dtype=float), kind="stable"))
    cheap = (p >= 0.5).astype(int)
    llm = np.array([-1 if v is None else v for v in llm_yes])
    out = []
    for i in range(steps):
        share = i / (steps - 1)
        k = int(round(share * len(p)))
        v = cheap.copy()
        v[order[:k]] = llm[order[:k]]
        ok = v >= 0
        out.append({"escalated": k / len(p), "agreement": float((v[ok] == y[ok]).mean()) if ok.any() else None,
                    "usd_per_1000": None if llm_usd_per_1000 is None else llm_usd_per_1000 * k / len(p)})
    return out


def cascade_curves(d, specs, hv, reporter) -> dict[str, list[dict]]:
    """The curve of every calibrated cascade among ``specs`` on the labelled items of ``hv`` (human
    verdicts); both stages judge those items first (cached as always)."""
    return {s.name: _curve_of(d, s, hv, reporter) for s in specs if _calibrated(s)}


def _calibrated(spec) -> bool:
    """A calibrated cascade: a fitted stage that defers, then a model judge."""
    return (spec.backend == "cascade" and len(spec.stages) == 2 and spec.stages[0].backend == "fitted"
            and spec.stages[1].backend not in ("rules", "fitted"))


def _curve_of(d, spec, hv, reporter) -> list[dict]:
    """The cascade's agreement and cost as its band widens (both stages judge the labelled items; cached)."""
    from vlmdyn_cli.calibration.report import stored_judgements
    from vlmdyn_cli.judging.backends.cascade import defer_band
    from vlmdyn_cli.judging.run import judge_triples

    hashes = sorted(hv.verdict)
    cheap, llm = spec.stages
    for s in (cheap, llm):
        judge_triples(d, s, hashes, reporter=reporter)
    cj, lj = stored_judgements(d, cheap.hash, hashes), stored_judgements(d, llm.hash, hashes)
    keep = [h for h in hashes if cj.get(h, {}).get("p_yes") is not None]
    costs = [lj[h]["cost_usd"] for h in keep if h in lj and lj[h]["cost_usd"] is not None]
    llm_yes = [None if lj.get(h, {}).get("status") != "scored" else int(lj[h]["verdict"] == "yes") for h in keep]
    return cascade_curve([cj[h]["p_yes"] for h in keep], llm_yes, [hv.verdict[h] for h in keep], defer_band(spec),
                         1000 * sum(costs) / len(costs) if costs else None,
                         priority=_defer_priorities(d, cheap, {h: cj[h]["p_yes"] for h in keep}))


def _defer_priorities(d, cheap, p_yes: dict[str, float]) -> list[float] | None:
    """The fitted stage's defer priorities (not stored: computed again) when it ranks by more than P(yes)."""
    from vlmdyn_cli.calibration.fit import labelled_items
    from vlmdyn_cli.judging.backends import create_backend
    from vlmdyn_cli.judging.backends.fitted_backend import defer_priority

    if not cheap.options.get("llm_ok_weights"):
        return None
    backend = create_backend(cheap)
    got: dict[str, float | None] = {}
    try:
        backend.run(labelled_items(d, dict.fromkeys(p_yes, "")), lambda v: got.__setitem__(v.key, v.defer_priority))
    finally:
        backend.close()
    return [defer_priority(p) if got.get(h) is None else got[h] for h, p in p_yes.items()]


def render_text(pts: list[dict], curves: dict[str, list[dict]], width: int = 64, height: int = 16) -> str:
    """A character scatter: x = $ per 1,000 judgements, y = agreement; letters are the judges."""
    xs = [p["usd_per_1000"] for p in pts] + [c["usd_per_1000"] for cv in curves.values() for c in cv
                                               if c["usd_per_1000"] is not None]
    ys = [p["agreement"] for p in pts] + [c["agreement"] for cv in curves.values() for c in cv
                                           if c["agreement"] is not None] + list(PAPER_LINES.values())
    if not pts:
        return "(no judge with scored labelled items)"
    x_hi = max(xs + [1e-9]) * 1.05
    y_lo, y_hi = min(ys) - 0.02, min(1.0, max(ys) + 0.02)
    grid = [[" "] * width for _ in range(height)]

    def put(x, y, ch):
        col = min(width - 1, int(x / x_hi * (width - 1)))
        row = min(height - 1, int((y_hi - y) / (y_hi - y_lo) * (height - 1)))
        grid[row][col] = ch

    for y in PAPER_LINES.values():
        for col in range(width):
            put(col / (width - 1) * x_hi, y, "-")
    for cv in curves.values():
        for c in cv:
            if c["usd_per_1000"] is not None and c["agreement"] is not None:
                put(c["usd_per_1000"], c["agreement"], ".")
    legend = []
    for i, p in enumerate(pts):
        ch = chr(ord("A") + i % 26)
        put(p["usd_per_1000"], p["agreement"], ch)
        legend.append(f"  {ch} {p['judge']}: {100 * p['agreement']:.1f}% at ${p['usd_per_1000']:.4f} per 1k "
                      f"(n={p['n']})")
    lines = ["agreement with humans vs $ per 1,000 judgements"]
    for r, row in enumerate(grid):
        y = y_hi - r / (height - 1) * (y_hi - y_lo)
        lines.append(f"{100 * y:5.1f}% |" + "".join(row))
    lines.append("       +" + "-" * width)
    lines.append(f"        $0{' ' * (width - 14)}${x_hi:.4f}")
    lines += legend
    for name in curves:
        lines.append(f"  . {name}: the cascade as its band widens (escalated share 0 -> 1; in sample)")
    lines += [f"  - {k}: {100 * v:.1f}% (METHOD.md section 4; no cost given)" for k, v in PAPER_LINES.items()]
    return "\n".join(lines)


def render_png(pts: list[dict], curves: dict[str, list[dict]], path: Path) -> Path:
    from vlmdyn_cli.plots.render import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, cv in curves.items():
        c = [x for x in cv if x["usd_per_1000"] is not None and x["agreement"] is not None]
        ax.plot([x["usd_per_1000"] for x in c], [100 * x["agreement"] for x in c], "-", color="0.6", lw=1.2,
                label=f"{name}: band widened (in sample)", zorder=1)
    for p in pts:
        ax.scatter([p["usd_per_1000"]], [100 * p["agreement"]], s=36, zorder=3)
        ax.annotate(p["judge"], (p["usd_per_1000"], 100 * p["agreement"]), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)
    for (label, y), style in zip(PAPER_LINES.items(), ("--", ":")):
        ax.axhline(100 * y, linestyle=style, color="tab:red", lw=1, label=f"{label} ({100 * y:.1f}%)")
    ax.set_xlabel("$ per 1,000 judgements")
    ax.set_ylabel("agreement with the human verdicts (%)")
    ax.set_title("Judges: agreement vs cost")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        save_figure(fig, path, "--png", format="png")
    finally:
        plt.close(fig)
    return path
