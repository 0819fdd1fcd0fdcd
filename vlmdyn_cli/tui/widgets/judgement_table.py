"""The browser's table: one row per (generation, judgement), model text shown literally.

The three text columns share whatever width the terminal has beyond the fixed ones.
"""

from __future__ import annotations

from textual import events
from textual.widgets import DataTable

from vlmdyn_cli.tui.text import one_line, verdict_text

FIXED = [("run", 8), ("step", 5), ("set", 9), ("category", 9), ("judge", 10), ("verdict", 8)]
TEXTS = [("question", 3), ("answer", 2), ("prediction", 3)]  # (column, share of the free width)
MIN_TEXT = 12


def row_key(row: dict) -> str:
    return f"{row['gid']}:{row['jid']}"


def text_widths(total: int) -> list[int]:
    """Widths of the text columns for a table ``total`` cells wide (2 cells padding per column)."""
    free = total - sum(w + 2 for _, w in FIXED) - 2 * len(TEXTS) - 2
    shares = sum(s for _, s in TEXTS)
    return [max(MIN_TEXT, free * s // shares) for _, s in TEXTS]


class JudgementTable(DataTable):
    def __init__(self, **kw):
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.rows_data: list[dict] = []
        self._widths: list[int] = []

    def on_mount(self) -> None:
        self._columns(text_widths(self.size.width or 80))

    def on_resize(self, event: events.Resize) -> None:
        widths = text_widths(event.size.width)
        if widths != self._widths:
            cursor = self.cursor_row
            self._columns(widths)
            self.show_rows(self.rows_data)
            if self.rows_data:
                self.move_cursor(row=min(cursor, len(self.rows_data) - 1))

    def _columns(self, widths: list[int]) -> None:
        self._widths = widths
        self.clear(columns=True)
        for name, width in FIXED:
            self.add_column(name, width=width, key=name)
        for (name, _), width in zip(TEXTS, widths):
            self.add_column(name, width=width, key=name)

    def show_rows(self, rows: list[dict]) -> None:
        self.rows_data = rows
        self.clear()
        for r in rows:
            cat = r["category"] or ""
            if r.get("subcategory"):
                cat = f"{cat}/{r['subcategory']}"
            self.add_row(
                one_line(r["run"]), one_line(r["step"]), one_line(r.get("sets") or ""), one_line(cat),
                one_line(r["judge"]), verdict_text(r["status"], r["verdict"]),
                one_line(r["question"]), one_line(r["answer"]), one_line(r["prediction"]),
                key=row_key(r))

    def current(self) -> dict | None:
        if not self.rows_data or self.cursor_row < 0 or self.cursor_row >= len(self.rows_data):
            return None
        return self.rows_data[self.cursor_row]
