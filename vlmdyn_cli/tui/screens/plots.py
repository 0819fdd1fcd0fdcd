"""The plots tab: the two frontiers and the per-category curves, drawn in the terminal.

The numbers come from the same aggregation the `vlmdyn plot` command uses
(``vlmdyn_cli.plots.aggregate``, loaded in a worker); plotext draws them.
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.message import Message
from textual.widgets import Select, Static

from vlmdyn_cli.tui import queries as Q
from vlmdyn_cli.tui.widgets.terminal_plot import line_plot

MODES = [("frontiers", "frontiers"), ("categories (unseen)", "categories")]


class PlotData(Message):
    def __init__(self, judge: str, mode: str, series: dict, title: str) -> None:
        super().__init__()
        self.judge, self.mode, self.series, self.title = judge, mode, series, title


class PlotsPane(Vertical):
    BINDINGS = [
        Binding("j", "cycle_judge(1)", "Next judge"),
        Binding("k", "cycle_judge(-1)", "Prev judge", show=False),
        Binding("m", "cycle_mode", "Mode"),
    ]

    def __init__(self, **kw):
        super().__init__(**kw)
        self.series: dict | None = None
        self.title = ""
        self.judges: list[str] = []

    def compose(self) -> ComposeResult:
        with Horizontal(id="plot-controls"):
            yield Select([], prompt="judge", id="plot-judge", compact=True, allow_blank=True)
            yield Select(MODES, value="frontiers", id="plot-mode", compact=True, allow_blank=False)
            yield Static("mean over runs · j judge · m mode", id="plot-hint")
        with ScrollableContainer(id="plot-scroll"):
            yield Static("loading…", id="plot")

    def reload(self) -> None:
        self._load_judges()

    @work(thread=True, exclusive=True, group="plots-judges")
    def _load_judges(self) -> None:
        with self.app.store.read() as conn:
            judges = [j["judge"] for j in Q.judges(conn)]
        self.app.call_from_thread(self._set_judges, judges)

    def _set_judges(self, judges: list[str]) -> None:
        self.judges = judges
        sel = self.query_one("#plot-judge", Select)
        current = sel.value
        with sel.prevent(Select.Changed):
            sel.set_options([(j, j) for j in judges])
            if current in judges:
                sel.value = current
            elif judges:
                sel.value = judges[0]
        self._request()

    def _request(self) -> None:
        judge = self.query_one("#plot-judge", Select).value
        mode = self.query_one("#plot-mode", Select).value
        if judge is Select.NULL:
            self.query_one("#plot", Static).update("no judgements yet")
            return
        self._load(judge, mode)

    @work(thread=True, exclusive=True, group="plots")
    def _load(self, judge: str, mode: str) -> None:
        from vlmdyn_cli.tui import plot_series

        with self.app.store.read() as conn:
            series, title = plot_series.series(conn, judge, mode)
        self.post_message(PlotData(judge, mode, series, title))

    def on_plot_data(self, msg: PlotData) -> None:
        self.series, self.title = msg.series, msg.title
        self._draw()

    def on_resize(self) -> None:
        if self.series is not None:
            self._draw()

    def _draw(self) -> None:
        width = max(40, self.size.width - 2)
        height = max(10, self.size.height - 2)
        self.query_one("#plot", Static).update(line_plot(self.series or {}, width=width, height=height,
                                                         title=self.title))

    @on(Select.Changed, "#plot-judge, #plot-mode")
    def _changed(self, event: Select.Changed) -> None:
        event.stop()
        self._request()

    def action_cycle_judge(self, delta: int) -> None:
        if not self.judges:
            return
        sel = self.query_one("#plot-judge", Select)
        i = self.judges.index(sel.value) if sel.value in self.judges else -delta
        sel.value = self.judges[(i + delta) % len(self.judges)]

    def action_cycle_mode(self) -> None:
        sel = self.query_one("#plot-mode", Select)
        values = [v for _, v in MODES]
        sel.value = values[(values.index(sel.value) + 1) % len(values)]
