"""The vlmdyn Textual app (thin: screens live in screens/, widgets in widgets/).

``create_app(db_path, rater=..., sample=...)`` is used by ``vlmdyn tui`` and
by the tests. Without ``rater``/``sample`` the app opens on the main screen
(overview, judgements, plots tabs); with either it opens in rater mode, asking
for whatever is missing (rater name, sample) once.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding

from vlmdyn_cli.tui.store import Store


class VlmdynApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "vlmdyn"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("r", "refresh_data", "Refresh"),
        Binding("R", "rate", "Rate", show=False),
    ]

    def __init__(self, db_path: str | Path, rater: str | None = None, sample: str | None = None,
                 show_timings: bool = True):
        super().__init__()
        self.store = Store(db_path)
        self.sub_title = Path(db_path).name
        self.show_timings = show_timings  # query times in the status line (off for snapshot tests)
        self.rater = rater
        self.sample = sample
        self.rater_mode = rater is not None or sample is not None

    def on_mount(self) -> None:
        from vlmdyn_cli.tui.screens.main import MainScreen

        if self.rater_mode:
            self.action_rate(first=True)
        else:
            self.push_screen(MainScreen())

    def on_unmount(self) -> None:
        self.store.close()

    # ---------------------------------------------------------------- actions

    def action_help(self) -> None:
        from vlmdyn_cli.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_refresh_data(self) -> None:
        refresh = getattr(self.screen, "refresh_data", None)
        if refresh is not None:
            refresh()
            self.notify("reloaded from the database", timeout=1.5)

    def action_rate(self, first: bool = False) -> None:
        """Rater mode: start at once when name and sample are known, else ask for them."""
        from vlmdyn_cli.store.labels import samples as list_samples
        from vlmdyn_cli.tui.screens.rater import RaterScreen
        from vlmdyn_cli.tui.screens.rater_setup import RaterSetup

        if isinstance(self.screen, RaterScreen):
            return
        with self.store.read() as conn:
            samples = list_samples(conn)
        sample = self.sample
        if sample is None and len(samples) == 1:
            sample = samples[0]["sample"]
        if self.rater and sample:
            self.push_screen(RaterScreen(self.rater, sample))
            return

        def chosen(result: tuple[str, str] | None) -> None:
            if result is None:
                if first:
                    self.exit()
                return
            self.rater, self.sample = result
            self.push_screen(RaterScreen(*result))

        self.push_screen(RaterSetup(samples, rater=self.rater, sample=sample), chosen)


def create_app(db_path: str | Path, rater: str | None = None, sample: str | None = None,
               show_timings: bool = True) -> VlmdynApp:
    """The app over one experiment database (which must exist and be migrated)."""
    return VlmdynApp(db_path, rater=rater, sample=sample, show_timings=show_timings)
