"""``Table``: Textual's DataTable without its stale-width repaint.

DataTable measures new rows on its next idle event and widens the columns then, but it
keeps the cells it painted before that measurement in its render caches (their keys do
not include the column widths). When a paint falls between ``add_row`` and the idle
measurement (a busy machine, a table filled from a worker's message), the table keeps
showing its cells cut to the header widths ("se…" for "seen@51", "10" for "100%")
until something else invalidates the caches. Two CI runs failed on exactly that screen.
``tests/test_tui.py::test_table_widens_after_an_early_paint`` paints in that window.
"""

from __future__ import annotations

from textual.widgets import DataTable


class Table(DataTable):
    def _update_dimensions(self, new_rows) -> None:
        before = [c.get_render_width(self) for c in self.ordered_columns]
        super()._update_dimensions(new_rows)
        if [c.get_render_width(self) for c in self.ordered_columns] != before:
            self._clear_caches()
            self._update_count += 1  # part of every render-cache key
            self.refresh()
