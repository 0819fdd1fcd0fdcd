"""The TUI's SQL besides the browser's pages, as plain functions over a sqlite3 connection.

Filter choices, the overview's judge specs and accuracy grid, an item's detail
and history, the rater's items. The judgements browser's filters, pages and
counts are in ``tui/browse.py``. The queries the TUI shares with the CLI live
in ``store/``: run listing (``store.runs``), judge status
(``store.judgement_queries``), samples and label saving (``store.labels``).
Connections must use ``row_factory = sqlite3.Row`` (``tui.store.Store`` does).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

# ---------------------------------------------------------------- filter choices

def choices(conn: sqlite3.Connection) -> dict[str, list]:
    """The values each filter can take (small tables only: fast on any database size)."""
    def col(sql):
        return [r[0] for r in conn.execute(sql).fetchall() if r[0] is not None]

    steps = col("SELECT DISTINCT step FROM checkpoints ORDER BY step")
    if not steps:
        steps = col("SELECT DISTINCT step FROM generations ORDER BY step")
    return {
        "run": col("SELECT name FROM runs ORDER BY seed, name"),
        "seed": col("SELECT DISTINCT seed FROM runs ORDER BY seed"),
        "step": steps,
        "set_name": col("SELECT name FROM eval_sets GROUP BY name ORDER BY min(kind), min(k_step), name"),
        "category": col("SELECT DISTINCT category FROM qa_pairs WHERE category IS NOT NULL ORDER BY category"),
        "subcategory": col("SELECT DISTINCT subcategory FROM qa_pairs WHERE subcategory IS NOT NULL "
                           "ORDER BY subcategory"),
        "judge": col("SELECT DISTINCT name FROM judge_specs ORDER BY name"),
        "verdict": ["yes", "no"],
        "status": ["scored", "unscored"],
        "source": sources(conn),
    }


def sources(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(label, Filters.source) of every judged input file, and of the judgements whose file was not
    recorded (judged before vlmdyn recorded input files) when there are any."""
    from vlmdyn_cli.store import input_files
    from vlmdyn_cli.tui.browse_inputs import UNRECORDED, file_source

    files = input_files.list_files(conn)
    labels = input_files.labels(files)
    out = [(f"file: {labels[f['id']]}", file_source(f["id"])) for f in files]
    triples, _ = input_files.unrecorded(conn)
    if triples:
        out.append((f"input, file not recorded ({triples:,})", UNRECORDED))
    return out


# ---------------------------------------------------------------- overview

