"""The judgements browser tab: filters, a status line and one SQL page of rows.

Rows come from the runs' generations (``tui/browse.py``) or, when the source filter
names one, from a judged input file (``tui/browse_inputs.py``): ``SOURCES`` picks the
module, both give ``page`` and ``count``.

Queries run in thread workers and post ``PageLoaded`` / ``CountLoaded`` back;
a newer request cancels the older one (exclusive worker groups) and stale
answers are dropped by request number.
"""

from __future__ import annotations

import time

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static
from textual.worker import get_current_worker

from vlmdyn_cli.tui import browse as B
from vlmdyn_cli.tui import browse_inputs as I
from vlmdyn_cli.tui import queries as Q
from vlmdyn_cli.store.search import fts_query
from vlmdyn_cli.tui.text import literal
from vlmdyn_cli.tui.widgets.filter_bar import FilterBar
from vlmdyn_cli.tui.widgets.judgement_table import JudgementTable


SOURCES = {False: B, True: I}   # rows of input files or not -> the module with page() and count()


def rows_module(filters: B.Filters):
    return SOURCES[I.is_input(filters)]


class PageLoaded(Message):
    def __init__(self, request: int, rows: list[dict], elapsed_ms: float) -> None:
        super().__init__()
        self.request, self.rows, self.elapsed_ms = request, rows, elapsed_ms


class CountLoaded(Message):
    def __init__(self, request: int, count: B.Count) -> None:
        super().__init__()
        self.request, self.count = request, count


class BrowserPane(Vertical):
    BINDINGS = [
        Binding("n", "next_page", "Next page"),
        Binding("p", "prev_page", "Prev page"),
        Binding("x", "clear_filters", "Clear"),
        Binding("enter", "open_detail", "Details", show=False),
    ]

    def __init__(self, **kw):
        super().__init__(**kw)
        self.filters = B.Filters()
        self.cursors: list[B.Key | None] = [None]  # keyset cursor of each page shown so far
        self.rows: list[dict] = []
        self.request = 0
        self.count: B.Count | None = None
        self.elapsed_ms = 0.0
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield FilterBar(id="filters")
        yield Static("", id="browser-status")
        yield JudgementTable(id="judgement-table")

    @property
    def store(self):
        return self.app.store

    # ---------------------------------------------------------------- loading

    def reload(self, reset_page: bool = False) -> None:
        """Query the current page again (and the count); new rows from other writers show up."""
        if reset_page:
            self.cursors = [None]
        self.request += 1
        self.loaded = False
        self.count = None
        self._status()
        self._load_page(self.request, self.filters, self.cursors[-1])
        self._load_count(self.request, self.filters)

    def load_choices(self) -> None:
        self._load_choices()

    @work(thread=True, exclusive=True, group="browser-choices")
    def _load_choices(self) -> None:
        with self.store.read() as conn:
            choices = Q.choices(conn)
        self.app.call_from_thread(self.query_one(FilterBar).set_choices, choices)

    @work(thread=True, exclusive=True, group="browser-page")
    def _load_page(self, request: int, filters: B.Filters, after) -> None:
        t0 = time.perf_counter()
        with self.store.read() as conn:
            rows = rows_module(filters).page(conn, filters, after)
        if not get_current_worker().is_cancelled:
            self.post_message(PageLoaded(request, rows, 1000 * (time.perf_counter() - t0)))

    @work(thread=True, exclusive=True, group="browser-count")
    def _load_count(self, request: int, filters: B.Filters) -> None:
        with self.store.read() as conn:
            count = rows_module(filters).count(conn, filters)
        if not get_current_worker().is_cancelled:
            self.post_message(CountLoaded(request, count))

    def on_page_loaded(self, msg: PageLoaded) -> None:
        if msg.request != self.request:
            return
        self.rows = msg.rows
        self.elapsed_ms = msg.elapsed_ms
        self.loaded = True
        self.query_one(JudgementTable).show_rows(msg.rows, inputs=I.is_input(self.filters))
        self._status()

    def on_count_loaded(self, msg: CountLoaded) -> None:
        if msg.request == self.request:
            self.count = msg.count
            self._status()

    def _status(self) -> None:
        start = (len(self.cursors) - 1) * B.PAGE_SIZE
        if not self.loaded:
            text = "loading…"
        elif not self.rows:
            text = "no rows match"
        else:
            text = f"rows {start + 1:,}–{start + len(self.rows):,}"
        if self.count is not None:
            text += " " + self.count.text()
        if self.loaded:
            if self.app.show_timings:
                text += f" · {self.elapsed_ms:.0f} ms"
            text += f" · page {len(self.cursors)}"
        active = self.filters.active()
        if self.filters.source is not None:
            active["source"] = self.query_one(FilterBar).source_label()
            if self.filters.source == I.UNRECORDED:
                text += (" · judged from input files before vlmdyn recorded them: their file is unknown "
                         "(judge the file again to record it; cached, nothing is judged twice)")
        if active:
            text += " · " + ", ".join(f"{k}={v}" for k, v in active.items())
        if (self.filters.text or "").strip() and fts_query(self.filters.text) is None:
            text = (f"search {self.filters.text.strip()!r} is not a valid search: it has no words (letters or "
                    f"digits) to look for, so it filters nothing · {text}")
        self.query_one("#browser-status", Static).update(literal(text))

    # ---------------------------------------------------------------- events and actions

    @on(FilterBar.Changed)
    def _filters_changed(self, event: FilterBar.Changed) -> None:
        self.filters = event.filters
        self.reload(reset_page=True)

    def on_input_submitted(self, event) -> None:
        """Enter in the search box: search now (the filter bar did) and go to the rows."""
        event.stop()
        self.screen.set_focus(self.query_one(JudgementTable))

    def on_data_table_row_selected(self, event: JudgementTable.RowSelected) -> None:
        if isinstance(event.data_table, JudgementTable):
            event.stop()
            self.action_open_detail()

    def action_next_page(self) -> None:
        if self.loaded and len(self.rows) == B.PAGE_SIZE:
            self.cursors.append(self.rows[-1]["key"])
            self.reload()

    def action_prev_page(self) -> None:
        if len(self.cursors) > 1:
            self.cursors.pop()
            self.reload()

    def action_clear_filters(self) -> None:
        self.query_one(FilterBar).clear()

    def action_open_detail(self) -> None:
        row = self.query_one(JudgementTable).current()
        if row is not None:
            from vlmdyn_cli.tui.screens.detail import DetailScreen

            if row["gid"] is None:   # an input file's line
                self.app.push_screen(DetailScreen(None, source=(row["source"], row["key"][0])))
            else:
                self.app.push_screen(DetailScreen(row["gid"]))
