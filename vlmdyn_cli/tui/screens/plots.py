"""The plots tab: the paper's figures drawn in the terminal.

Same numbers and same drawing code as ``vlmdyn plot --terminal``: the figure
spec comes from ``vlmdyn_cli.plots.figures`` (over ``plots.aggregate``) in a
worker, plotext draws it when it arrives and again when the pane is resized.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.message import Message
from textual.widgets import Select, Static

from vlmdyn_cli.tui import queries as Q
from vlmdyn_cli.tui.text import literal, one_line
from vlmdyn_cli.tui.widgets.terminal_plot import figure_text

MODES = ["frontiers", "categories", "seen-sets", "subcategories", "dedup", "loss"]


class PlotData(Message):
    def __init__(self, request: tuple, spec: dict | None, error: str | None) -> None:
        super().__init__()
        self.request, self.spec, self.error = request, spec, error


class PlotsPane(Vertical):
    BINDINGS = [
        Binding("j", "cycle_judge(1)", "Next judge"),
        Binding("k", "cycle_judge(-1)", "Prev judge", show=False),
        Binding("m", "cycle_mode", "Figure"),
    ]

    def __init__(self, **kw):
        super().__init__(**kw)
        self.spec: dict | None = None
        self.error: str | None = None
        self.specs: list[tuple[str, str]] = []
        self.request: tuple | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="plot-controls"):
            yield Select([], prompt="judge", id="plot-judge", compact=True, allow_blank=True)
            yield Select([(m, m) for m in MODES], value="frontiers", id="plot-mode", compact=True, allow_blank=False)
            yield Static("mean over seeds · j judge · m figure", id="plot-hint")
        with ScrollableContainer(id="plot-scroll"):
            yield Static(Text("loading…"), id="plot")

    def reload(self) -> None:
        self._load_judges()

    @work(thread=True, exclusive=True, group="plots-judges")
    def _load_judges(self) -> None:
        with self.app.store.read() as conn:
            specs = Q.judge_specs(conn)
        self.app.call_from_thread(self._set_judges, specs)

    def _set_judges(self, specs: list[tuple[str, str]]) -> None:
        self.specs = specs
        sel = self.query_one("#plot-judge", Select)
        current = sel.value
        values = [h for _, h in specs]
        with sel.prevent(Select.Changed):
            sel.set_options([(one_line(label), h) for label, h in specs])
            if current in values:
                sel.value = current
            elif values:
                sel.value = values[0]
        self._request()

    def _request(self) -> None:
        judge = self.query_one("#plot-judge", Select).value
        mode = self.query_one("#plot-mode", Select).value
        if judge is Select.NULL:
            self.query_one("#plot", Static).update(Text("no judgements yet: nothing to plot"))
            return
        self.request = (judge, mode)
        self.query_one("#plot", Static).update(Text(f"aggregating {mode}…"))
        self._load(self.request)

    @work(thread=True, exclusive=True, group="plots")
    def _load(self, request: tuple) -> None:
        from vlmdyn_cli.errors import VlmdynError
        from vlmdyn_cli.plots import aggregate as A
        from vlmdyn_cli.plots import figures

        spec_hash, mode = request
        try:
            with self.app.store.rw() as conn:  # the aggregation refreshes its cache table
                sel = A.selection(conn, judge=spec_hash)
                spec = figures.build(conn, mode, sel)
        except VlmdynError as exc:
            self.post_message(PlotData(request, None, str(exc)))
            return
        self.post_message(PlotData(request, spec, None))

    def on_plot_data(self, msg: PlotData) -> None:
        if msg.request != self.request:
            return
        self.spec, self.error = msg.spec, msg.error
        self._draw()

    def on_resize(self) -> None:
        if self.spec is not None:
            self._draw()

    def _draw(self) -> None:
        plot = self.query_one("#plot", Static)
        if self.error is not None:
            plot.update(literal(self.error, style="red"))
            return
        if self.spec is None:
            return
        panels = max(1, len(self.spec.get("panels", [])))
        height = max(12, (self.size.height - 4) // min(panels, 2))
        # narrower than the pane by the vertical scrollbar, so no horizontal one appears
        plot.update(figure_text(self.spec, width=self.size.width - 4, height=height))

    @on(Select.Changed, "#plot-judge, #plot-mode")
    def _changed(self, event: Select.Changed) -> None:
        event.stop()
        self._request()

    def action_cycle_judge(self, delta: int) -> None:
        values = [h for _, h in self.specs]
        if not values:
            return
        sel = self.query_one("#plot-judge", Select)
        i = values.index(sel.value) if sel.value in values else -delta
        sel.value = values[(i + delta) % len(values)]

    def action_cycle_mode(self) -> None:
        sel = self.query_one("#plot-mode", Select)
        sel.value = MODES[(MODES.index(sel.value) + 1) % len(MODES)]
