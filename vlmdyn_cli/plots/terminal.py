"""Draw a figure spec (figures.py) in the terminal with plotext: same numbers, no bands.

Each panel becomes one plotext chart (series means; the 1-sigma bands and the
dashed-before-k styling cannot be drawn in text, so the caption says so).
"""

from __future__ import annotations

from vlmdyn_cli.errors import require

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _rgb(hex_: str) -> tuple[int, int, int]:
    h = hex_.lstrip("#")
    rgb = tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))
    return (200, 200, 200) if rgb == (0, 0, 0) else rgb  # black lines would vanish on dark terminals


def render_text(spec: dict, width: int = 100, height: int = 22, color: bool = True) -> str:
    """The figure as text (one chart per panel), ready to print; ``color=False`` strips ANSI codes."""
    plt = require("plotext", "pip install plotext", "terminal plots")
    out = [spec["title"]]
    plt.terminal.limit(False, False)  # size from the arguments, not from the real terminal
    for panel in spec["panels"]:
        fig = plt.figure
        fig.clear()
        fig.plot_size(width, height)
        scale = 100.0 if panel["percent"] else 1.0
        drawn = 0
        for s in panel["series"]:
            pts = [p for p in s["points"] if p["mean"] is not None]
            if not pts:
                continue
            sig = fig.signal([p["step"] for p in pts], [p["mean"] * scale for p in pts],
                             marker=plt.marker("hd", pixel=_rgb(s["color"])))
            sig.label(s["label"][:28])
            sig.lines()
            fig.draw(sig)
            drawn += 1
        if not drawn:
            continue
        fig.title(panel["title"] or spec["title"])
        fig.label(panel["xlabel"], axis="x")
        fig.label(panel["ylabel"], axis="y")
        text = fig.build().string()
        out.append(text if color else _ANSI.sub("", text))
        key = []
        for s in panel["series"]:
            r, g, b = _rgb(s["color"])
            swatch = f"\x1b[38;2;{r};{g};{b}m\u2588\u2588\x1b[0m" if color else "--"
            key.append(f"{swatch} {s['label']}")
        out.append("   ".join(key))
    out.append(spec.get("caption", ""))
    out.extend(spec.get("notes", []))
    out.append("(terminal view: means over seeds only; the image output adds the 1-sigma bands)")
    return "\n".join(x for x in out if x)
