"""Errors the CLI maps to exit codes (DESIGN.md convention 5).

BadInput -> exit 2 (bad usage or bad input; nothing half-written)
Failure  -> exit 1 (the work itself failed)
KeyboardInterrupt -> exit 130
"""

from __future__ import annotations


class VlmdynError(Exception):
    exit_code = 1


class BadInput(VlmdynError):
    """Bad usage or bad input: a clear message naming the record or flag."""

    exit_code = 2


class Failure(VlmdynError):
    exit_code = 1


class MissingDependency(BadInput):
    """An optional dependency is not installed; the message says what to install."""

    def __init__(self, module: str, install: str, purpose: str = ""):
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"the Python package '{module}' is not installed{what}. Install it with: {install}")


def did_you_mean(word: str, choices) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def require(module: str, install: str, purpose: str = ""):
    """Import an optional module lazily or raise MissingDependency with the install hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(module, install, purpose) from exc
