"""Seeded sampling of an unseen set, optionally stratified by category."""

from __future__ import annotations

import random
from collections import defaultdict

UNCATEGORISED = "uncategorised"


def proportional_quotas(counts: dict[str, int], n: int) -> dict[str, int]:
    """Split n over groups in proportion to their sizes (largest remainder, ties by name).

    Every quota is at most its group's size when n <= sum(counts).
    """
    total = sum(counts.values())
    exact = {g: n * c / total for g, c in counts.items()}
    quotas = {g: int(v) for g, v in exact.items()}
    left = n - sum(quotas.values())
    by_remainder = sorted(counts, key=lambda g: (-(exact[g] - quotas[g]), g))
    for g in by_remainder[:left]:
        quotas[g] += 1
    return quotas


def sample(candidates: list[tuple[int, str | None]], n: int, seed: int,
           stratify: str | None = None) -> list[int]:
    """n qa ids drawn without replacement; the returned order is the set's rank order.

    ``candidates`` must be in a stable order (by id) so a seed always gives the
    same set. With ``stratify="category"`` each category gets its proportional
    share of n (pairs without a category form their own group).
    """
    rng = random.Random(seed)
    if stratify is None:
        return rng.sample([qa for qa, _ in candidates], n)
    groups: dict[str, list[int]] = defaultdict(list)
    for qa, cat in candidates:
        groups[cat or UNCATEGORISED].append(qa)
    quotas = proportional_quotas({g: len(v) for g, v in groups.items()}, n)
    chosen: list[int] = []
    for g in sorted(groups):
        chosen.extend(rng.sample(groups[g], quotas[g]))
    rng.shuffle(chosen)
    return chosen
