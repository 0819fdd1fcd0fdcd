"""Draw a figure spec (figures.py) with matplotlib (Agg backend, imported here only)."""

from __future__ import annotations

from pathlib import Path

from vlmdyn_cli.atomic import save_figure
from vlmdyn_cli.errors import require


def _plt():
    mpl = require("matplotlib", "pip install matplotlib", "figures")
    mpl.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _xy(points, percent: bool):
    xs, ys, lo, hi = [], [], [], []
    scale = 100.0 if percent else 1.0
    for p in points:
        if p["mean"] is None:
            continue
        xs.append(p["step"])
        m = p["mean"] * scale
        sd = (p["std"] or 0.0) * scale
        ys.append(m)
        lo.append(m - sd)
        hi.append(m + sd)
    return xs, ys, lo, hi


def _draw_series(ax, s: dict, percent: bool) -> None:
    xs, ys, lo, hi = _xy(s["points"], percent)
    if not xs:
        return
    color, marker = s["color"], s["marker"] or None
    lw = s.get("linewidth", 1.8)
    if s.get("band"):
        ax.fill_between(xs, lo, hi, color=color, alpha=0.22 if s.get("emphasis") else 0.13, linewidth=0,
                        zorder=1 if s.get("emphasis") else 2)
    if s.get("emphasis"):
        ax.plot(xs, ys, color=color, linewidth=lw, alpha=s.get("alpha_line", 0.3), solid_capstyle="round",
                zorder=1, label=s["label"])
        return
    k = s.get("dashed_before")
    if k is not None:
        before = [i for i, x in enumerate(xs) if x <= k]
        after = [i for i, x in enumerate(xs) if x >= k]
        if len(before) > 1:
            ax.plot([xs[i] for i in before], [ys[i] for i in before], color=color, linestyle="--", linewidth=1.3,
                    marker=marker, markersize=3.5, zorder=3)
        ax.plot([xs[i] for i in after], [ys[i] for i in after], color=color, linestyle="-", linewidth=lw,
                marker=marker, markersize=3.5, zorder=3, label=s["label"])
    else:
        ax.plot(xs, ys, color=color, linestyle=s["linestyle"], linewidth=lw, marker=marker, markersize=3.5,
                zorder=3, label=s["label"])
    at = s.get("marker_at")
    if at is not None and at in xs:
        i = xs.index(at)
        ax.plot([at], [ys[i]], marker="*", markersize=12, color=color, markeredgecolor="white",
                markeredgewidth=0.8, zorder=4, linestyle="none")


def draw(spec: dict, path: str | Path, fmt: str = "png", dpi: int = 130) -> Path:
    """Render ``spec`` to ``path`` (png, pdf or svg)."""
    plt = _plt()
    panels = spec["panels"]
    n = len(panels)
    cols = 1 if n == 1 else (2 if n in (2, 4) else 3)
    rows = -(-n // cols)
    legend_outside = n == 1
    fig_w = 11.5 if legend_outside else 5.2 * cols
    fig_h = 5.8 if n == 1 else 3.9 * rows + 1.0
    fig, axes = plt.subplots(rows, cols, figsize=(fig_w, fig_h), squeeze=False)
    flat = [a for row in axes for a in row]
    label_sets = [tuple(s["label"] for s in p["series"]) for p in panels]
    shared = n > 1 and len(set(label_sets)) == 1 and len(flat) > n  # one legend in the spare slot
    for ax, panel in zip(flat, panels):
        for s in panel["series"]:
            _draw_series(ax, s, panel["percent"])
        ax.set_xlabel(panel["xlabel"])
        ax.set_ylabel(panel["ylabel"])
        if panel["title"]:
            ax.set_title(panel["title"], color=panel.get("title_color", "black"), fontweight="bold")
        ticks = panel.get("xticks") or []
        if panel.get("vlines"):
            for t in ticks:
                ax.axvline(t, color="#999999", linewidth=0.8, linestyle=":", zorder=0)
        elif ticks and len(ticks) <= 12:
            ax.set_xticks(ticks)
            ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        if panel["percent"]:
            top = max([p["mean"] * 100 + (p["std"] or 0) * 100 for s in panel["series"] for p in s["points"]
                       if p["mean"] is not None] or [100])
            ax.set_ylim(0, min(100, max(10, top * 1.12)))
        if panel.get("sci"):
            ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        ax.grid(True, color="#e5e5e5", linewidth=0.6)
        ax.spines[["top", "right"]].set_visible(False)
        seeds = f"mean \u00b1 1\u03c3, n={spec['n_seeds']} seed{'s' if spec['n_seeds'] != 1 else ''}"
        handles, labels = ax.get_legend_handles_labels()
        if handles and not shared:
            if legend_outside:
                ax.legend(handles, labels, title=seeds, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                          title_fontsize=8, frameon=False)
            else:
                ax.legend(handles, labels, title=seeds, fontsize=7, title_fontsize=7, loc="best", framealpha=0.85)
        if panel.get("legend_note") and legend_outside:
            ax.text(1.01, -0.02, panel["legend_note"],
                    transform=ax.transAxes, fontsize=7.5, color="#444444", va="top", wrap=True,
                    ha="left")
    for ax in flat[n:]:
        ax.set_axis_off()
    if shared:
        handles, labels = flat[0].get_legend_handles_labels()
        seeds = f"mean \u00b1 1\u03c3, n={spec['n_seeds']} seed{'s' if spec['n_seeds'] != 1 else ''}"
        flat[n].legend(handles, labels, title=seeds, loc="upper left", fontsize=9, title_fontsize=9, frameon=False)
        note = panels[0].get("legend_note")
        if note:
            import textwrap

            flat[n].text(0.02, 0.35, textwrap.fill(note, 48), transform=flat[n].transAxes, fontsize=8.5,
                         color="#444444", va="top")
    fig.suptitle(spec["title"], fontsize=12, fontweight="bold")
    foot = []
    if not legend_outside and not shared:  # line-style keys of multi-panel figures go to the footer, once
        foot += list(dict.fromkeys(p["legend_note"] for p in panels if p.get("legend_note")))
    foot += [spec.get("caption", "")] + spec.get("notes", [])
    foot.append(f"dataset {spec['dataset']}; runs: {_short_runs(spec['runs'])}")
    fig.text(0.01, 0.005, "\n".join(f for f in foot if f), fontsize=7.5, color="#333333", va="bottom", ha="left")
    bottom_in = 0.14 * len([f for f in foot if f]) + 0.12
    fig.tight_layout(rect=(0, min(0.3, bottom_in / fig_h), 1, 0.96))
    path = Path(path)
    save_figure(fig, path, "--out", format=fmt, dpi=dpi)
    plt.close(fig)
    return path


def _short_runs(runs: list[str]) -> str:
    return ", ".join(runs) if len(runs) <= 6 else ", ".join(runs[:5]) + f", ... ({len(runs)} runs)"