def judge_specs(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(label, spec hash) of every judge spec that judged something, for the grid and plots selects.

    Labels are judge names; when one name has several specs (a changed prompt makes a new
    judge) the hash prefix is added.
    """
    from vlmdyn_cli.plots import aggregate as A

    run_ids = [r[0] for r in conn.execute("SELECT id FROM runs").fetchall()]
    found = A.judges_for(conn, run_ids) if run_ids else []
    names = [j.name for j, _ in found]
    return sorted(((j.name if names.count(j.name) == 1 else j.label), j.hash) for j, _ in found)


def accuracy_grid(conn: sqlite3.Connection, run: str, spec_hash: str) -> list[dict]:
    """Accuracy cells of one run under one judge spec, per (checkpoint step, eval set, category).

    The numbers come from the plots aggregation (``vlmdyn_cli.plots.aggregate``), the same as
    ``vlmdyn plot``: its plot_cells cache is brought up to date first, so ``conn`` must be
    writable and outside a transaction. ``acc`` = yes / scored; unscored items are counted
    apart, ``missing`` = generations this judge has not judged yet.
    """
    from vlmdyn_cli.plots import aggregate as A

    name = conn.execute("SELECT name FROM judge_specs WHERE hash = ?", (spec_hash,)).fetchone()
    sel = A.Selection(A.select_runs(conn, runs=[run]), A.JudgeRef(spec_hash, name[0] if name else spec_hash))
    A.ensure_cells(conn, sel)
    rows = conn.execute(
        "SELECT c.step, s.name AS set_name, s.kind, s.k_step, coalesce(c.category, '?') AS category, "
        "sum(c.yes) AS yes, sum(c.scored) AS scored, sum(c.unscored) AS unscored, sum(c.unjudged) AS missing "
        "FROM plot_cells c JOIN eval_sets s ON s.id = c.set_id WHERE c.spec_hash = ? AND c.run_id = ? "
        "GROUP BY c.step, s.id, c.category ORDER BY c.step, s.kind, s.k_step, s.name, c.category",
        (spec_hash, sel.runs[0].id)).fetchall()
    out = []
    for r in rows:
        d = dict(zip(("step", "set_name", "kind", "k_step", "category", "yes", "scored", "unscored", "missing"), r))
        d["n"] = d["scored"] + d["unscored"] + d["missing"]
        d["acc"] = (d["yes"] / d["scored"]) if d["scored"] else None
        out.append(d)
    return out


# ---------------------------------------------------------------- detail

def item(conn: sqlite3.Connection, gid: int) -> dict | None:
    r = conn.execute(
        "SELECT g.id AS gid, g.run_id, g.step, g.qa_id, g.prediction, g.triple_hash, g.backend, "
        "r.name AS run, r.seed, q.question, q.answer, q.category, q.subcategory, q.true_category, "
        "c.image_path, c.source, d.image_root, "
        "(SELECT group_concat(s.name, ' ') FROM eval_set_members m JOIN eval_sets s ON s.id = m.set_id "
        " WHERE m.qa_id = g.qa_id AND s.run_id = g.run_id) AS sets "
        "FROM generations g JOIN runs r ON r.id = g.run_id JOIN qa_pairs q ON q.id = g.qa_id "
        "JOIN conversations c ON c.id = q.conversation_id JOIN datasets d ON d.id = q.dataset_id "
        "WHERE g.id = ?", (gid,)).fetchone()
    return dict(r) if r else None


def verdicts(conn: sqlite3.Connection, triple_hash: str) -> list[dict]:
    """Every judge's judgement of one triple."""
    return [dict(r) for r in conn.execute(
        "SELECT judge_name AS judge, resolved_model, status, verdict, reason, decided_by, raw, ms, md, h, "
        "p_yes, latency_s, cost_usd FROM judgements WHERE triple_hash = ? ORDER BY judge_name",
        (triple_hash,)).fetchall()]


def history(conn: sqlite3.Connection, run_id: int, qa_id: int) -> list[dict]:
    """The same QA pair at every checkpoint of the run, with each judge's verdict."""
    out: dict[int, dict] = {}
    for r in conn.execute(
            "SELECT g.step, g.prediction, j.judge_name, j.status, j.verdict FROM generations g "
            "LEFT JOIN judgements j ON j.triple_hash = g.triple_hash "
            "WHERE g.run_id = ? AND g.qa_id = ? ORDER BY g.step, j.judge_name", (run_id, qa_id)).fetchall():
        d = out.setdefault(r["step"], {"step": r["step"], "prediction": r["prediction"], "verdicts": {}})
        if r["judge_name"] is not None:
            d["verdicts"][r["judge_name"]] = r["verdict"] if r["status"] == "scored" else "unscored"
    return list(out.values())


def image_file(image_root: str | None, image_path: str | None, db_path: Path | None = None) -> Path | None:
    """The image of an item when the file exists (root taken as given, else relative to the DB)."""
    if not image_path:
        return None
    candidates = []
    if image_root:
        candidates.append(Path(image_root) / image_path)
        if db_path is not None and not Path(image_root).is_absolute():
            candidates.append(Path(db_path).parent / image_root / image_path)
    candidates.append(Path(image_path))
    for c in candidates:
        if c.is_file():
            return c
    return None


# ---------------------------------------------------------------- rater

def rater_items(conn: sqlite3.Connection, sample: str, rater: str) -> list[dict]:
    """The sample's items in draw order, with this rater's label (None when not labelled yet).

    The judges' verdicts are deliberately not part of this query.
    """
    return [dict(r) for r in conn.execute(
        "SELECT ci.item_id, ci.triple_hash, ci.category, ci.subcategory, t.question, t.answer, t.prediction, "
        "hl.label FROM calibration_items ci JOIN triples t ON t.hash = ci.triple_hash "
        "LEFT JOIN human_labels hl ON hl.triple_hash = ci.triple_hash AND hl.rater = ? "
        "WHERE ci.sample = ? ORDER BY ci.rowid", (rater, sample)).fetchall()]


def triple_image(conn: sqlite3.Connection, triple_hash: str) -> tuple[str | None, str | None]:
    """(image_root, image_path) of some generation of this triple, for showing its picture."""
    r = conn.execute(
        "SELECT d.image_root, c.image_path FROM generations g JOIN qa_pairs q ON q.id = g.qa_id "
        "JOIN conversations c ON c.id = q.conversation_id JOIN datasets d ON d.id = q.dataset_id "
        "WHERE g.triple_hash = ? LIMIT 1", (triple_hash,)).fetchone()
    return (r[0], r[1]) if r else (None, None)
