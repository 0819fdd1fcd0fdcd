"""What every benchmark shares: targets as ratios measured side by side, and the exit code.

A benchmark measures our code and its baseline in the same run (interleaved, the best of
several repetitions: ``best_of``), states each target next to its measurement (``Ratio``,
and ``Must`` for a condition that has to hold, such as "no item lost"), and ends with
``sys.exit(finish("bench_x", checks))``: that prints one line per check, writes them as
JSON to ``$VLMDYN_BENCH_RESULT`` when set (``benchmarks/run.py`` collects them from there),
and returns 1 when a check is missed. Targets are ratios, never absolute times, so a busy
machine slows both sides alike.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable


@dataclass
class Ratio:
    """``ours`` against ``baseline`` (same unit, same run); met when the ratio reaches ``target``.

    For times and sizes lower is better (ratio = baseline / ours); for rates
    (``higher_is_better``) the ratio is ours / baseline. ``robust_ratio`` replaces that quotient
    when the benchmark measured a sturdier one (the median of per-repeat ratios);
    ``ours``/``baseline`` then show the best runs.
    """

    stage: str
    ours: float
    baseline: float
    unit: str
    target: float
    higher_is_better: bool = False
    note: str = ""
    robust_ratio: float | None = None   # e.g. the median of per-repeat ratios, when the benchmark has one

    @property
    def ratio(self) -> float:
        if self.robust_ratio is not None:
            return self.robust_ratio
        num, den = (self.ours, self.baseline) if self.higher_is_better else (self.baseline, self.ours)
        return num / den if den > 0 else float("inf")

    @property
    def passed(self) -> bool:
        return self.ratio >= self.target

    def row(self) -> dict:
        return {"stage": self.stage, "ours": f"{self.ours:.4g} {self.unit}",
                "baseline": f"{self.baseline:.4g} {self.unit}", "ratio": f"{self.ratio:.2f}x",
                "target": f">= {self.target:g}x", "passed": self.passed, "note": self.note,
                "values": asdict(self)}


@dataclass
class Must:
    """A condition that has to hold (no item lost, identical answers); ``ours`` says what was seen."""

    stage: str
    ok: bool
    ours: str
    target: str
    note: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.ok)

    def row(self) -> dict:
        return {"stage": self.stage, "ours": self.ours, "baseline": "-", "ratio": "-", "target": self.target,
                "passed": self.passed, "note": self.note, "values": asdict(self)}


def best_of(fns: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Run the functions interleaved (a b a b ...) ``reps`` times; the best wall seconds of each."""
    best = {name: float("inf") for name in fns}
    for _ in range(max(1, reps)):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def finish(benchmark: str, checks: list, extra: dict | None = None) -> int:
    """Print each check, hand them to benchmarks/run.py, and return the exit code (1 if one missed)."""
    rows = [c.row() for c in checks]
    for r in rows:
        print(f"target {r['stage']}: ours {r['ours']}, baseline {r['baseline']}, ratio {r['ratio']} "
              f"(target {r['target']}) {'met' if r['passed'] else 'MISSED'}" + (f"; {r['note']}" if r["note"] else ""),
              flush=True)
    out = os.environ.get("VLMDYN_BENCH_RESULT")
    if out:
        Path(out).write_text(json.dumps({"benchmark": benchmark, "checks": rows, "load_average": load_average(),
                                         "extra": extra or {}}, indent=2))
    return 0 if all(r["passed"] for r in rows) else 1
