"""The browser's table: one row per (generation, judgement), model text shown literally."""

from __future__ import annotations

from textual.widgets import DataTable

from vlmdyn_cli.tui.text import one_line, verdict_text

COLUMNS = [("run", 8), ("step", 5), ("set", 9), ("category", 9), ("judge", 10), ("verdict", 8),
           ("question", 30), ("answer", 16), ("prediction", 30)]


def row_key(row: dict) -> str:
    return f"{row['gid']}:{row['jid']}"


class JudgementTable(DataTable):
    def __init__(self, **kw):
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.rows_data: list[dict] = []

    def on_mount(self) -> None:
        for name, width in COLUMNS:
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
