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

from vlmdyn_cli.store.judgement_queries import judge_status
from vlmdyn_cli.store.runs import list_runs
from vlmdyn_cli.tui import queries as Q
from vlmdyn_cli.tui.text import literal, one_line
from vlmdyn_cli.tui.widgets.accuracy_grid import AccuracyGrid
from vlmdyn_cli.tui.widgets.table import Table


class OverviewLoaded(Message):
    def __init__(self, runs: list[dict], judges: list[dict], specs: list[tuple[str, str]], sets: list[str]) -> None:
        super().__init__()
        self.runs, self.judges, self.specs, self.sets = runs, judges, specs, sets


class GridLoaded(Message):
    def __init__(self, run: str, spec_hash: str, cells: list[dict] | None, error: str | None = None) -> None:
        super().__init__()
        self.run, self.spec_hash, self.cells, self.error = run, spec_hash, cells, error


def _steps(steps: list[int]) -> str:
    """[51, 357, 765, 1275] -> '4: 51…1275' (the full list can be long)."""
    if not steps:
        return "-"
    if len(steps) <= 3:
        return " ".join(map(str, steps))
    return f"{len(steps)}: {steps[0]}…{steps[-1]}"


class OverviewPane(Vertical):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.runs: list[dict] = []
        self.judges: list[dict] = []
        self.set_order: list[str] = []
        self.specs: list[tuple[str, str]] = []  # (label, spec hash) of judges with judgements
        self.grid_cells: list[dict] | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="overview-top"):
            yield Table(id="runs", cursor_type="row", zebra_stripes=True)
            yield Table(id="judges", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="grid-controls"):
            yield Select([], prompt="run", id="grid-run", compact=True, allow_blank=True)
            yield Select([], prompt="judge", id="grid-judge", compact=True, allow_blank=True)
            yield Static("accuracy = yes / scored · c: counts", id="grid-hint")
        yield AccuracyGrid(id="grid")
        yield Static("", id="grid-status")

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
            runs = sorted(list_runs(conn), key=lambda r: (r["seed"], r["name"]))
            judges = judge_status(conn, per_spec=False)
            specs = Q.judge_specs(conn)
            sets = Q.choices(conn)["set_name"]
        self.post_message(OverviewLoaded(runs, judges, specs, sets))

    @work(thread=True, exclusive=True, group="overview-grid")
    def _load_grid(self, run: str, spec_hash: str) -> None:
        from vlmdyn_cli.errors import VlmdynError

        try:
            with self.app.store.rw() as conn:  # the aggregation refreshes its cache table
                cells = Q.accuracy_grid(conn, run, spec_hash)
        except VlmdynError as exc:
            self.post_message(GridLoaded(run, spec_hash, None, str(exc)))
            return
        self.post_message(GridLoaded(run, spec_hash, cells))

    def on_overview_loaded(self, msg: OverviewLoaded) -> None:
        self.runs, self.judges, self.set_order, self.specs = msg.runs, msg.judges, msg.sets, msg.specs
        runs = self.query_one("#runs", DataTable)
        runs.clear()
        for r in msg.runs:
            runs.add_row(one_line(r["name"]), one_line(r["seed"]), one_line(r["status"]),
                         one_line(_steps(r["checkpoint_steps"])), one_line(r["n_sets"]), key=r["name"])
        judges = self.query_one("#judges", DataTable)
        judges.clear()
        for j in msg.judges:
            yes = "-" if j["accuracy"] is None else f"{100 * j['accuracy']:.0f}%"
            judges.add_row(one_line(j["judge"]), one_line(f"{j['n']:,}"), one_line(f"{j['unscored'] or 0:,}"),
                           one_line(yes), one_line(f"{j['cost_usd'] or 0:.4f}"),
                           one_line("-" if j["mean_latency_s"] is None else f"{j['mean_latency_s']:.2f}"),
                           key=j["judge"])
        self._fill_select("#grid-run", [(r["name"], r["name"]) for r in msg.runs])
        self._fill_select("#grid-judge", msg.specs)
        self._grid_request()

    def _fill_select(self, selector: str, options: list[tuple[str, str]]) -> None:
        sel = self.query_one(selector, Select)
        current = sel.value
        values = [v for _, v in options]
        with sel.prevent(Select.Changed):
            sel.set_options([(one_line(label), v) for label, v in options])
            if current in values:
                sel.value = current
            elif values:
                sel.value = values[0]

    def _grid_request(self) -> None:
        run = self.query_one("#grid-run", Select).value
        judge = self.query_one("#grid-judge", Select).value
        status = self.query_one("#grid-status", Static)
        if run is Select.NULL or judge is Select.NULL:
            self.grid_cells = []
            self.query_one(AccuracyGrid).set_cells([], self.set_order)
            status.update("no runs or no judgements yet")
            return
        status.update("aggregating… (the first time per run and judge takes a few seconds at paper scale)")
        self._load_grid(run, judge)

    def on_grid_loaded(self, msg: GridLoaded) -> None:
        status = self.query_one("#grid-status", Static)
        if msg.error is not None:
            self.grid_cells = []
            self.query_one(AccuracyGrid).set_cells([], self.set_order)
            status.update(literal(msg.error, style="red"))
            return
        self.grid_cells = msg.cells
        self.query_one(AccuracyGrid).set_cells(msg.cells, self.set_order)
        unscored = sum(c["unscored"] for c in msg.cells)
        missing = sum(c["missing"] for c in msg.cells)
        status.update(literal(f"{unscored:,} unscored judgements excluded · {missing:,} generations not judged "
                              f"by this judge yet"))

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
        for label, spec_hash in self.specs:
            if label.split(" (")[0] == event.row_key.value:
                self.query_one("#grid-judge", Select).value = spec_hash
                return
