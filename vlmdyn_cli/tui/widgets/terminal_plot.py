"""Line plots drawn in the terminal with plotext, returned as a Rich Text.

plotext builds the figure as ANSI-coloured text; the labels that come from the
database (category and set names) are cleaned first, so nothing but plotext's
own colour codes reaches ``Text.from_ansi``.
"""

from __future__ import annotations

from rich.text import Text

from vlmdyn_cli.tui.text import clean

PALETTE = [(86, 180, 233), (230, 159, 0), (0, 158, 115), (204, 121, 167), (240, 228, 66), (213, 94, 0),
           (0, 114, 178), (180, 180, 180), (140, 90, 200), (120, 200, 120)]


def line_plot(series: dict[str, tuple[list[float], list[float]]], *, width: int, height: int, title: str = "",
              xlabel: str = "step", ylabel: str = "accuracy %") -> Text:
    """series: label -> (xs, ys); ys in percent (None values are left out)."""
    import plotext as plt

    plt.terminal.limit(False, False)  # size from the widget, not from the real terminal
    fig = plt.figure
    fig.clear()
    fig.plot_size(max(30, width), max(8, height))
    drawn = 0
    for i, (label, (xs, ys)) in enumerate(series.items()):
        pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
        if not pts:
            continue
        sig = fig.signal([p[0] for p in pts], [p[1] for p in pts],
                         marker=plt.marker("hd", pixel=PALETTE[i % len(PALETTE)]))
        sig.label(clean(label)[:24])
        sig.lines()
        fig.draw(sig)
        drawn += 1
    if not drawn:
        return Text("nothing to plot yet (no judged generations)", style="dim")
    if title:
        fig.title(clean(title))
    fig.label(xlabel, axis="x")
    fig.label(ylabel, axis="y")
    return Text.from_ansi(fig.build().string())
