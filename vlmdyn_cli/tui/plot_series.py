"""Series for the plots tab: frontiers and per-category curves, mean over runs (percent)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict

from vlmdyn_cli.tui import queries as Q


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def series(conn: sqlite3.Connection, judge: str, mode: str) -> tuple[dict, str]:
    """(label -> (steps, accuracy %), title) for mode 'frontiers' or 'categories'."""
    # acc[(set, category)][step] -> per-run accuracies
    acc: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    kinds: dict[str, tuple[str, int | None]] = {}
    for run in [r["name"] for r in Q.runs(conn)]:
        per_set: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
        for c in Q.accuracy_grid(conn, run, judge):
            kinds[c["set_name"]] = (c["kind"], c["k_step"])
            if c["scored"]:
                acc[(c["set_name"], c["category"])][c["step"]].append(c["yes"] / c["scored"])
            tot = per_set[(c["set_name"], c["step"])]
            tot[0] += c["yes"] or 0
            tot[1] += c["scored"] or 0
        for (set_name, step), (yes, scored) in per_set.items():
            if scored:
                acc[(set_name, "all")][step].append(yes / scored)

    def curve(set_name: str, cat: str = "all") -> tuple[list[int], list[float | None]]:
        points = acc.get((set_name, cat), {})
        steps = sorted(points)
        return steps, [None if (m := _mean(points[s])) is None else 100 * m for s in steps]

    out: dict[str, tuple[list, list]] = {}
    if mode == "categories":
        unseen = "unseen" if "unseen" in kinds else next((s for s, (k, _) in kinds.items() if k == "unseen"), None)
        if unseen is None:
            return {}, "no unseen set"
        for cat in sorted({c for (s, c) in acc if s == unseen and c != "all"}):
            out[cat] = curve(unseen, cat)
        return out, f"accuracy per category on {unseen} ({judge})"
    seen = sorted(((k, s) for s, (kind, k) in kinds.items() if kind == "seen" and k is not None))
    train_x, train_y = [], []
    for k, s in seen:
        steps, ys = curve(s)
        if k in steps:
            train_x.append(k)
            train_y.append(ys[steps.index(k)])
    out["training frontier"] = (train_x, train_y)
    if "unseen" in kinds:
        out["validation (unseen)"] = curve("unseen")
    for k, s in seen:
        out[s] = curve(s)
    return out, f"frontiers: seen@k at k vs unseen ({judge})"
