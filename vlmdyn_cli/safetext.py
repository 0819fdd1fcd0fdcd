"""Text from models, datasets and users made safe to show on a terminal.

Anything a model, a judge, a dataset or a file wrote may carry terminal
control codes: ESC starts CSI/OSC sequences that colour, clear the screen,
retitle the window or make live links. ``clean()`` replaces every C0 and C1
control character except newline and tab, DEL, and the Unicode bidi
overrides/isolates by a visible ``\\xNN`` / ``\\uNNNN`` escape, so
``\\x1b[31m`` is shown as those characters and does nothing. The CLI's human
output (tables, hints, error messages, progress) and the TUI both use it;
``--json`` output stays exact JSON (its encoder escapes controls itself).
"""

from __future__ import annotations

import re

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


def clean_all(obj):
    """A copy of a JSON-like value (a figure spec) with control characters in every string made visible."""
    if isinstance(obj, str):
        return clean(obj)
    if isinstance(obj, dict):
        return {k: clean_all(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_all(v) for v in obj]
    return obj
