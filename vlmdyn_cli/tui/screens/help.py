"""The ``?`` help: every key of every screen."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = [
    ("Everywhere", [("q", "quit"), ("?", "this help"), ("r", "refresh: read rows other processes wrote"),
                    ("R", "rater mode (asks name and sample)"), ("tab / shift+tab", "move focus"),
                    ("mouse", "click tabs, rows, selects; scroll with the wheel")]),
    ("Tabs", [("1 / 2 / 3", "overview / judgements / plots")]),
    ("Overview", [("enter on a run or judge", "show it in the accuracy grid"),
                  ("c (in the grid)", "show counts: yes/scored, u unscored, m not judged yet")]),
    ("Judgements", [("source (first select)", "runs, or a judged input file (file: name.jsonl): its rows show "
                     "file, line and id; run, seed, step, set and category do not apply to it"),
                    ("/", "search question, answer and prediction (full-text)"),
                    ("n / p", "next / previous page"), ("x", "clear all filters"),
                    ("enter", "details of the row: all judges, raw output, the answer over training")]),
    ("Details", [("escape", "back")]),
    ("Plots", [("j / k", "next / previous judge"),
               ("m", "next figure: frontiers, categories, seen sets, sub-skills, de-dup, loss")]),
    ("Rater mode", [("y / n", "label the prediction correct / not correct (saved at once)"),
                    ("s", "skip for now"), ("b", "back to the previous item"), ("escape", "leave")]),
]


def help_table() -> Table:
    t = Table(show_header=False, box=None, padding=(0, 1))
    t.add_column(style="bold cyan", no_wrap=True)
    t.add_column()
    for section, rows in KEYS:
        t.add_row(Text(section, style="bold underline"), Text(""))
        for key, what in rows:
            t.add_row(Text(key), Text(what))
    return t


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("question_mark", "dismiss", "Close"),
                Binding("q", "dismiss", "Close", show=False)]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help", classes="dialog"):
            yield Static(Text("vlmdyn tui: keys", style="bold"))
            yield Static(help_table())

    def action_dismiss(self) -> None:
        self.dismiss(None)
