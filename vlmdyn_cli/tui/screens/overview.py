"""The overview tab: runs, judges (counts, unscored, cost) and the accuracy grid.

The grid shows one run under one judge (chosen with the two selects) as
accuracy per eval set and category (rows) and checkpoint (columns).
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Select, Static

from vlmdyn_cli.tui import queries as Q
from vlmdyn_cli.tui.text import one_line
from vlmdyn_cli.tui.widgets.accuracy_grid import AccuracyGrid


class OverviewLoaded(Message):
    def __init__(self, runs: list[dict], judges: list[dict], sets: list[str]) -> None:
        super().__init__()
        self.runs, self.judges, self.sets = runs, judges, sets


class GridLoaded(Message):
    def __init__(self, run: str, judge: str, cells: list[dict]) -> None:
        super().__init__()
        self.run, self.judge, self.cells = run, judge, cells


class OverviewPane(Vertical):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.runs: list[dict] = []
        self.judges: list[dict] = []
        self.set_order: list[str] = []
        self.grid_cells: list[dict] | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="overview-top"):
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
            yield DataTable(id="judges", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="grid-controls"):
            yield Select([], prompt="run", id="grid-run", compact=True, allow_blank=True)
            yield Select([], prompt="judge", id="grid-judge", compact=True, allow_blank=True)
            yield Static("accuracy = yes / scored · c: counts", id="grid-hint")
        yield AccuracyGrid(id="grid")

    def on_mount(self) -> None:
        runs = self.query_one("#runs", DataTable)
        for c in ("run", "seed", "status", "checkpoints", "sets"):
            runs.add_column(c, key=c)
        judges = self.query_one("#judges", DataTable)
        for c in ("judge", "judged", "unscored", "yes", "cost $", "s/item"):
            judges.add_column(c, key=c)

    # ---------------------------------------------------------------- loading

    def reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="overview")
    def _load(self) -> None:
        with self.app.store.read() as conn:
            runs = Q.runs(conn)
            judges = Q.judges(conn)
            sets = Q.choices(conn)["set_name"]
        self.post_message(OverviewLoaded(runs, judges, sets))

    @work(thread=True, exclusive=True, group="overview-grid")
    def _load_grid(self, run: str, judge: str) -> None:
        with self.app.store.read() as conn:
            cells = Q.accuracy_grid(conn, run, judge)
        self.post_message(GridLoaded(run, judge, cells))

    def on_overview_loaded(self, msg: OverviewLoaded) -> None:
        self.runs, self.judges, self.set_order = msg.runs, msg.judges, msg.sets
        runs = self.query_one("#runs", DataTable)
        runs.clear()
        for r in msg.runs:
            runs.add_row(one_line(r["name"]), one_line(r["seed"]), one_line(r["status"]),
                         one_line(r["checkpoints"] or "-"), one_line(r["n_sets"]), key=r["name"])
        judges = self.query_one("#judges", DataTable)
        judges.clear()
        for j in msg.judges:
            scored = j["n"] - (j["unscored"] or 0)
            yes = f"{100 * (j['yes'] or 0) / scored:.0f}%" if scored else "-"
            judges.add_row(one_line(j["judge"]), one_line(f"{j['n']:,}"), one_line(f"{j['unscored'] or 0:,}"),
                           one_line(yes), one_line(f"{j['cost_usd'] or 0:.4f}"),
                           one_line("-" if j["latency_s"] is None else f"{j['latency_s']:.2f}"), key=j["judge"])
        self._fill_select("#grid-run", [r["name"] for r in msg.runs])
        self._fill_select("#grid-judge", [j["judge"] for j in msg.judges])
        self._grid_request()

    def _fill_select(self, selector: str, values: list[str]) -> None:
        sel = self.query_one(selector, Select)
        current = sel.value
        with sel.prevent(Select.Changed):
            sel.set_options([(v, v) for v in values])
            if current in values:
                sel.value = current
            elif values:
                sel.value = values[0]

    def _grid_request(self) -> None:
        run = self.query_one("#grid-run", Select).value
        judge = self.query_one("#grid-judge", Select).value
        if run is Select.NULL or judge is Select.NULL:
            self.grid_cells = []
            self.query_one(AccuracyGrid).set_cells([], self.set_order)
            return
        self._load_grid(run, judge)

    def on_grid_loaded(self, msg: GridLoaded) -> None:
        self.grid_cells = msg.cells
        self.query_one(AccuracyGrid).set_cells(msg.cells, self.set_order)

    @on(Select.Changed, "#grid-run, #grid-judge")
    def _grid_choice(self, event: Select.Changed) -> None:
        event.stop()
        self._grid_request()

    @on(DataTable.RowSelected, "#runs")
    def _run_picked(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.query_one("#grid-run", Select).value = event.row_key.value

    @on(DataTable.RowSelected, "#judges")
    def _judge_picked(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.query_one("#grid-judge", Select).value = event.row_key.value
