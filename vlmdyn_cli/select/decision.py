"""The acceptance rule of Individual Select, on benchmark accuracies in points.

A candidate is kept when the benchmark average with it is at least the base's
minus ``tolerance`` points: "comparable" candidates are kept, not only better
ones. Accuracies are paired by seed (the candidate's run and the base's run of
one seed share the seed). With several seeds, ``seed_margin`` k asks for more:
the mean paired difference minus k standard errors of it must still be at least
``-tolerance``, so a drop that is within seed noise of the limit is not enough.
With one seed there is no noise estimate and the margin is not applied (the
decision says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vlmdyn_cli.errors import BadInput


@dataclass(frozen=True)
class Decision:
    keep: bool
    diff: float                 # mean over seeds of (candidate - base), points
    se: float | None            # standard error of that mean (None with one seed)
    bound: float                # diff - seed_margin x se (= diff when no margin applies)
    reason: str

    def as_dict(self) -> dict:
        return {"keep": self.keep, "diff": round(self.diff, 3), "se": None if self.se is None else round(self.se, 3),
                "bound": round(self.bound, 3), "reason": self.reason}


def mean_sd(xs: list[float]) -> tuple[float, float | None]:
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def decide(base: list[float], cand: list[float], tolerance: float, seed_margin: float = 0.0) -> Decision:
    """Keep or reject a candidate from per-seed accuracies (points), paired by position."""
    if not base or len(base) != len(cand):
        raise BadInput(f"decide: need one base and one candidate accuracy per seed, got {len(base)} and {len(cand)}")
    diffs = [c - b for b, c in zip(base, cand)]
    d, sd = mean_sd(diffs)
    se = None if sd is None else sd / math.sqrt(len(diffs))
    use_margin = seed_margin > 0 and se is not None
    bound = d - seed_margin * se if use_margin else d
    keep = bound >= -tolerance - 1e-9
    test = (f"{d:+.1f} - {seed_margin:g} x {se:.1f} (se over {len(diffs)} seeds) = {bound:+.1f}" if use_margin
            else f"{d:+.1f}")
    why = f"{test} {'>=' if keep else '<'} -{tolerance:g} (tolerance)"
    if seed_margin > 0 and se is None:
        why += "; one seed: no seed margin applied"
    return Decision(keep, d, se, bound, ("kept: " if keep else "rejected: ") + why)
