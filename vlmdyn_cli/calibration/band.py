"""Choosing a calibrated cascade's defer band: where the cheap judge decides and where the LLM does.

The cheap (fitted) judge gives each item P(yes). Items with lo < P(yes) < hi -- the ones it
is least sure of -- may go to the LLM; it decides the rest (yes when P(yes) >= 0.5).

* ``max_escalation = m``: every run sends the LLM the share m of its items of highest defer
  priority (the cheap judge's chance of being wrong, less a share of the LLM's estimated
  chance of being wrong: fitted_backend.defer_priority), a budget the cascade keeps whatever the
  items (``max_escalation`` in judging/backends/cascade.py; ``escalated`` here does the
  same to a set of items). The band is then the whole range: a band fitted on one set
  sends more or less of another (8-37% of new NQ questions for a band that sent 25% of its
  own), and measured by fitting on half of the questions and scoring the other half, the
  budget alone kept the cap on every split and lost less agreement than any fitted band
  (examples/calibration/nq/README.md).
* ``target_agreement = a``: the narrowest band whose agreement reaches a on labelled items
  whose P(yes) was computed out of fold, with the LLM's verdicts on the same items (the
  widest useful one, flagged, when none does). ``best_band`` tries every band: a run of
  consecutive items in P(yes) order, so every (lo, hi) pair in O(n^2) array steps. An LLM
  verdict that is missing (unscored) counts as a disagreement while choosing; the reports
  count it apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlmdyn_cli.judging.backends.cascade import most_deferrable
from vlmdyn_cli.judging.backends.fitted_backend import defer_priority


@dataclass
class Band:
    lo: float
    hi: float
    escalated: float          # share of the items it was chosen on inside the band
    agreement: float          # cascade agreement with the labels on those items
    reached: bool = True      # target_agreement only: False when no band reached it

    def inside(self, p) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        return (p > self.lo) & (p < self.hi)


def choose_band(p, llm_ok, truth, *, max_escalation: float | None = None,
                target_agreement: float | None = None) -> Band:
    """The defer band for held-out P(yes) ``p``, the LLM's correctness ``llm_ok`` (bool per item:
    its verdict agrees with the label) and the labels ``truth`` (1 yes / 0 no)."""
    if max_escalation is None:
        return best_band(p, llm_ok, truth, target_agreement=target_agreement)
    whole = Band(0.0, 1.0, 0.0, 0.0)
    esc = escalated(p, whole, max_escalation)
    cheap_ok = (np.asarray(p, dtype=float) >= 0.5).astype(int) == np.asarray(truth, dtype=int)
    ok = np.where(esc, np.asarray(llm_ok, dtype=bool), cheap_ok)
    return Band(0.0, 1.0, float(esc.mean()), float(ok.mean()))


def best_band(p, llm_ok, truth, *, max_escalation: float | None = None,
              target_agreement: float | None = None) -> Band:
    """Of every band, the one that agrees most with the labels while sending at most a share
    ``max_escalation`` of these items to the LLM (the cascade's band before it kept a budget per
    run), or the narrowest reaching ``target_agreement``."""
    p = np.asarray(p, dtype=float)
    n = len(p)
    order = np.argsort(p, kind="stable")
    ps = p[order]
    cheap_ok = ((p >= 0.5).astype(int) == np.asarray(truth, dtype=int))[order].astype(float)
    llm = np.asarray(llm_ok, dtype=float)[order]
    gain = np.concatenate([[0.0], np.cumsum(llm - cheap_ok)])   # gain of escalating items [i, j): gain[j]-gain[i]
    base = cheap_ok.sum()
    # cut points: a band may only start/end between two different P(yes) values
    cuts = [0] + [i for i in range(1, n) if ps[i] > ps[i - 1]] + [n]
    cuts_a = np.array(cuts)
    best = None
    for i in cuts:
        js = cuts_a[cuts_a >= i]
        size = js - i
        agree = (base + gain[js] - gain[i]) / n
        if max_escalation is not None:
            ok = size <= max_escalation * n + 1e-9
            if not ok.any():
                continue
            js, size, agree = js[ok], size[ok], agree[ok]
            k = np.lexsort((size, -agree))[0]             # most agreement, then fewest escalated
            cand = (agree[k], -size[k], i, js[k])
        else:
            hit = agree >= target_agreement - 1e-12
            if hit.any():
                k = np.lexsort((-agree[hit], size[hit]))[0]   # fewest escalated, then most agreement
                cand = (1.0, -size[hit][k], agree[hit][k], i, js[hit][k])
            else:
                k = np.lexsort((size, -agree))[0]
                cand = (0.0, agree[k], -size[k], i, js[k])
        if best is None or cand[:-2] > best[:-2]:
            best = cand
    i, j = best[-2], best[-1]
    lo = -1e-9 if i == 0 else float((ps[i - 1] + ps[i]) / 2)
    hi = 1 + 1e-9 if j == n else float((ps[j - 1] + ps[j]) / 2)
    if i == j:                                          # nothing escalated
        lo = hi = 0.5
    agree = float((base + gain[j] - gain[i]) / n)
    reached = target_agreement is None or agree >= target_agreement - 1e-12
    return Band(max(lo, 0.0), min(hi, 1.0), (j - i) / n, agree, reached)


def escalated(p, band: Band, max_escalation: float | None = None, p_llm_ok=None) -> np.ndarray:
    """Which of a run's items (P(yes) ``p``) go to the LLM: those inside the band, at most
    floor(max_escalation x n) of them, the highest defer priority first (as the cascade backend
    does; ``p_llm_ok``: the cheap judge's estimate that the LLM agrees with the label, if it has one)."""
    p = np.asarray(p, dtype=float)
    inside = band.inside(p)
    if max_escalation is None:
        return inside
    idx = np.flatnonzero(inside)
    q = [None] * len(p) if p_llm_ok is None else list(p_llm_ok)
    keep = idx[most_deferrable([defer_priority(float(p[i]), q[i]) for i in idx],
                               int(max_escalation * len(p) + 1e-9))]
    out = np.zeros(len(p), dtype=bool)
    out[keep] = True
    return out


def cascade_verdicts(p, llm_yes, band: Band) -> tuple[np.ndarray, np.ndarray]:
    """(the cascade's verdicts 1/0, escalated mask) for P(yes) ``p`` and the LLM's yes (1) / no (0)."""
    p = np.asarray(p, dtype=float)
    esc = band.inside(p)
    return np.where(esc, np.asarray(llm_yes), (p >= 0.5).astype(int)), esc
