"""Outputs are replaced whole: a write that fails half-way leaves the previous file and no leftovers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from vlmdyn_cli.atomic import save_figure, write_text  # noqa: E402


def test_a_failed_text_write_keeps_the_old_file(tmp_path):
    out = tmp_path / "judge.toml"
    write_text(out, "old = 1\n")
    with pytest.raises(UnicodeEncodeError):
        write_text(out, "new = 2\n" * 1000 + "\ud800")      # dies after most of the text
    assert out.read_text() == "old = 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["judge.toml"]
    write_text(out, "new = 2\n")
    assert out.read_text() == "new = 2\n" and [p.name for p in tmp_path.iterdir()] == ["judge.toml"]


def test_a_figure_keeps_its_format_and_a_failed_save_keeps_the_old_one(tmp_path):
    fig = plt.figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    for name, magic in (("f.png", b"\x89PNG"), ("f.svg", b"<?xml"), ("f.pdf", b"%PDF"), ("noext", b"\x89PNG")):
        assert save_figure(fig, tmp_path / name).read_bytes().startswith(magic), name
    before = (tmp_path / "f.png").read_bytes()
    with pytest.raises(ValueError):
        save_figure(fig, tmp_path / "f.png", format="no-such-format")
    assert (tmp_path / "f.png").read_bytes() == before
    assert not list(tmp_path.glob("*.part"))
    plt.close(fig)
