"""Asks once for the rater's name and the calibration sample, then starts rater mode."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Select, Static

from vlmdyn_cli.tui.text import literal


class RaterSetup(ModalScreen[tuple[str, str] | None]):
    """Dismisses with (rater, sample), or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, samples: list[dict], rater: str | None = None, sample: str | None = None, **kw):
        super().__init__(**kw)
        self.samples = samples
        self.rater = rater or ""
        self.sample = sample

    def compose(self) -> ComposeResult:
        with Vertical(id="rater-setup", classes="dialog"):
            yield Static(Text("Rate a calibration sample", style="bold"))
            if not self.samples:
                yield Static(Text("No calibration samples in this database yet: draw one with "
                                  "`vlmdyn calibrate sample --n 100`."))
            yield Input(value=self.rater, placeholder="your name (stored with each label)", id="rater-name")
            options = [(literal(f"{s['sample']} ({s['n']} items)"), s["sample"]) for s in self.samples]
            value = self.sample if any(s["sample"] == self.sample for s in self.samples) else (
                self.samples[0]["sample"] if self.samples else Select.NULL)
            yield Select(options, value=value, id="rater-sample", allow_blank=not self.samples,
                         prompt="sample")
            yield Static("", id="rater-setup-error")
            yield Button("Start rating", id="rater-start", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#rater-name", Input).focus()

    @on(Input.Submitted, "#rater-name")
    @on(Button.Pressed, "#rater-start")
    def _start(self, event) -> None:
        event.stop()
        name = self.query_one("#rater-name", Input).value.strip()
        sample = self.query_one("#rater-sample", Select).value
        error = self.query_one("#rater-setup-error", Static)
        if not name:
            error.update(Text("enter a rater name", style="red"))
            return
        if sample is Select.NULL:
            error.update(Text("no sample to rate", style="red"))
            return
        self.dismiss((name, sample))

    def action_cancel(self) -> None:
        self.dismiss(None)
