"""The browser's table: one row per (generation, judgement), model text shown literally.

The text columns share whatever width the terminal has beyond the fixed ones;
below NARROW cells the set and category columns are left out so question,
answer and prediction stay readable at 80x24.
"""

from __future__ import annotations

from rich.text import Text
from textual import events

from vlmdyn_cli.tui.text import one_line, verdict_text
from vlmdyn_cli.tui.widgets.table import Table

WIDE = [("run", 8), ("step", 5), ("set", 9), ("category", 9), ("judge", 12), ("verdict", 8)]
SMALL = [("run", 8), ("step", 4), ("judge", 8), ("verdict", 8)]
NARROW = 110
TEXTS = [("question", 3), ("answer", 2), ("prediction", 3)]  # (column, share of the free width)
MIN_TEXT = 10


def row_key(row: dict) -> str:
    return f"{row['gid']}:{row['jid']}"


def layout(total: int) -> list[tuple[str, int]]:
    """(column, width) for a table ``total`` cells wide (each column has 2 cells of padding)."""
    fixed = WIDE if total >= NARROW else SMALL
    free = total - sum(w + 2 for _, w in fixed) - 2 * len(TEXTS) - 2
    shares = sum(s for _, s in TEXTS)
    return fixed + [(name, max(MIN_TEXT, free * s // shares)) for name, s in TEXTS]


def cells(r: dict) -> dict[str, Text]:
    cat = r["category"] or ""
    if r.get("subcategory"):
        cat = f"{cat}/{r['subcategory']}"
    return {"run": one_line(r["run"]), "step": one_line(r["step"]), "set": one_line(r.get("sets") or ""),
            "category": one_line(cat), "judge": one_line(r["judge"]),
            "verdict": verdict_text(r["status"], r["verdict"]), "question": one_line(r["question"]),
            "answer": one_line(r["answer"]), "prediction": one_line(r["prediction"])}


class JudgementTable(Table):
    def __init__(self, **kw):
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.rows_data: list[dict] = []
        self._layout: list[tuple[str, int]] = []

    def on_mount(self) -> None:
        self._columns(layout(self.size.width or 80))

    def on_resize(self, event: events.Resize) -> None:
        new = layout(event.size.width)
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

    def show_rows(self, rows: list[dict]) -> None:
        self.rows_data = rows
        self.clear()
        for r in rows:
            c = cells(r)
            self.add_row(*[c[name] for name, _ in self._layout], key=row_key(r))

    def current(self) -> dict | None:
        if not self.rows_data or self.cursor_row < 0 or self.cursor_row >= len(self.rows_data):
            return None
        return self.rows_data[self.cursor_row]
