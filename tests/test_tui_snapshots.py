"""Snapshot tests of the main screens (pytest-textual-snapshot).

Deterministic: fixed fixture data, no timestamps shown, query timings switched
off. Update after an intended change with
``/work/venv/bin/pytest tests/test_tui_snapshots.py --snapshot-update`` and look
at the SVGs under tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

import pytest

from helpers_tui import build_db, settle, settle_screen

pytest.importorskip("pytest_textual_snapshot")

from vlmdyn_cli.tui.app import create_app  # noqa: E402


@pytest.fixture
def tui_db(tmp_path):
    return build_db(tmp_path / "exp.db")


def _app(db, **kw):
    """The app with animations off: a tab underline caught mid-slide on a loaded machine
    made the overview snapshot differ in CI."""
    app = create_app(db, show_timings=False, **kw)
    app.animation_level = "none"
    return app


def _after(*keys):
    async def run_before(pilot):
        await settle(pilot)
        for k in keys:
            await pilot.press(k)
            await settle(pilot)
        await settle_screen(pilot)
    return run_before


def test_overview_80x24(snap_compare, tui_db):
    assert snap_compare(_app(tui_db), terminal_size=(80, 24), run_before=_after())


def test_overview_large(snap_compare, tui_db):
    assert snap_compare(_app(tui_db), terminal_size=(160, 48),
                        run_before=_after("c"))


def test_judgements_80x24(snap_compare, tui_db):
    assert snap_compare(_app(tui_db), terminal_size=(80, 24), run_before=_after("2"))


def test_detail_100x40(snap_compare, tui_db):
    assert snap_compare(_app(tui_db), terminal_size=(100, 40),
                        run_before=_after("2", "enter"))


def test_plots_100x30(snap_compare, tui_db):
    assert snap_compare(_app(tui_db), terminal_size=(100, 30), run_before=_after("3"))


def test_rater_80x24(snap_compare, tui_db):
    assert snap_compare(_app(tui_db, rater="ann", sample="pilot"),
                        terminal_size=(80, 24), run_before=_after())


def test_help_80x24(snap_compare, tui_db):
    assert snap_compare(_app(tui_db), terminal_size=(80, 24),
                        run_before=_after("question_mark"))
