"""The browser's filters: one compact Select per field, two for "judges disagree", a search box.

The first select chooses the source: the runs' generations (blank), a judged input file
("file: name.jsonl"), or the judgements whose input file was not recorded; with an input
file the run-only filters (run, seed, step, set, category, sub-category) are disabled.

Posts ``FilterBar.Changed(filters)`` whenever the filters change (search text
after a short pause or on Enter).
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Select

from vlmdyn_cli.tui.browse import Filters

# field -> (prompt when blank, label prefix for values)
FIELDS = {
    "source": ("source: runs", ""),
    "run": ("run: any", "run "),
    "seed": ("seed: any", "seed "),
    "step": ("step: any", "step "),
    "set_name": ("set: any", "set "),
    "category": ("category: any", ""),
    "subcategory": ("subcat: any", ""),
    "judge": ("judge: any", "judge "),
    "verdict": ("verdict: any", "verdict "),
    "status": ("status: any", ""),
    "dis_a": ("disagree: -", "≠ "),
    "dis_b": ("  and: -", "and "),
}
RUN_ONLY = ("run", "seed", "step", "set_name", "category", "subcategory")
SEARCH_DELAY_S = 0.35


class FilterBar(Grid):
    DEFAULT_CSS = """
    FilterBar { grid-size: 4; grid-gutter: 0 1; height: auto; padding: 0 1; }
    FilterBar Select { width: 1fr; }
    FilterBar #search { column-span: 3; }
    """

    class Changed(Message):
        def __init__(self, filters: Filters) -> None:
            super().__init__()
            self.filters = filters

    def __init__(self, **kw):
        super().__init__(**kw)
        self._timer: Timer | None = None
        self._quiet = False
        self._last: Filters | None = None
        self._source_labels: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        for name, (prompt, _) in FIELDS.items():
            yield Select([], prompt=prompt, id=f"f-{name}", compact=True, allow_blank=True)
        yield Input(placeholder="search question / answer / prediction", id="search", compact=True)

    def set_choices(self, choices: dict[str, list]) -> None:
        """Fill the selects (keeping the current selection when it is still valid)."""
        self._quiet = True
        try:
            for name, (_, prefix) in FIELDS.items():
                src = "judge" if name in ("dis_a", "dis_b") else name
                sel = self.query_one(f"#f-{name}", Select)
                current = sel.value
                values = choices.get(src, [])
                if name == "source":    # (label, value) pairs
                    self._source_labels = dict((v, label) for label, v in values)
                    sel.set_options([(Text(label), v) for label, v in values])
                    values = [v for _, v in values]
                else:
                    sel.set_options([(Text(f"{prefix}{v}"), v) for v in values])
                if current in values:
                    sel.value = current
        finally:
            self._quiet = False
        self._run_only()

    def _run_only(self) -> None:
        """Disable the filters that only runs have while an input file is shown."""
        inputs = self.query_one("#f-source", Select).value is not Select.NULL
        for name in RUN_ONLY:
            self.query_one(f"#f-{name}", Select).disabled = inputs

    def set_value(self, name: str, value) -> None:
        """Set one filter from code (tests, the detail screen's shortcuts)."""
        if name == "text":
            self.query_one("#search", Input).value = value or ""
            self._emit()
            return
        sel = self.query_one(f"#f-{name}", Select)
        sel.value = Select.NULL if value is None else value

    def source_label(self) -> str:
        """What the source select shows ("file: name.jsonl"), for the status line."""
        return self._source_labels.get(self.query_one("#f-source", Select).value, "runs")

    def clear(self) -> None:
        self._quiet = True
        try:
            for name in FIELDS:
                self.query_one(f"#f-{name}", Select).clear()
            self.query_one("#search", Input).value = ""
        finally:
            self._quiet = False
        self._emit()

    def filters(self) -> Filters:
        def v(name):
            val = self.query_one(f"#f-{name}", Select).value
            return None if val is Select.NULL else val

        a, b = v("dis_a"), v("dis_b")
        text = self.query_one("#search", Input).value.strip()
        source = v("source")
        runs = {} if source is not None else {name: v(name) for name in RUN_ONLY}
        return Filters(**runs, judge=v("judge"), verdict=v("verdict"), status=v("status"),
                       disagree=(a, b) if a and b and a != b else None, text=text or None, source=source)

    def _emit(self) -> None:
        f = self.filters()
        if f != self._last:
            self._last = f
            self.post_message(self.Changed(f))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.id == "f-source":
            self._run_only()
        if not self._quiet:
            self._emit()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(SEARCH_DELAY_S, self._emit)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # not stopped: the browser moves the focus to the table on Enter
        if self._timer is not None:
            self._timer.stop()
        self._emit()
