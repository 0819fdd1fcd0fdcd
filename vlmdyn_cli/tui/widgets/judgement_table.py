"""The browser's table: one row per (generation, judgement), or per (input-file line,
judgement) with file / line / id columns instead of run / step / set / category; model
text shown literally.

The text columns share whatever width the terminal has beyond the fixed ones;
below NARROW cells the set and category columns are left out so question,
answer and prediction stay readable at 80x24.
"""

from __future__ import annotations

from pathlib import PurePath

from rich.text import Text
from textual import events

from vlmdyn_cli.tui.text import one_line, verdict_text
from vlmdyn_cli.tui.widgets.table import Table

WIDE = [("run", 8), ("step", 5), ("set", 9), ("category", 9), ("judge", 12), ("verdict", 8)]
SMALL = [("run", 8), ("step", 4), ("judge", 8), ("verdict", 8)]
WIDE_INPUTS = [("file", 14), ("line", 6), ("id", 8), ("judge", 12), ("verdict", 8)]
SMALL_INPUTS = [("file", 8), ("line", 5), ("judge", 8), ("verdict", 8)]
NARROW = 110
TEXTS = [("question", 3), ("answer", 2), ("prediction", 3)]  # (column, share of the free width)
MIN_TEXT = 10


def row_key(row: dict) -> str:
    if row["gid"] is None:
        return f"{row['source']}:{row['key'][0]}:{row['jid']}"
    return f"{row['gid']}:{row['jid']}"


def layout(total: int, inputs: bool = False) -> list[tuple[str, int]]:
    """(column, width) for a table ``total`` cells wide (each column has 2 cells of padding)."""
    if inputs:
        fixed = WIDE_INPUTS if total >= NARROW else SMALL_INPUTS
    else:
        fixed = WIDE if total >= NARROW else SMALL
    free = total - sum(w + 2 for _, w in fixed) - 2 * len(TEXTS) - 2
    shares = sum(s for _, s in TEXTS)
    return fixed + [(name, max(MIN_TEXT, free * s // shares)) for name, s in TEXTS]


def cells(r: dict) -> dict[str, Text]:
    if r["gid"] is None:    # an input file's line
        place = {"file": one_line(PurePath(r["file"]).name or r["file"]),
                 "line": one_line("-" if r["line"] is None else r["line"]), "id": one_line(r["item_id"] or "")}
    else:
        cat = r["category"] or ""
        if r.get("subcategory"):
            cat = f"{cat}/{r['subcategory']}"
        place = {"run": one_line(r["run"]), "step": one_line(r["step"]), "set": one_line(r.get("sets") or ""),
                 "category": one_line(cat)}
    return place | {"judge": one_line(r["judge"]),
            "verdict": verdict_text(r["status"], r["verdict"]), "question": one_line(r["question"]),
            "answer": one_line(r["answer"]), "prediction": one_line(r["prediction"])}


class JudgementTable(Table):
    def __init__(self, **kw):
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.rows_data: list[dict] = []
        self._layout: list[tuple[str, int]] = []
        self.inputs = False   # showing input-file rows

    def on_mount(self) -> None:
        self._columns(layout(self.size.width or 80))

    def on_resize(self, event: events.Resize) -> None:
        new = layout(event.size.width, self.inputs)
        if new != self._layout:
            cursor = self.cursor_row
            self._columns(new)
            self.show_rows(self.rows_data)
            if self.rows_data:
                self.move_cursor(row=min(cursor, len(self.rows_data) - 1))

    def _columns(self, columns: list[tuple[str, int]]) -> None:
        self._layout = columns
        self.clear(columns=True)
        for name, width in columns:
            self.add_column(name, width=width, key=name)

    def show_rows(self, rows: list[dict], inputs: bool | None = None) -> None:
        if inputs is not None and inputs != self.inputs:
            self.inputs = inputs
            self._columns(layout(self.size.width or 80, inputs))
        self.rows_data = rows
        self.clear()
        for r in rows:
            c = cells(r)
            self.add_row(*[c[name] for name, _ in self._layout], key=row_key(r))

    def current(self) -> dict | None:
        if not self.rows_data or self.cursor_row < 0 or self.cursor_row >= len(self.rows_data):
            return None
        return self.rows_data[self.cursor_row]
