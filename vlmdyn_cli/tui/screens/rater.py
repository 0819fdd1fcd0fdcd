"""Rater mode: label the items of a calibration sample one by one.

The judges' verdicts are never shown here (the rater must not be biased by
them). Each key press writes its label to ``human_labels`` (source "tui") in
its own transaction, so quitting at any time loses nothing, and opening the
sample again starts at the first item this rater has not labelled.

Keys: y yes, n no, s skip (leave unlabelled for now), b back to the previous item.
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from vlmdyn_cli.store.db import now
from vlmdyn_cli.store.labels import save_label
from vlmdyn_cli.tui import queries as Q
from vlmdyn_cli.tui.text import literal
from vlmdyn_cli.tui.widgets.image_view import ImageView


class ItemsLoaded(Message):
    def __init__(self, items: list[dict]) -> None:
        super().__init__()
        self.items = items


class RaterScreen(Screen):
    BINDINGS = [
        Binding("y", "label('yes')", "Yes"),
        Binding("n", "label('no')", "No"),
        Binding("s", "skip", "Skip"),
        Binding("b", "back", "Back"),
        Binding("escape", "leave", "Leave", show=False),
    ]

    def __init__(self, rater: str, sample: str, **kw):
        super().__init__(**kw)
        self.rater = rater
        self.sample = sample
        self.items: list[dict] = []
        self.index: int | None = None  # None: nothing left to label (or nothing to show yet)
        self.visited: list[int] = []
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("loading…"), id="rater-progress")
        with VerticalScroll(id="rater-body"):
            with Horizontal(id="rater-top"):
                with Vertical(id="rater-texts"):
                    yield Static(id="rater-question", classes="box")
                    yield Static(id="rater-answer", classes="box")
                    yield Static(id="rater-prediction", classes="box")
                yield Vertical(id="rater-image")
            yield Static(id="rater-current")
        yield Static(Text("Is the prediction plausibly correct given the reference?  "
                          "y yes · n no · s skip · b back · q quit (labels are saved as you go)"),
                     id="rater-help")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#rater-question").border_title = "question"
        self.query_one("#rater-answer").border_title = "reference answer"
        self.query_one("#rater-prediction").border_title = "prediction"
        self.sub_title = f"rating {self.sample} as {self.rater}"
        self.reload()

    def refresh_data(self) -> None:
        self.reload()

    def reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="rater")
    def _load(self) -> None:
        with self.app.store.read() as conn:
            items = Q.rater_items(conn, self.sample, self.rater)
            for it in items:
                root, path = Q.triple_image(conn, it["triple_hash"])
                it["has_image"] = bool(path)
                it["image"] = Q.image_file(root, path, self.app.store.path)
        self.post_message(ItemsLoaded(items))

    async def on_items_loaded(self, msg: ItemsLoaded) -> None:
        keep = self.items[self.index]["triple_hash"] if (self.loaded and self.index is not None) else None
        self.items = msg.items
        self.loaded = True
        hashes = [it["triple_hash"] for it in self.items]
        self.index = hashes.index(keep) if keep in hashes else self._next_unlabelled(-1)
        await self._show()

    # ---------------------------------------------------------------- navigation

    @property
    def n_labelled(self) -> int:
        return sum(1 for it in self.items if it["label"] is not None)

    def _next_unlabelled(self, after: int) -> int | None:
        """The first unlabelled item after ``after``, wrapping around; None when all are labelled."""
        n = len(self.items)
        for k in range(1, n + 1):
            i = (after + k) % n
            if self.items[i]["label"] is None:
                return i
        return None

    async def _go(self, index: int | None) -> None:
        if self.index is not None:
            self.visited.append(self.index)
        self.index = index
        await self._show()

    async def action_label(self, label: str) -> None:
        if self.index is None:
            return
        it = self.items[self.index]
        with self.app.store.write() as conn:
            save_label(conn, it["triple_hash"], self.rater, label, "tui", now())
        it["label"] = label
        await self._go(self._next_unlabelled(self.index))

    async def action_skip(self) -> None:
        if self.index is None:
            return
        nxt = self._next_unlabelled(self.index)
        if nxt == self.index:  # the only unlabelled item: move on to the next one in order anyway
            nxt = (self.index + 1) % len(self.items)
        await self._go(nxt)

    async def action_back(self) -> None:
        if self.visited:
            self.index = self.visited.pop()
        elif self.index is None and self.items:
            self.index = len(self.items) - 1
        elif self.index:
            self.index -= 1
        await self._show()

    def action_leave(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    # ---------------------------------------------------------------- drawing

    async def _show(self) -> None:
        total = len(self.items)
        progress = self.query_one("#rater-progress", Static)
        box = self.query_one("#rater-image", Vertical)
        await box.remove_children()
        if total == 0:
            progress.update(literal(f"sample {self.sample!r} has no items (draw one with `vlmdyn calibrate "
                                    f"sample`)", style="bold red"))
            self._texts("", "", "", "")
            return
        if self.index is None:
            progress.update(literal(f"all {total} items of {self.sample} labelled by {self.rater} · "
                                    f"b: back to change a label · q: quit", style="bold green"))
            self._texts("", "", "", "")
            return
        it = self.items[self.index]
        progress.update(literal(f"item {self.index + 1} of {total} · {self.n_labelled} labelled · "
                                f"rater {self.rater} · sample {self.sample} · id {it['item_id']}", style="bold"))
        cur = f"your label: {it['label']}" if it["label"] else "not labelled yet"
        self._texts(it["question"], it["answer"], it["prediction"], cur)
        if it["has_image"]:
            await box.mount(ImageView(it["image"], max_width=32, max_rows=10))

    def _texts(self, q: str, a: str, p: str, current: str) -> None:
        self.query_one("#rater-question", Static).update(literal(q))
        self.query_one("#rater-answer", Static).update(literal(a))
        self.query_one("#rater-prediction", Static).update(literal(p))
        self.query_one("#rater-current", Static).update(literal(current, style="italic"))
