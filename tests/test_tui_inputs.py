"""Judgements made from `vlmdyn judge --input FILE` in the TUI browser (issue 17 item 8): the file
and its lines are recorded (migration m260_input_files), the browser's source select shows the file,
its rows show file and line, the filters that make sense apply, Enter opens every judge's verdicts."""

from __future__ import annotations

import json
import sqlite3

import pytest

from helpers_tui import ANSI, MARKUP, asyncrun, build_db, screen_text, settle

pytest.importorskip("textual")

from textual.widgets import Select  # noqa: E402

from vlmdyn_cli.tui import browse as B  # noqa: E402
from vlmdyn_cli.tui.app import create_app  # noqa: E402
from vlmdyn_cli.tui.screens.browser import BrowserPane  # noqa: E402
from vlmdyn_cli.tui.screens.detail import DetailScreen  # noqa: E402
from vlmdyn_cli.tui.widgets.filter_bar import RUN_ONLY, FilterBar  # noqa: E402
from vlmdyn_cli.tui.widgets.judgement_table import JudgementTable  # noqa: E402

BOX = "Give the bounding box of the red cup."
# rules and lexical judge these for real: b1/b2 rules "no" (IoU < 0.5; lexical said "yes" when written);
# "evil" and "smile" rules unscored (no rule decides; open-ended); line 2 is blank (skipped, not renumbered)
LINES = [
    {"id": "b1", "question": BOX, "answer": "[0.10, 0.20, 0.30, 0.40]", "prediction": "[0.10, 0.20, 0.22, 0.30]"},
    None,
    {"id": "colour", "question": "What colour is the cup?", "answer": "red", "prediction": "a red cup"},
    {"id": "evil", "question": "What does the sign say?", "answer": "stop", "prediction": MARKUP + " " + ANSI},
    {"id": "b2", "question": BOX, "answer": "[0.10, 0.20, 0.30, 0.40]", "prediction": "[0.20, 0.30, 0.30, 0.40]"},
    {"id": "smile", "question": "Why might the man be smiling?", "answer": "He won a prize at the fair.",
     "prediction": "Because he won a prize."},
]


def write_lines(path, lines=LINES):
    path.write_text("".join(("" if o is None else json.dumps(o)) + "\n" for o in lines), encoding="utf-8")
    return path


@pytest.fixture
def judged(tmp_path, cli):
    """The TUI fixture database plus one input file judged by rules and lexical through the CLI."""
    db = build_db(tmp_path / "exp.db")
    f = write_lines(tmp_path / "in.jsonl")
    for judge in ("rules", "lexical"):
        r = cli("judge", "--db", db, "--input", f, "--judge", judge, "-q")
        assert r.code == 0, r.err
    return db, f


def stored(db, where: str) -> list[tuple]:
    """(line id, judge) of the file's judgements matching ``where``, in browser order: what the real
    judges stored (the fitted lexical judge's verdicts change when it is refitted)."""
    c = sqlite3.connect(db)
    try:
        return c.execute("SELECT x.item_id, j.judge_name FROM input_file_rows x JOIN judgements j ON j.triple_hash "
                         f"= x.triple_hash WHERE {where} ORDER BY x.line, j.id").fetchall()
    finally:
        c.close()


def stored_verdict(db, judge: str, line: int):
    c = sqlite3.connect(db)
    try:
        return c.execute("SELECT j.verdict FROM input_file_rows x JOIN judgements j ON j.triple_hash = x.triple_hash "
                         "WHERE x.line = ? AND j.judge_name = ?", (line, judge)).fetchone()[0]
    finally:
        c.close()


def _rows(pilot) -> list[tuple]:
    """(file, line, id, judge, verdict, question, prediction) of the rows the table shows."""
    table = pilot.app.screen.query_one(JudgementTable)
    names = [c.label.plain for c in table.ordered_columns]
    out = []
    for i in range(table.row_count):
        cells = dict(zip(names, [c.plain for c in table.get_row_at(i)]))
        out.append((cells["file"], cells["line"], cells["id"], cells["judge"], cells["verdict"],
                    cells["question"], cells["prediction"]))
    return out


