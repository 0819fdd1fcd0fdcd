"""A figure spec (``vlmdyn_cli.plots.figures``) drawn in the terminal, as a Rich Text.

The drawing is ``vlmdyn_cli.plots.terminal.render_text``: the same code and the
same numbers as ``vlmdyn plot --terminal``. Every string in the spec that came
from the database (set names, categories, judge names) is cleaned first, so
the only escape codes reaching ``Text.from_ansi`` are plotext's own colours.
"""

from __future__ import annotations

from rich.text import Text

from vlmdyn_cli.safetext import clean_all


def figure_text(spec: dict, width: int, height: int) -> Text:
    from vlmdyn_cli.plots.terminal import render_text

    return Text.from_ansi(render_text(clean_all(spec), width=max(40, width), height=max(10, height), color=True))
