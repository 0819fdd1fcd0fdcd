"""Output files written whole or not at all, and only where an output may go.

A kill mid-write leaves the old file (or none), never half of one: each write goes to a sibling
``<name>.<pid>-<random>.part`` that is renamed into place (a rename is atomic on one file system).
The part's name is the writer's own, so two processes writing one output do not write into each
other's file: the last rename wins and the file is whole either way. Parts left by a killed
writer (its process gone) are removed by the next write of the same output.

``check_output`` / ``check_folder`` refuse, before any work, an output that cannot be written
(a directory, a file where a folder is needed, an empty name, a folder that is not writable) or
must not be replaced: an SQLite database (the experiment itself, `--out vlmdyn.db`) or its WAL,
SHM or journal. Every write checks the same again, so a library caller is covered too. A symlink
stays a link (its target is replaced); a device or a pipe (``--out /dev/stdout``, a FIFO) is
written in place: renaming a file over it would replace the device node itself.
"""

from __future__ import annotations

import errno
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from vlmdyn_cli.errors import BadInput

SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def _is_database(path: Path) -> bool:
    """``path`` is an SQLite database file, or the WAL/SHM/journal beside one."""
    if not path.is_file():         # never opened to look: a FIFO or a terminal would block the read
        return False
    try:
        with path.open("rb") as f:
            if f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC:
                return True
    except OSError:
        pass
    for side in _SQLITE_SIDE_FILES:
        if path.name.endswith(side) and len(path.name) > len(side):
            return _is_database(path.with_name(path.name[:-len(side)]))
    return False


def writable_ancestor(folder: Path, label: str) -> None:
    """The nearest existing folder of ``folder`` is a folder and writable (missing ones are made later)."""
    p = folder
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise BadInput(f"{label}: {p} is a file, not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise BadInput(f"{label}: the folder {p} is not writable")


def check_output(path: str | os.PathLike, flag: str = "output") -> Path:
    """``path`` as an output file, or BadInput naming ``flag`` ("--out") and what is wrong."""
    if str(path).strip() in ("", "."):      # typer turns an empty argument into Path(".")
        raise BadInput(f"{flag}: the path is empty")
    path = Path(path)
    label = f"{flag} {path}"
    if path.is_dir():
        raise BadInput(f"{label} is a folder; give a file name")
    if _is_database(path):
        raise BadInput(f"{label} is an SQLite database (an experiment database?); it is never overwritten: "
                       f"choose another file name")
    writable_ancestor(path.parent, label)
    return path


def check_folder(path: str | os.PathLike, flag: str = "output folder") -> Path:
    """``path`` as a folder outputs go into (made when missing), or BadInput naming ``flag``."""
    path = Path(path)
    label = f"{flag} {path}"
    if path.exists() and not path.is_dir():
        raise BadInput(f"{label} is a file, not a folder")
    writable_ancestor(path, label)
    return path


def _part(path: Path) -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(3)}.part")


def _remove_dead_parts(path: Path) -> None:
    """Parts of ``path`` whose writer is gone (killed): nothing will ever rename them."""
    for p in path.parent.glob(f"{_glob_escape(path.name)}.*-*.part"):
        pid = p.name[len(path.name) + 1:].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            p.unlink(missing_ok=True)


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True          # exists, owned by someone else
    return True


@contextmanager
def replaced(path: str | os.PathLike, flag: str = "output") -> Iterator[Path]:
    """A temporary sibling of ``path`` to write (close it inside the block); on success it replaces
    ``path`` whole, on any failure (or an interrupt) it is removed and ``path`` is left as it was.

        with replaced(out, "--out") as tmp, tmp.open("w") as f:   # (f closes before the rename)
            ...
    """
    path = check_output(path, flag)
    if path.exists() and not path.is_file():
        yield path                   # a device or a pipe (/dev/stdout, a FIFO): written in place, never renamed over
        return
    if path.is_symlink():            # the link stays a link: its target is replaced
        path = Path(os.path.realpath(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_parts(path)
    except OSError as exc:
        raise _as_bad_output(exc, path, flag) from None
    tmp = _part(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _as_bad_output(exc, path, flag) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _as_bad_output(exc: OSError, path: Path, flag: str) -> Exception:
    """An OSError about where the output goes is bad input naming it; a full disk stays a failure."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
        return exc
    return BadInput(f"{flag} {path}: cannot write it ({exc.strerror or exc})")


def write_text(path: str | os.PathLike, text: str, flag: str = "output") -> Path:
    with replaced(path, flag) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def save_figure(fig, path: str | os.PathLike, flag: str = "output", **savefig_kw) -> Path:
    """``fig.savefig`` into place; the format is given, or ``path``'s suffix (png without one)."""
    path = Path(path)
    savefig_kw.setdefault("format", path.suffix.lstrip(".").lower() or "png")
    with replaced(path, flag) as tmp:
        fig.savefig(tmp, **savefig_kw)
    return path
