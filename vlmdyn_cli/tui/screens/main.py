"""The main screen: three tabs (overview, judgements browser, plots)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, TabbedContent, TabPane

from vlmdyn_cli.tui.screens.browser import BrowserPane
from vlmdyn_cli.tui.screens.overview import OverviewPane
from vlmdyn_cli.tui.screens.plots import PlotsPane


class MainScreen(Screen):
    BINDINGS = [
        Binding("1", "show_tab('overview')", "Overview", show=False),
        Binding("2", "show_tab('judgements')", "Judgements", show=False),
        Binding("3", "show_tab('plots')", "Plots", show=False),
        Binding("slash", "search", "Search", key_display="/", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="overview", id="tabs"):
            with TabPane("1 Overview", id="overview"):
                yield OverviewPane(id="overview-pane")
            with TabPane("2 Judgements", id="judgements"):
                yield BrowserPane(id="browser")
            with TabPane("3 Plots", id="plots"):
                yield PlotsPane(id="plots-pane")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#grid").focus()
        self.refresh_data()

    def refresh_data(self) -> None:
        """Load (again) everything: new rows written by other processes appear."""
        self.query_one(OverviewPane).reload()
        browser = self.query_one(BrowserPane)
        browser.load_choices()
        browser.reload()
        self.query_one(PlotsPane).reload()

    def action_show_tab(self, tab: str) -> None:
        """Switch tab and focus its main widget, so its keys work at once."""
        self.query_one(TabbedContent).active = tab
        target = {"overview": "#grid", "judgements": "#judgement-table", "plots": "#plot-judge"}[tab]
        # set_focus at once (not widget.focus(), which is deferred): keys that arrive in the same
        # batch, e.g. from `tmux send-keys` or a fast typist, must already go to the new widget
        self.set_focus(self.query_one(target))

    def action_search(self) -> None:
        self.action_show_tab("judgements")
        self.set_focus(self.query_one("#search"))
