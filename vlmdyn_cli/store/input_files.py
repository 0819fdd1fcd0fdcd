"""Judged input files: which file and line each triple of `vlmdyn judge --input FILE` came from.

A file is identified by the path as given and the sha256 of its bytes (table
``input_files``); its lines by (file, line number) (``input_file_rows``). Both
are written with the file's triples, in the caller's transaction, and never
twice: judging a file again, or with another judge, adds nothing, and an edited
file is a new file. Triples judged from files before vlmdyn recorded them are in
``input_unrecorded`` (migration m260): their file is unknown, and judging the
file again records it.
"""

from __future__ import annotations

from pathlib import Path

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.store.db import file_sha256, now


def record(conn, path: str, sha256: str, rows: list[tuple[int, str | None, str]]) -> int:
    """Record a judged file and its (line, item id, triple hash) rows; returns the file's id.

    The caller owns the (write) transaction; what is already recorded is left as it is.
    """
    conn.execute("INSERT OR IGNORE INTO input_files(path, sha256, n_rows, created_at) VALUES (?, ?, ?, ?)",
                 (path, sha256, len(rows), now()))
    file_id = conn.execute("SELECT id FROM input_files WHERE path = ? AND sha256 = ?", (path, sha256)).fetchone()[0]
    conn.executemany("INSERT OR IGNORE INTO input_file_rows(file_id, line, item_id, triple_hash) VALUES (?, ?, ?, ?)",
                     [(file_id, line, item_id, h) for line, item_id, h in rows])
    return file_id


def list_files(conn) -> list[dict]:
    """Every recorded input file, oldest first: id, path, name (the file name), sha256, n_rows, created_at."""
    out = []
    for r in conn.execute("SELECT id, path, sha256, n_rows, created_at FROM input_files ORDER BY id").fetchall():
        d = dict(zip(("id", "path", "sha256", "n_rows", "created_at"), tuple(r)))
        d["name"] = Path(d["path"]).name or d["path"]
        out.append(d)
    return out


def labels(files: list[dict]) -> dict[int, str]:
    """A short label per file: its name, with the path when two files share a name, and the sha256
    prefix when the same path was judged with different contents."""
    def count(key):
        seen: dict = {}
        for f in files:
            seen[key(f)] = seen.get(key(f), 0) + 1
        return seen

    names, paths = count(lambda f: f["name"]), count(lambda f: f["path"])
    out = {}
    for f in files:
        label = f["name"] if names[f["name"]] == 1 else f["path"]
        if paths[f["path"]] > 1:
            label += f" @{f['sha256'][:8]}"
        out[f["id"]] = label
    return out


def unrecorded(conn) -> tuple[int, int]:
    """(triples, judgements) judged from input files before their file was recorded, and not
    recorded since (judging the file again records it)."""
    r = conn.execute(
        "SELECT count(DISTINCT u.id), count(j.id) FROM input_unrecorded u "
        "LEFT JOIN judgements j ON j.triple_hash = u.triple_hash "
        "WHERE NOT EXISTS (SELECT 1 FROM input_file_rows x WHERE x.triple_hash = u.triple_hash)").fetchone()
    return int(r[0]), int(r[1])


def match_files(conn, given: str | Path) -> list[int]:
    """Ids of the recorded files ``given`` names: recorded under that path, or (when it is a file
    here) with the same content. BadInput naming the recorded files when none matches."""
    if str(given).strip() in ("", "."):      # typer turns an empty argument into Path(".")
        raise BadInput("--input: the path is empty")
    ids = {r[0] for r in conn.execute("SELECT id FROM input_files WHERE path = ?", (str(given),))}
    p = Path(given)
    if p.is_file():
        sha = file_sha256(p)
        ids |= {r[0] for r in conn.execute("SELECT id FROM input_files WHERE sha256 = ?", (sha,))}
    if not ids:
        files = list_files(conn)
        known = ", ".join(f["path"] for f in files[:20]) if files else "none yet"
        raise BadInput(f"--input {given}: no judged input file recorded under this path or with this content "
                       f"(judge it with `vlmdyn judge --input {given} --judge J`); recorded files: {known}")
    return sorted(ids)