async def _open_file(pilot):
    await pilot.press("2")
    await settle(pilot)
    bar = pilot.app.screen.query_one(FilterBar)
    source = bar.query_one("#f-source", Select)
    files = [(str(label), value) for label, value in source._options if value is not Select.NULL]
    assert files == [("file: in.jsonl", "file:1")]
    bar.set_value("source", "file:1")
    await settle(pilot)
    return bar


@asyncrun
async def test_input_file_rows_in_the_browser(judged):
    db, f = judged
    app = create_app(db)
    async with app.run_test(size=(160, 44)) as pilot:
        bar = await _open_file(pilot)
        browser = app.screen.query_one(BrowserPane)
        rows = _rows(pilot)
        assert len(rows) == 10 and browser.count == B.Count(10)   # 5 lines x 2 judges
        assert {r[0] for r in rows} == {"in.jsonl"}
        assert [(r[1], r[2]) for r in rows[::2]] == [("1", "b1"), ("3", "colour"), ("4", "evil"), ("5", "b2"),
                                                     ("6", "smile")]
        assert {r[3] for r in rows} == {"rules", "lexical"}
        assert all(bar.query_one(f"#f-{name}", Select).disabled for name in RUN_ONLY)
        assert "source=file: in.jsonl" in screen_text(app)

        bar.set_value("judge", "rules")
        await settle(pilot)
        assert [r[1] for r in _rows(pilot)] == ["1", "3", "4", "5", "6"]
        bar.set_value("status", "unscored")
        await settle(pilot)
        assert [(r[2], r[4]) for r in _rows(pilot)] == [("evil", "unscored"), ("smile", "unscored")]
        bar.clear()
        await settle(pilot)
        table = app.screen.query_one(JudgementTable)   # back to the runs: their rows, columns and filters
        assert table.row_count == 64 and [c.label.plain for c in table.ordered_columns][:2] == ["run", "step"]
        assert not bar.query_one("#f-run", Select).disabled

        bar.set_value("source", "file:1")
        bar.set_value("verdict", "no")
        await settle(pilot)
        assert [(r[2], r[3]) for r in _rows(pilot)] == stored(db, "j.verdict = 'no'")
        assert ("b1", "rules") in stored(db, "j.verdict = 'no'")   # box IoU 0.30: rules says no
        bar.set_value("verdict", None)
        bar.set_value("dis_a", "rules")
        bar.set_value("dis_b", "lexical")
        await settle(pilot)
        differ = stored(db, "(SELECT count(DISTINCT k.verdict) FROM judgements k WHERE k.triple_hash = x.triple_hash "
                            "AND k.status = 'scored' AND k.judge_name IN ('rules', 'lexical')) = 2")
        assert differ and [(r[2], r[3]) for r in _rows(pilot)] == differ
        bar.set_value("dis_a", None)
        bar.set_value("text", "smiling")
        await settle(pilot)
        assert [(r[2], r[3]) for r in _rows(pilot)] == [("smile", "rules"), ("smile", "lexical")]
        assert browser.count == B.Count(2)


@asyncrun
async def test_input_file_text_is_literal_and_detail_shows_every_judge(judged):
    db, f = judged
    app = create_app(db)
    async with app.run_test(size=(160, 50)) as pilot:
        bar = await _open_file(pilot)
        bar.set_value("text", "sign")
        await settle(pilot)
        assert "[bold red]x[/] and [link=http://ev" in screen_text(app)   # the table cell, cut to its width
        assert "\x1b" not in app.export_screenshot()

        app.screen.query_one(JudgementTable).focus()
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        assert (screen.item["path"], screen.item["line"], screen.item["item_id"]) == (str(f), 4, "evil")
        assert [(v["judge"], v["verdict"]) for v in screen.verdicts] == [
            ("lexical", stored_verdict(db, "lexical", 4)), ("rules", None)]
        text = screen_text(app)
        for needle in (f"input file {f}", "line 4", "id evil", "raw output: rules", "raw output: lexical",
                       "What does the sign say?", "[bold red]x[/] and [link=http://evil]click[/link]",
                       "\\x1b[31mred\\x1b[0m text\\x07"):
            assert needle in text, needle
        assert "\x1b" not in app.export_screenshot()
        assert "every checkpoint" not in text
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen.query_one(BrowserPane), BrowserPane)


