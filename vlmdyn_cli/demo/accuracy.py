"""The demo's printed accuracy table: mean accuracy per evaluation set and checkpoint over seeds.

The paper's findings themselves are checked by ``vlmdyn_cli.findings`` (the same checks
``vlmdyn findings`` runs on any experiment database).
"""

from __future__ import annotations

from vlmdyn_cli.plots import aggregate as A


def accuracy_table(db, runs: list[str], spec_hash: str) -> list[dict]:
    """Mean accuracy per (set, checkpoint) over seeds: the demo's printed table."""
    sel = A.selection(db, runs=runs, judge=spec_hash)
    pts = A.seed_stats(db, sel, ["s.name", "s.kind", "COALESCE(s.k_step, 1e9)"], "1")
    rows: dict[str, dict] = {}
    order: dict[str, tuple] = {}
    for p in pts:
        name, kind, k = p.key
        rows.setdefault(name, {"set": name})[str(p.step)] = p.mean
        order[name] = (kind != "seen", k, name)
    return [rows[n] for n in sorted(rows, key=lambda n: order[n])]
