"""Full-text search: user text -> a safe FTS5 query (one builder for the CLI and the TUI)."""

from __future__ import annotations

import re


def fts_query(text: str | None) -> str | None:
    """User text as an FTS5 query that cannot be a syntax error: every word a quoted term,
    all required (``book" OR (*`` -> ``"book" "OR"``). None when the text has no word."""
    words = re.findall(r"\w+", text or "", flags=re.UNICODE)
    if not words:
        return None
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)
