"""Files written whole or not at all: a kill mid-write leaves the old file (or none), never half of one.

Each writes a sibling ``<name>.part`` and renames it into place (a rename is atomic on one file system).
"""

from __future__ import annotations

import os
from pathlib import Path


def _part(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def _into_place(tmp: Path, path: Path, write) -> Path:
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    return _into_place(_part(path), path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_figure(fig, path: str | os.PathLike, **savefig_kw) -> Path:
    """``fig.savefig`` into place; the format is given, or ``path``'s suffix (png without one)."""
    path = Path(path)
    savefig_kw.setdefault("format", path.suffix.lstrip(".").lower() or "png")
    return _into_place(_part(path), path, lambda tmp: fig.savefig(tmp, **savefig_kw))