def test_migration_on_an_existing_database_lists_unrecorded_input_judgements(tmp_path):
    """A database judged from a file before m260: its input judgements get no invented file, they are
    listed as unrecorded (generation and calibration triples are not), and the TUI says so."""
    from vlmdyn_cli.store import input_files, open_db
    from vlmdyn_cli.store.migrations import migrations
    from vlmdyn_cli.tui import queries as Q

    path = build_db(tmp_path / "old.db")
    c = sqlite3.connect(path)
    c.execute("DELETE FROM _sqlite_migrations WHERE name = 'm260_input_files'")
    for t in ("input_file_rows", "input_files", "input_unrecorded"):   # as m250 left it
        c.execute(f"DROP TABLE {t}")
    c.execute("DROP INDEX idx_judgements_triple_verdict")
    c.execute("CREATE INDEX idx_judgements_triple ON judgements(triple_hash)")
    c.execute("INSERT INTO triples(hash, question, answer, prediction) VALUES ('th-old', 'q old', 'a', 'p')")
    c.execute("INSERT INTO judgements(spec_hash, triple_hash, judge_name, status, verdict, created_at) "
              "VALUES ('spec-rules', 'th-old', 'rules', 'scored', 'yes', 'then')")
    c.commit()
    c.close()
    assert [m.name for m in migrations.pending(open_db(path, readonly=False))] == []   # open_db migrated it
    c = sqlite3.connect(path)
    c.row_factory = sqlite3.Row
    assert [r[0] for r in c.execute("SELECT triple_hash FROM input_unrecorded")] == ["th-old"]
    assert c.execute("SELECT count(*) FROM input_files").fetchone()[0] == 0
    assert input_files.unrecorded(c) == (1, 1)
    assert Q.sources(c) == [("input, file not recorded (1)", "unrecorded")]
    assert c.execute("SELECT count(*) FROM sqlite_master WHERE name = 'idx_judgements_triple'").fetchone()[0] == 0


@asyncrun
async def test_unrecorded_input_judgements_are_shown_as_such(tmp_path, cli):
    from vlmdyn_cli.tui import browse_inputs as I

    db = build_db(tmp_path / "exp.db")
    f = write_lines(tmp_path / "in.jsonl", LINES[:1])
    assert cli("judge", "--db", db, "--input", f, "--judge", "rules", "-q").code == 0
    c = sqlite3.connect(db)     # as if judged before m260: no record of the file
    h = c.execute("SELECT triple_hash FROM input_file_rows").fetchone()[0]
    c.execute("DELETE FROM input_file_rows")
    c.execute("DELETE FROM input_files")
    c.execute("INSERT INTO input_unrecorded(triple_hash) VALUES (?)", (h,))
    c.commit()
    app = create_app(db)
    async with app.run_test(size=(160, 44)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        bar = app.screen.query_one(FilterBar)
        bar.set_value("source", I.UNRECORDED)
        await settle(pilot)
        assert [(r[0], r[1], r[3]) for r in _rows(pilot)] == [("(not recorded)", "-", "rules")]
        assert "their file is unknown" in screen_text(app)
    # judging the file again records it: it leaves the unrecorded list
    assert cli("judge", "--db", db, "--input", f, "--judge", "rules", "-q").code == 0
    assert I.page(_ro(db), B.Filters(source=I.UNRECORDED)) == []


def _ro(db):
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    return conn
