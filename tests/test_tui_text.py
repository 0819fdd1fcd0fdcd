"""Pieces of the TUI that need no app: literal text, half-block images, SQL paging and counts."""

from __future__ import annotations

from helpers_tui import ANSI, QAS, build_db

from vlmdyn_cli.tui import queries as Q
from vlmdyn_cli.tui.store import Store
from vlmdyn_cli.tui.text import clean, literal, one_line


def test_control_characters_become_visible():
    assert clean(ANSI) == "\\x1b[31mred\\x1b[0m text\\x07"
    assert clean("a\r\nb\tc\x00\u202e") == "a\nb    c\\x00\\u202e"
    t = literal("[bold red]x[/]")
    assert t.plain == "[bold red]x[/]" and not t.spans  # a Text: never parsed as markup
    assert one_line("line one\nline two", width=12).plain == "line one ⏎ …"


def test_halfblock_image(tmp_path):
    from PIL import Image

    from vlmdyn_cli.tui.widgets.image_view import halfblock

    img = Image.new("RGB", (4, 4), (255, 0, 0))
    for x in range(4):
        img.putpixel((x, 1), (0, 0, 255))  # second pixel row blue: the lower half of the first text row
    img.save(tmp_path / "x.png")
    t = halfblock(tmp_path / "x.png", max_width=4, max_rows=2)
    assert t.plain == "▀▀▀▀\n▀▀▀▀"
    first = t.spans[0].style
    assert first.color.triplet == (255, 0, 0) and first.bgcolor.triplet == (0, 0, 255)


def test_pages_and_text_modes_agree(tmp_path):
    """The three text-search strategies return the same rows; pages tile the result exactly."""
    db = build_db(tmp_path / "exp.db")
    store = Store(db)
    with store.read() as conn:
        f = Q.Filters(text="book")
        want = None
        for mode in ("drive", "filter", "probe"):
            where, params = Q._where(f, text_mode=mode)
            rows = conn.execute(f"SELECT g.id, j.id FROM {Q.FROM} WHERE {where} ORDER BY g.run_id, g.step, "
                                f"g.qa_id, j.id", params).fetchall()
            got = [tuple(r) for r in rows]
            assert want is None or got == want, mode
            want = got
        assert len(want) == 16
        assert {r["question"] for r in Q.page(conn, f)} == {QAS[2][0], QAS[3][0]}
        # keyset pages with a fixed step: no gaps, no repeats
        f = Q.Filters(step=357, judge="local")
        seen, after = [], None
        while page := Q.page(conn, f, after=after, limit=3):
            seen += [r["key"] for r in page]
            after = page[-1]["key"]
        assert len(seen) == len(set(seen)) == Q.count(conn, f)[0] == 16
    store.close()


def test_count_gives_up_after_its_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(Q, "COUNT_CHECK_EVERY", 1)
    db = build_db(tmp_path / "exp.db")
    store = Store(db)
    with store.read() as conn:
        assert Q.count(conn, Q.Filters(), budget_s=10) == (64, False)
        assert Q.count(conn, Q.Filters(), budget_s=-1) == (None, False)  # already past the deadline
        assert Q.count(conn, Q.Filters(), cap=10) == (10, True)
    store.close()
