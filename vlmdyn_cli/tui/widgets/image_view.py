"""An image drawn with half blocks: each cell is "▀" with the upper pixel as
foreground colour and the lower pixel as background, so one row of text shows
two rows of pixels (works in any truecolor terminal, in tmux and in SVG exports)."""

from __future__ import annotations

from pathlib import Path

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.widgets import Static


def halfblock(path: str | Path, max_width: int = 40, max_rows: int = 12) -> Text:
    """Render the image at ``path`` to a Text of at most max_width x max_rows cells."""
    from PIL import Image

    with Image.open(path) as im:
        img = im.convert("RGB")
    w, h = img.size
    # a terminal cell is about twice as tall as wide; with two pixels per cell vertically the
    # pixels come out roughly square
    scale = min(max_width / w, (2 * max_rows) / h)
    tw = max(1, int(w * scale))
    th = max(2, int(h * scale) // 2 * 2)
    img = img.resize((tw, th), Image.Resampling.BILINEAR)
    px = img.load()
    out = Text(no_wrap=True, overflow="crop")
    for y in range(0, th, 2):
        for x in range(tw):
            top = px[x, y]
            bottom = px[x, y + 1]
            out.append("▀", Style(color=Color.from_rgb(*top), bgcolor=Color.from_rgb(*bottom)))
        if y + 2 < th:
            out.append("\n")
    return out


class ImageView(Static):
    """Shows an image file (or a one-line note why there is none)."""

    DEFAULT_CSS = """
    ImageView { height: auto; width: auto; }
    """

    def __init__(self, path: Path | None, *, max_width: int = 40, max_rows: int = 12, **kw):
        super().__init__(**kw)
        self.path = path
        self.max_width = max_width
        self.max_rows = max_rows

    def on_mount(self) -> None:
        if self.path is None:
            self.update(Text("(no image file)", style="dim"))
            return
        try:
            self.update(halfblock(self.path, self.max_width, self.max_rows))
        except Exception as exc:  # a broken or unreadable image must not break the screen
            self.update(Text(f"(image not readable: {type(exc).__name__})", style="dim"))
