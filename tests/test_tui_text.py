"""Pieces of the TUI that need no app: literal text and half-block images (its SQL: test_tui_queries.py)."""

from __future__ import annotations

from helpers_tui import ANSI

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
