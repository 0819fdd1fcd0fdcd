"""Model text shown literally: never as Rich markup, never as terminal control codes.

Everything a model, a judge or a dataset wrote goes through ``literal()`` or
``one_line()`` before it reaches a widget. Both return ``rich.text.Text``
objects (which Textual does not parse as markup), and both replace control
characters, including the ESC that starts ANSI escape sequences, by visible
``\\xNN`` escapes, so ``\\x1b[31m`` is displayed as those characters and
cannot colour or move anything on the screen.
"""

from __future__ import annotations

import re

from rich.text import Text

# C0 and C1 controls except newline and tab, DEL, and the Unicode bidi overrides/isolates
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value) -> str:
    """str() of the value with control characters made visible and tabs expanded."""
    if value is None:
        return ""
    return _CONTROL.sub(_visible, str(value).replace("\r\n", "\n")).replace("\t", "    ")


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
