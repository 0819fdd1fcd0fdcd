"""Model text shown literally: never as Rich markup, never as terminal control codes.

Everything a model, a judge or a dataset wrote goes through ``literal()`` or
``one_line()`` before it reaches a widget. Both return ``rich.text.Text``
objects (which Textual does not parse as markup), and both replace control
characters by visible escapes (``vlmdyn_cli.safetext.clean``, shared with the
CLI), so ``\\x1b[31m`` is displayed as those characters and cannot colour or
move anything on the screen.
"""

from __future__ import annotations

from rich.text import Text

from vlmdyn_cli.safetext import clean


def literal(value, style: str = "") -> Text:
    """Multi-line literal text."""
    return Text(clean(value), style=style)


def one_line(value, width: int | None = None, style: str = "") -> Text:
    """Literal text on one line (newlines shown as ⏎), cut to ``width`` cells with an ellipsis."""
    s = clean(value).replace("\n", " ⏎ ")
    if width is not None and len(s) > width:
        s = s[: max(width - 1, 0)] + "…"
    return Text(s, style=style, no_wrap=True, overflow="ellipsis")


def verdict_text(status: str | None, verdict: str | None) -> Text:
    """yes / no / unscored / - with a colour (fixed words, never model text)."""
    if status == "unscored":
        return Text("unscored", style="yellow")
    if verdict == "yes":
        return Text("yes", style="green")
    if verdict == "no":
        return Text("no", style="red")
    return Text("-", style="dim")
