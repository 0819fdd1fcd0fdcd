"""Names a user gives to stored things and types again later: datasets (`data import --name`)
and runs (`train --run`).

A name is stored as given, so it must be something a user can type back: not empty, no
control or bidi-override characters (a newline or an escape sequence in a name would break
every table and every later `--run NAME`). A run name is also a folder under the run's
out_dir (``<out_dir>/<run>/checkpoints``), so it may not hold a path separator or be ``.``
or ``..`` (``--run ../x`` would write checkpoints outside out_dir), and no ``:`` (``--init-from
RUN:STEP`` reads what follows a colon as a step).

A name that becomes a file name of its own (a fitted judge's spec, a calibration sample's sheet)
follows the stricter ``check_file_name``.
"""

from __future__ import annotations

import re
import unicodedata

from vlmdyn_cli.errors import BadInput

_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_NOT_IN_RUN = re.compile(r"[/\\:]")


def _invisible(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc" or ch in _BIDI


def check_name(name: str, flag: str) -> str:
    """``name`` if it is a usable name; BadInput naming ``flag`` (e.g. "--name") otherwise."""
    if not name.strip():
        raise BadInput(f"{flag}: the name is empty")
    bad = next((ch for ch in name if _invisible(ch)), None)
    if bad is not None:
        raise BadInput(f"{flag} {name!r}: names may not contain control or bidi characters "
                       f"(U+{ord(bad):04X})")
    if name != name.strip():
        raise BadInput(f"{flag} {name!r}: the name starts or ends with white space")
    return name


def check_run_name(name: str, flag: str = "--run") -> str:
    """``name`` if it can name a run (see the module docstring); BadInput naming ``flag`` otherwise."""
    check_name(name, flag)
    if _NOT_IN_RUN.search(name) or name in (".", ".."):
        raise BadInput(f"{flag} {name!r}: a run name is a folder under out_dir, so it may not contain "
                       f"'/', '\\' or ':' (RUN:STEP in --init-from) or be '.' or '..'")
    return name


def run_name_part(text: str) -> str:
    """``text`` (a dataset name) with what a run name may not hold replaced by '-'."""
    return "".join("-" if _invisible(ch) else ch for ch in _NOT_IN_RUN.sub("-", text)).strip() or "data"


_NAME = re.compile(r"[^\W_][\w .+@=-]*")
MAX_NAME = 100


def check_file_name(name: str, flag: str) -> str:
    """A name that becomes part of file names and ids (a fitted judge, a calibration sample): letters,
    digits and ``_ . + @ = -`` and inner spaces, starting with a letter or digit; no slash, no control
    character, nothing that leaves its folder."""
    if not name or len(name) > MAX_NAME or not _NAME.fullmatch(name) or name != name.rstrip(" ."):
        raise BadInput(f"{flag} {name!r}: a name is 1-{MAX_NAME} letters, digits, spaces and _ . + @ = -, "
                       f"starting with a letter or digit (it becomes a file name)")
    return name
