"""Detail of one generation: the texts, every judge's verdict and scores, raw judge
outputs, the same QA pair at every checkpoint, and the image when its file exists.

Or of one line of a judged input file (``source=(Filters.source, line)``): its file,
line and id, the texts, every judge's verdict and raw output; no image or checkpoints."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from vlmdyn_cli.tui import queries as Q
from vlmdyn_cli.tui.text import literal, one_line, verdict_text
from vlmdyn_cli.tui.widgets.image_view import ImageView
from vlmdyn_cli.tui.widgets.table import Table


class DetailLoaded(Message):
    def __init__(self, item: dict | None, verdicts: list[dict], history: list[dict], image) -> None:
        super().__init__()
        self.item, self.verdicts, self.history, self.image = item, verdicts, history, image


def _fmt(v, spec: str = "") -> str:
    if v is None:
        return "-"
    return format(v, spec) if spec else str(v)


class DetailScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("backspace", "app.pop_screen", "Back",
                                                                        show=False)]

    def __init__(self, gid: int | None, source: tuple[str, int] | None = None, **kw):
        super().__init__(**kw)
        self.gid = gid
        self.source = source   # (browser source, line) of an input file's row
        self.item: dict | None = None
        self.verdicts: list[dict] = []
        self.history: list[dict] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail"):
            yield Static(Text("loading…"), id="detail-meta")
            with Horizontal(id="detail-top"):
                with Vertical(id="detail-texts"):
                    yield Static(id="detail-question", classes="box")
                    yield Static(id="detail-answer", classes="box")
                    yield Static(id="detail-prediction", classes="box")
                yield Vertical(id="detail-image")
            yield Static(Text("Judges", style="bold"), classes="section")
            yield Table(id="detail-judges", cursor_type="row", zebra_stripes=True)
            yield Vertical(id="detail-raw")
            yield Static(Text("The same question at every checkpoint of this run", style="bold"), classes="section",
                         id="detail-history-title")
            yield Table(id="detail-history", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#detail-question").border_title = "question"
        self.query_one("#detail-answer").border_title = "reference answer"
        self.query_one("#detail-prediction").border_title = "prediction"
        self.reload()

    def refresh_data(self) -> None:
        self.reload()

    def reload(self) -> None:
        if self.source is not None:
            self._load_input(*self.source)
        else:
            self._load(self.gid)

    @work(thread=True, exclusive=True, group="detail")
    def _load_input(self, source: str, line: int) -> None:
        from vlmdyn_cli.tui import browse_inputs

        with self.app.store.read() as conn:
            item = browse_inputs.item(conn, source, line)
            verdicts = Q.verdicts(conn, item["triple_hash"]) if item else []
        self.post_message(DetailLoaded(item, verdicts, [], None))

    @work(thread=True, exclusive=True, group="detail")
    def _load(self, gid: int) -> None:
        with self.app.store.read() as conn:
            item = Q.item(conn, gid)
            verdicts = Q.verdicts(conn, item["triple_hash"]) if item else []
            history = Q.history(conn, item["run_id"], item["qa_id"]) if item else []
        image = Q.image_file(item["image_root"], item["image_path"], self.app.store.path) if item else None
        self.post_message(DetailLoaded(item, verdicts, history, image))

    def _meta(self, it: dict) -> str:
        if self.source is None:
            cat = it["category"] or "?"
            if it["subcategory"]:
                cat += f"/{it['subcategory']}"
            return (f"run {it['run']} (seed {it['seed']}) · step {it['step']} · sets {it['sets'] or '-'}"
                    f" · {cat} · qa {it['qa_id']} · generation {it['gid']}")
        if it["path"] is None:
            text = ("input file not recorded (judged before vlmdyn recorded input files; judge the file again "
                    "to record it)")
        else:
            text = (f"input file {it['path']} · line {it['line']} · id {it['item_id']} · sha256 {it['sha256'][:12]}"
                    f" · first judged {it['created_at']}")
        if it["elsewhere"]:
            text += " · also in " + ", ".join(it["elsewhere"])
        if it["generations"]:
            text += f" · also {it['generations']} generation(s) of runs"
        return text

    async def on_detail_loaded(self, msg: DetailLoaded) -> None:
        self.item, self.verdicts, self.history = msg.item, msg.verdicts, msg.history
        if msg.item is None:
            what = f"generation {self.gid}" if self.source is None else f"line {self.source[1]} of the input file"
            self.query_one("#detail-meta", Static).update(Text(f"{what} not found", style="red"))
            return
        it = msg.item
        self.query_one("#detail-meta", Static).update(literal(self._meta(it), style="bold"))
        self.query_one("#detail-question", Static).update(literal(it["question"]))
        self.query_one("#detail-answer", Static).update(literal(it["answer"]))
        self.query_one("#detail-prediction", Static).update(literal(it["prediction"]))
        box = self.query_one("#detail-image", Vertical)
        await box.remove_children()
        if self.source is not None:
            await box.mount(Static(Text("(input file: no image)", style="dim")))
        elif it["image_path"]:
            await box.mount(ImageView(msg.image, max_width=32, max_rows=10))
        else:
            await box.mount(Static(Text("(text-only item)", style="dim")))

        judges = self.query_one("#detail-judges", DataTable)
        judges.clear(columns=True)
        for c in ("judge", "verdict", "MS", "MD", "H", "p_yes", "latency s", "decided by", "model", "reason"):
            judges.add_column(c)
        for v in msg.verdicts:
            judges.add_row(one_line(v["judge"]), verdict_text(v["status"], v["verdict"]), one_line(_fmt(v["ms"])),
                           one_line(_fmt(v["md"])), one_line(_fmt(v["h"])), one_line(_fmt(v["p_yes"], ".3f")),
                           one_line(_fmt(v["latency_s"], ".2f")), one_line(_fmt(v["decided_by"])),
                           one_line(_fmt(v["resolved_model"])), one_line(_fmt(v["reason"]), 40))
        raw = self.query_one("#detail-raw", Vertical)
        await raw.remove_children()
        for v in msg.verdicts:
            s = Static(literal(v["raw"] if v["raw"] is not None else "(no raw output)"), classes="box raw")
            s.border_title = f"raw output: {v['judge']}"
            await raw.mount(s)

        hist = self.query_one("#detail-history", DataTable)
        hist.clear(columns=True)
        for widget in (hist, self.query_one("#detail-history-title")):
            widget.display = self.source is None
        if self.source is not None:
            return
        names = sorted({n for h in msg.history for n in h["verdicts"]})
        hist.add_column("step")
        for n in names:
            hist.add_column(n)
        hist.add_column("prediction")
        for h in msg.history:
            marks = []
            for n in names:
                v = h["verdicts"].get(n)
                marks.append(verdict_text("unscored" if v == "unscored" else "scored", v) if v else Text("-"))
            style = "bold" if h["step"] == it["step"] else ""
            hist.add_row(one_line(h["step"], style=style), *marks, one_line(h["prediction"], 60), key=str(h["step"]))
