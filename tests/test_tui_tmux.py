"""The real `vlmdyn tui` in a real terminal (tmux, 80x24), driven with send-keys.

Skipped when tmux is not installed. Keys are sent in small groups with pauses,
as a person types; the screen is read back with capture-pane.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers_tui import build_db

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

VLMDYN = str(Path(sys.executable).with_name("vlmdyn"))


class Tmux:
    def __init__(self, name: str, command: str, size=(80, 24)):
        self.name = name
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", str(size[0]), "-y", str(size[1]), command],
                       check=True)

    def keys(self, *keys: str, wait: float = 0.6) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)
        time.sleep(wait)

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return out.stdout

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} did not appear; screen:\n{self.screen()}")

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name], capture_output=True).returncode == 0

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


@pytest.fixture
def tui_db(tmp_path):
    return build_db(tmp_path / "exp.db")


def test_browse_in_tmux(tui_db):
    t = Tmux("vlmdyn-tui-test", f"{VLMDYN} tui --db {tui_db}")
    try:
        screen = t.wait_for("seen@51")
        assert "seed1" in screen and "q Quit" in screen
        t.keys("2")
        t.wait_for("rows 1–64 of 64")
        t.keys("/")
        t.keys("b", "o", "o", "k", "Enter", wait=1.0)
        t.wait_for("text=book")
        t.wait_for("rows 1–16 of 16")  # the count arrives from its own worker, maybe after the page
        t.keys("Enter")  # details of the first row
        t.wait_for("reference answer")
        t.wait_for("The Long Road")  # the detail's text loads in a worker after its frame is drawn
        t.keys("Escape")
        t.keys("3")
        t.wait_for("frontier")
        t.keys("?")
        t.wait_for("this help")
        t.keys("Escape", wait=1.0)
        assert "this help" not in t.screen()
        t.keys("q")
        end = time.monotonic() + 10
        while t.alive() and time.monotonic() < end:
            time.sleep(0.2)
        assert not t.alive()  # the app quit and took the session with it
    finally:
        t.kill()


def test_rate_in_tmux(tui_db):
    t = Tmux("vlmdyn-tui-rate", f"{VLMDYN} tui --db {tui_db} --rater tess --sample pilot")
    try:
        t.wait_for("item 1 of 4")
        t.keys("y")
        t.wait_for("item 2 of 4")
        t.keys("n")
        t.wait_for("item 3 of 4")
        t.keys("q")
        end = time.monotonic() + 10
        while t.alive() and time.monotonic() < end:
            time.sleep(0.2)
        assert not t.alive()
    finally:
        t.kill()
    conn = sqlite3.connect(tui_db)
    got = conn.execute("SELECT label FROM human_labels WHERE rater = 'tess' ORDER BY label DESC").fetchall()
    conn.close()
    assert got == [("yes",), ("no",)]
