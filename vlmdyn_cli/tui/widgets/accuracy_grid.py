"""Accuracy per (eval set, category) x checkpoint, each cell coloured by its value.

Press ``c`` to show the counts behind each number (yes/scored and unscored).
"""

from __future__ import annotations

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.reactive import reactive

from vlmdyn_cli.tui.text import one_line
from vlmdyn_cli.tui.widgets.table import Table


def acc_style(acc: float | None) -> Style:
    """Red (0) through amber to green (1) background; grey when there is nothing scored."""
    if acc is None:
        return Style(color="grey50")
    a = max(0.0, min(1.0, acc))
    r = int(190 * (1 - a) + 20 * a)
    g = int(40 * (1 - a) + 150 * a)
    return Style(color="white", bgcolor=Color.from_rgb(r, g, 40))


def merge_cells(cells: list[dict]) -> dict[tuple[str, str], dict[int, dict]]:
    """{(set, category): {step: cell}} with an extra "all" category per set."""
    grid: dict[tuple[str, str], dict[int, dict]] = {}
    for c in cells:
        for cat in (c["category"], "all"):
            slot = grid.setdefault((c["set_name"], cat), {}).setdefault(
                c["step"], {"n": 0, "yes": 0, "scored": 0, "unscored": 0, "missing": 0})
            for k in ("n", "yes", "scored", "unscored", "missing"):
                slot[k] += c.get(k) or 0
    for row in grid.values():
        for slot in row.values():
            slot["acc"] = slot["yes"] / slot["scored"] if slot["scored"] else None
    return grid


class AccuracyGrid(Table):
    BINDINGS = [Binding("c", "toggle_counts", "Counts")]

    show_counts: reactive[bool] = reactive(False)

    def __init__(self, **kw):
        super().__init__(cursor_type="row", zebra_stripes=False, **kw)
        self._cells: list[dict] = []
        self._set_order: list[str] = []

    def set_cells(self, cells: list[dict], set_order: list[str] | None = None) -> None:
        """cells: dicts with step, set_name, category, n, yes, scored, unscored, missing."""
        self._cells = cells
        self._set_order = set_order or []
        self._rebuild()

    def watch_show_counts(self, _old: bool, _new: bool) -> None:
        self._rebuild()

    def action_toggle_counts(self) -> None:
        self.show_counts = not self.show_counts

    def _cell(self, slot: dict | None) -> Text:
        if slot is None:
            return Text("")
        acc = slot["acc"]
        label = "  -  " if acc is None else f"{100 * acc:4.0f}%"
        if self.show_counts:
            label += f" {slot['yes']}/{slot['scored']}"
            if slot["unscored"]:
                label += f" u{slot['unscored']}"
            if slot["missing"]:
                label += f" m{slot['missing']}"
        return Text(label, style=acc_style(acc))

    def _rebuild(self) -> None:
        self.clear(columns=True)
        if not self._cells:
            self.add_column("no judged generations for this run and judge")
            return
        steps = sorted({c["step"] for c in self._cells})
        grid = merge_cells(self._cells)
        order = {name: i for i, name in enumerate(self._set_order)}
        keys = sorted(grid, key=lambda k: (order.get(k[0], len(order)), k[0], k[1] != "all", k[1]))
        self.add_column("set", key="set")
        self.add_column("category", key="category")
        for s in steps:
            self.add_column(str(s), key=f"step{s}")
        prev_set = None
        for set_name, cat in keys:
            row = grid[(set_name, cat)]
            first = set_name != prev_set
            prev_set = set_name
            self.add_row(one_line(set_name if first else ""), one_line(cat, style="bold" if cat == "all" else ""),
                         *[self._cell(row.get(s)) for s in steps], key=f"{set_name}|{cat}")
