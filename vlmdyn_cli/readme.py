"""Generated README sections: the CLI reference, the database schema and the findings' rules.

All are produced from the code (the Typer app, the migrations, ``findings.checks.RULES``) and written
between HTML-comment markers, so the README cannot drift; tests fail when a
section is stale. Regenerate with::

    python -m vlmdyn_cli.readme README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from vlmdyn_cli.atomic import write_text
from vlmdyn_cli.store.schema_doc import render_markdown

CLI_START, CLI_END = "<!-- cli:start -->", "<!-- cli:end -->"
SCHEMA_START, SCHEMA_END = "<!-- schema:start -->", "<!-- schema:end -->"
FINDINGS_START, FINDINGS_END = "<!-- findings:start -->", "<!-- findings:end -->"


def replace_block(text: str, start: str, end: str, body: str, heading: str) -> str:
    """``text`` with ``body`` between the markers (appended under ``heading`` when absent)."""
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        return text.split(start, 1)[0] + block + text.split(end, 1)[1]
    return text.rstrip("\n") + ("\n\n" if text.strip() else "") + f"{heading}\n\n{block}\n"


def section(text: str, start: str, end: str) -> str | None:
    """The text between the markers (None when they are absent)."""
    if start not in text or end not in text:
        return None
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n") + "\n"


def cli_reference() -> str:
    """Every command's help text, as the CLI prints it (generated from the Typer app)."""
    import os

    import typer

    from vlmdyn_cli.cli.app import app

    os.environ["COLUMNS"] = "100"  # help wraps at the terminal width: fix it for a stable text
    root = typer.main.get_command(app)
    out = ["Generated from the CLI by `python -m vlmdyn_cli.readme README.md` (do not edit by hand).", ""]

    def walk(cmd, path: list[str]):
        ctx = cmd.make_context(" ".join(path), [], resilient_parsing=True)
        out.extend([f"### `{' '.join(path)}`", "", "```text", cmd.get_help(ctx).rstrip(), "```", ""])
        for name in sorted(getattr(cmd, "commands", {}) or {}):
            walk(cmd.commands[name], path + [name])

    walk(root, ["vlmdyn"])
    return "\n".join(out).rstrip() + "\n"


def update(path: str | Path) -> bool:
    """Rewrite the generated sections of the README at ``path``; True when it changed."""
    from vlmdyn_cli.findings.checks import rules_markdown

    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    new = replace_block(text, CLI_START, CLI_END, cli_reference(), "## CLI reference")
    new = replace_block(new, SCHEMA_START, SCHEMA_END, render_markdown(), "## Database schema")
    new = replace_block(new, FINDINGS_START, FINDINGS_END, rules_markdown(), "## The findings' rules")
    if new != text:
        write_text(path, new)
        return True
    return False


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1].startswith("-") or not Path(sys.argv[1]).is_file():
        print("usage: python -m vlmdyn_cli.readme README.md  (an existing README to update in place)", file=sys.stderr)
        sys.exit(2)
    print(f"{sys.argv[1]}: {'updated' if update(sys.argv[1]) else 'already up to date'}")
