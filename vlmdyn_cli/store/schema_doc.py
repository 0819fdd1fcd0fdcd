"""The database schema as Markdown, generated from the migrations so the docs cannot drift.

``render_markdown()`` migrates a blank in-memory database and describes every
table: columns with their types and constraints, the ``--`` comments written
next to them in ``migrations.py`` (SQLite keeps the CREATE text verbatim),
table constraints, indexes and full-text search tables.

The README's schema section is this text (``vlmdyn_cli/readme.py`` writes it
between its markers; a test compares them). Regenerate after adding a
migration with::

    python -m vlmdyn_cli.readme README.md
"""

from __future__ import annotations

import re

_TABLE_CONSTRAINT = re.compile(r"^(UNIQUE|PRIMARY\s+KEY|FOREIGN\s+KEY|CHECK|CONSTRAINT)\b", re.IGNORECASE)


def blank_db():
    from sqlite_utils import Database

    from vlmdyn_cli.store.db import migrate

    db = Database(memory=True)
    migrate(db)
    return db


def _split_top(code: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in code:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_create(sql: str) -> tuple[str, list[tuple[str, str]], list[str], dict[str, str]]:
    """(table comment, [(column, definition)], [table constraints], {column: comment}) of a CREATE TABLE."""
    head, _, body = sql.partition("(")
    body = body[: body.rfind(")")]
    table_comment = ""
    first_line, _, rest = body.partition("\n")
    if "--" in first_line:
        table_comment = first_line.split("--", 1)[1].strip()
    else:
        rest = body
    columns, constraints, comments = [], [], {}
    pending = ""
    for line in rest.split("\n"):
        code, _, comment = line.partition("--")
        pending += " " + code
        if pending.count("(") != pending.count(")"):
            continue  # a definition spanning lines
        names = []
        for piece in _split_top(pending):
            piece = " ".join(piece.split())
            if not piece:
                continue
            if _TABLE_CONSTRAINT.match(piece):
                constraints.append(piece)
            else:
                name = piece.split()[0].strip('"`[]')
                columns.append((name, piece))
                names.append(name)
        pending = ""
        if comment.strip() and names:
            comments[names[-1]] = comment.strip()
    return table_comment, columns, constraints, comments


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def render_markdown(db=None) -> str:
    """The schema of a migrated database (default: a blank one) as Markdown."""
    from vlmdyn_cli.store.migrations import migrations

    db = db or blank_db()
    applied = [m.name for m in migrations.applied(db)]
    rows = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                      "ORDER BY rowid").fetchall()
    fts = [r for r in rows if r[0] == "table" and r[3].upper().startswith("CREATE VIRTUAL TABLE")]
    fts_names = {r[1] for r in fts}
    shadow = {r[1] for r in rows if any(r[1].startswith(f + "_") for f in fts_names)}
    indexes: dict[str, list[str]] = {}
    for typ, name, tbl, sql in rows:
        if typ == "index":
            cols = sql[sql.index("(", sql.upper().index(" ON ")) + 1: sql.rindex(")")]
            indexes.setdefault(tbl, []).append(f"`{name}` ({', '.join(c.strip() for c in cols.split(','))})")

    out = ["Generated from the migrations by `vlmdyn db schema --markdown` (do not edit by hand).",
           f"Migrations: {', '.join(f'`{a}`' for a in applied)}.", ""]
    for typ, name, _tbl, sql in rows:
        if typ != "table" or name in fts_names or name in shadow or name.startswith(("_", "sqlite_")):
            continue
        table_comment, columns, constraints, comments = parse_create(sql)
        info = {r[1]: r for r in db.execute(f'PRAGMA table_info("{name}")').fetchall()}
        out.append(f"### `{name}`")
        out.append("")
        if table_comment:
            out.append(table_comment[0].upper() + table_comment[1:] + ".")
            out.append("")
        out.append("| column | type | constraints | meaning |")
        out.append("|---|---|---|---|")
        for col, definition in columns:
            ctype = info[col][2] if col in info else ""
            rest = definition.split(None, 1)[1] if " " in definition else ""
            if ctype and rest.upper().startswith(ctype.upper()):
                rest = rest[len(ctype):].strip()
            out.append(f"| `{col}` | {ctype} | {_cell(rest)} | {_cell(comments.get(col, ''))} |")
        out.append("")
        extra = []
        if constraints:
            extra.append("Table constraints: " + "; ".join(f"`{c}`" for c in constraints) + ".")
        if "WITHOUT ROWID" in sql.upper():
            extra.append("Stored `WITHOUT ROWID`.")
        if name in indexes:
            extra.append("Indexes: " + ", ".join(indexes[name]) + ".")
        for f in fts:
            m = re.search(r"content=\"?(\w+)\"?", f[3])
            if m and m.group(1) == name:
                cols = re.findall(r'"(\w+)"', f[3].split("(", 1)[1].split("content=")[0])
                extra.append(f"Full-text search: `{f[1]}` (FTS5 over {', '.join(cols)}, kept in sync by triggers).")
        if extra:
            out.extend(extra)
            out.append("")
    return "\n".join(out).rstrip() + "\n"
