"""Rater mode: labels land in human_labels at once, reopening resumes, no judge verdicts shown."""

from __future__ import annotations

import sqlite3

import pytest

from helpers_tui import MARKUP, QAS, asyncrun, build_db, prediction, screen_text, settle

pytest.importorskip("textual")

from vlmdyn_cli.store.db import triple_hash  # noqa: E402
from vlmdyn_cli.tui.app import create_app  # noqa: E402
from vlmdyn_cli.tui.screens.rater import RaterScreen  # noqa: E402
from vlmdyn_cli.tui.screens.rater_setup import RaterSetup  # noqa: E402

# the fixture's sample "pilot": QA items 0, 2, 5, 7 of run seed1 at step 357
ITEMS = [0, 2, 5, 7]
HASHES = [triple_hash(QAS[i][0], QAS[i][1], prediction(0, 357, i)) for i in ITEMS]


@pytest.fixture
def tui_db(tmp_path):
    return build_db(tmp_path / "exp.db")


def labels(db_path, rater="ann") -> dict[str, tuple[str, str]]:
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT triple_hash, label, source FROM human_labels WHERE rater = ?", (rater,)).fetchall()
    conn.close()
    return {h: (label, source) for h, label, source in rows}


@asyncrun
async def test_rating_writes_labels_and_resumes(tui_db):
    app = create_app(tui_db, rater="ann", sample="pilot")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RaterScreen)
        text = screen_text(app)
        assert "item 1 of 4" in text and QAS[0][0] in text
        await pilot.press("y")
        await pilot.pause()
        # written at once, before anything else happens
        assert labels(tui_db) == {HASHES[0]: ("yes", "tui")}
        assert "item 2 of 4" in screen_text(app)
        await pilot.press("n")   # item 2 -> no
        await pilot.press("s")   # skip item 3 (the markup one)
        await pilot.pause()
        assert "item 4 of 4" in screen_text(app)
        await pilot.press("b")   # back to item 3
        await pilot.pause()
        assert "item 3 of 4" in screen_text(app)
        await pilot.press("b", "b")  # back to item 1, change the label
        await pilot.pause()
        assert "item 1 of 4" in screen_text(app) and "your label: yes" in screen_text(app)
        await pilot.press("n")
        await pilot.pause()
        assert labels(tui_db) == {HASHES[0]: ("no", "tui"), HASHES[1]: ("no", "tui")}
        await pilot.press("q")
    assert app.return_code == 0

    # reopen: starts at the first item this rater has not labelled (the skipped item 3)
    app = create_app(tui_db, rater="ann", sample="pilot")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "item 3 of 4" in text and "2 labelled" in text
        await pilot.press("y", "y")
        await pilot.pause()
        text = screen_text(app)
        assert "all 4 items of pilot labelled by ann" in text
        await pilot.press("y")  # nothing left: no extra writes
        await pilot.pause()
    assert labels(tui_db) == {HASHES[0]: ("no", "tui"), HASHES[1]: ("no", "tui"),
                              HASHES[2]: ("yes", "tui"), HASHES[3]: ("yes", "tui")}
    # another rater has their own labels and starts at item 1
    app = create_app(tui_db, rater="bob", sample="pilot")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "item 1 of 4" in screen_text(app)
    assert labels(tui_db, "bob") == {}


@asyncrun
async def test_rater_never_sees_judge_verdicts_and_text_is_literal(tui_db):
    app = create_app(tui_db, rater="ann", sample="pilot")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("s", "s")  # item 3: the prediction with Rich markup in it
        await pilot.pause()
        text = screen_text(app)
        assert MARKUP in text
        for word in ("rules", "local", "verdict", "p_yes", "MS", "unscored"):
            assert word not in text, word
        assert app.screen.query_one("#rater-prediction").content.plain == MARKUP


@asyncrun
async def test_rater_name_asked_once_in_app(tui_db):
    app = create_app(tui_db, sample="pilot")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, RaterSetup)
        await pilot.press("enter")  # no name yet: refused
        await pilot.pause()
        assert isinstance(app.screen, RaterSetup) and "enter a rater name" in screen_text(app)
        await pilot.press(*"cleo", "enter")
        await settle(pilot)
        assert isinstance(app.screen, RaterScreen) and app.screen.rater == "cleo"
        await pilot.press("y")
        await pilot.pause()
    assert labels(tui_db, "cleo") == {HASHES[0]: ("yes", "tui")}


@asyncrun
async def test_rater_mode_from_the_main_screen(tui_db):
    app = create_app(tui_db)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("R")
        await pilot.pause()
        assert isinstance(app.screen, RaterSetup)
        await pilot.press(*"dan", "enter")
        await settle(pilot)
        assert isinstance(app.screen, RaterScreen)
        await pilot.press("n")
        await pilot.press("escape")  # back to the browser
        await pilot.pause()
        assert not isinstance(app.screen, RaterScreen)
    assert labels(tui_db, "dan") == {HASHES[0]: ("no", "tui")}


def test_cli_rejects_bad_input(cli, tmp_path, tui_db):
    r = cli("tui", "--db", tmp_path / "nope.db")
    assert r.code == 2 and "does not exist" in r.err
    r = cli("tui", "--db", tui_db, "--rater", "ann", "--sample", "pilott")
    assert r.code == 2 and "did you mean 'pilot'" in r.err
    r = cli("tui", "--db", tui_db, "--rater", "  ")
    assert r.code == 2 and "--rater" in r.err
    r = cli("tui", "--help")
    assert r.code == 0 and "--rater" in r.out and "Example" in r.out


def test_cli_does_not_import_textual_for_help():
    import subprocess
    import sys

    code = ("import sys; from vlmdyn_cli.cli.app import main; main(['tui', '--help']); "
            "print('textual' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("False"), out.stdout + out.stderr
