"""The cascade judge: cheap stages decide what they are confident about, the last stage the rest.

    stages = ["rules", "lexical"]                       the built-in offline default
    stages = ["my-cheap.toml", "gpt-4o-mini"]           a calibrated cascade (`vlmdyn calibrate fit
                                                        --escalate-to gpt-4o-mini` writes it)
    [decoding] min_confidence = 0.8                     the bar a rule must reach to decide
               defer_band = [0.2, 0.8]                  a fitted stage passes on p_yes inside it
               max_escalation = 0.25                    at most this share of a run's items reach
                                                        the last stage (a fitted stage before it)

Every stage but the last is a cheap one (``rules`` or ``fitted``): run on every item that
reaches it, it decides an item when it is confident -- a rule whose confidence reaches the
bar (the cascade's own ``min_confidence``, else the rules spec's), a fitted judge whose
P(yes) lies outside ``defer_band`` (lo, hi) -- and passes the item on otherwise. The last
stage decides what is left. When the last stage is a model (an LLM judge), a verdict it
has already stored on its own (``--judge gpt-4o-mini`` earlier) is reused without a call,
and its new verdicts are stored under its own spec too, so running the LLM judge alone and
the cascade over the same items costs the calls once. ``decided_by`` names the stage that
decided each item. The last stage is built only when an item reaches it, and pulls the
items lazily.

``max_escalation`` is a budget every run keeps, whatever the items: a band fitted on one set
sends more or less of another set (on new questions of the NQ study: 8-37% for a band that
sent 25% of its own). Counting from the run's first item, at most floor(share x items seen)
go to the last stage; when more are unsure, the ones with the highest ``defer_priority``
from the fitted stage go (its own chance of being wrong, less a share of the last stage's
estimated chance of being wrong when `calibrate fit` gave it that model: fitted_backend.py;
ranked in blocks of BUDGET_CHUNK items, the allowance carried over) and the fitted stage
decides the others (its reason says so).

Reading and storing the last stage's verdicts goes through the runner's Context
(``stored`` / ``remember``): this module never sees the database.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.judging.backends import backend_class, create_backend
from vlmdyn_cli.judging.backends.base import (Context, Estimate, Item, JudgeBackend, NoOptions, OnVerdict,
                                              Options)
from vlmdyn_cli.judging.backends.fitted_backend import defer_priority
from vlmdyn_cli.judging.verdict import Verdict

CHEAP_BACKENDS = ("rules", "fitted")   # what may decide before the last stage (no calls, no cost)
CHUNK = 64                             # items a cheap stage sees at once (the fitted judge batches its features)
BUDGET_CHUNK = 512                     # with max_escalation: items ranked against each other at once


@dataclass(frozen=True)
class CascadeOptions(Options):
    llm: Options = NoOptions()         # the last stage's options (command-line values go there)

    @property
    def pays_later(self) -> bool:
        return self.llm.pays_later


class _Gate:
    """A cheap stage: decides the items it is confident about, hands back the rest."""

    def __init__(self, spec, cascade_spec):
        self.spec = spec
        self.backend = create_backend(spec)
        if spec.backend == "rules":
            bar = confidence_bar(cascade_spec, spec)
            self.judge: Callable[[list[Item]], dict[str, Verdict]] = \
                lambda items: {it.key: self.backend.verdict(it, bar) for it in items}
            self.confident: Callable[[Verdict], bool] = lambda v: v.scored
        else:
            lo, hi = defer_band(cascade_spec)
            self.judge = self._run
            self.confident = lambda v: v.scored and v.p_yes is not None and not lo < v.p_yes < hi
        self.unsure: dict[str, Verdict] = {}    # the verdicts of the items last passed on

    def _run(self, items: list[Item]) -> dict[str, Verdict]:
        got: dict[str, Verdict] = {}
        self.backend.run(items, lambda v: got.__setitem__(v.key, v))
        return got

    def pass_on(self, items: list[Item], on_verdict: OnVerdict) -> list[Item]:
        got = self.judge(items)
        left = []
        self.unsure = {}
        for it in items:
            v = got.get(it.key)
            if v is not None and self.confident(v):
                on_verdict(replace(v, decided_by=self.spec.name))
            else:
                left.append(it)
                if v is not None:
                    self.unsure[it.key] = v
        return left

    def close(self) -> None:
        self.backend.close()


class CascadeBackend(JudgeBackend):
    """[cheap stage, ..., last stage]; command-line options (threads, concurrency...) go to the last stage."""

    Options = CascadeOptions

    def __init__(self, spec, options: CascadeOptions, context: Context | None = None):
        super().__init__(spec, options, context)
        *cheap, self.last_spec = stages(spec)
        self.gates = [_Gate(s, spec) for s in cheap]
        self.last_is_model = self.last_spec.backend not in CHEAP_BACKENDS
        self.budget = max_escalation(spec)
        self._seen = self._escalated = 0
        self._last = None

    @classmethod
    def check_installed(cls, spec) -> None:
        for s in stages(spec):            # the last stage too, though it is built only when needed
            backend_class(s.backend).check_installed(s)

    @classmethod
    def options_for(cls, spec, runtime: dict | None = None) -> CascadeOptions:
        NoOptions.build(replace(spec, options={}))   # its own [options] went to the last stage (spec.py)
        last = stages(spec)[-1]
        max_escalation(spec)
        return CascadeOptions(backend_class(last.backend).options_for(last, runtime))

    # ---- one item: the cheap stages in order, else a stored verdict of the last stage, else the last stage

    def _route(self, items: Iterable[Item], on_verdict: OnVerdict) -> Iterator[Item]:
        """Hand out what the cheap stages decide and what the last stage has stored; yield the rest."""
        for chunk in _chunks(items, CHUNK if self.budget is None else BUDGET_CHUNK):
            n = len(chunk)
            for gate in self.gates:
                chunk = gate.pass_on(chunk, on_verdict)
            if self.budget is not None:
                chunk = self._within_budget(chunk, n, on_verdict)
            for item in chunk:
                stored = self.context.stored(self.last_spec, item.key) if self.last_is_model else None
                if stored is None:
                    yield item
                    continue
                jid, sv = stored
                on_verdict(replace(sv, decided_by=self.last_spec.name,
                                   reason=f"reused judgement #{jid} of {self.last_spec.name}"))

    def _within_budget(self, unsure: list[Item], n: int, on_verdict: OnVerdict) -> list[Item]:
        """The unsure items of a chunk of n that the budget lets through; the fitted stage decides the rest."""
        self._seen += n
        allowed = max(0, int(self.budget * self._seen + 1e-9) - self._escalated)
        gate = self.gates[-1]
        # an item the fitted stage gave no P(yes) cannot be decided by it: it always goes on
        go = {i for i, it in enumerate(unsure) if it.key not in gate.unsure or gate.unsure[it.key].p_yes is None}
        rest = [i for i in range(len(unsure)) if i not in go]
        go |= {rest[j] for j in most_deferrable([_priority(gate.unsure[unsure[i].key]) for i in rest],
                                                allowed - len(go))}
        for i, it in enumerate(unsure):
            if i not in go:
                v = gate.unsure[it.key]
                on_verdict(replace(v, decided_by=gate.spec.name,
                                   reason=f"{v.reason} (max_escalation {self.budget:g} reached)".strip()))
        self._escalated += len(go)
        return [it for i, it in enumerate(unsure) if i in go]

    def run(self, items: Iterable[Item], on_verdict: OnVerdict) -> None:
        deferred = self._route(items, on_verdict)
        first = next(deferred, None)       # look ahead: a run the cheap stages decide never loads the model
        if first is None:
            return

        def from_last(v: Verdict) -> None:
            v = replace(v, decided_by=self.last_spec.name)
            if self.last_is_model:
                self.context.remember(self.last_spec, v)
            on_verdict(v)

        self._last = backend_class(self.last_spec.backend)(self.last_spec, self.options.llm, self.context)
        self._last.run(_chain(first, deferred), from_last)

    @classmethod
    def estimate(cls, spec, options: CascadeOptions, items: list[Item], context: Context) -> Estimate:
        """Only what reaches the last stage can cost anything: the items the cheap stages and its store leave."""
        cascade = cls(spec, options, context)
        try:
            left = list(cascade._route(items, lambda v: None))
        finally:
            cascade.close()
        last = cascade.last_spec
        est = backend_class(last.backend).estimate(last, options.llm, left, context)
        cheap = ", ".join(g.spec.name for g in cascade.gates)
        est.notes.append(f"{len(items) - len(left)} of {len(items)} new items decided by {cheap}"
                         + (f" or already judged by {last.name}" if cascade.last_is_model else "")
                         + f", {len(left)} go to {last.name}")
        return est

    def check(self) -> None:
        backend_class(self.last_spec.backend)(self.last_spec, self.options.llm, self.context).check()

    def close(self) -> None:
        for g in self.gates:
            g.close()
        if self._last is not None:
            self._last.close()


def _chunks(items: Iterable[Item], n: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for it in items:
        chunk.append(it)
        if len(chunk) >= n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _chain(first: Item, rest: Iterator[Item]) -> Iterator[Item]:
    yield first
    yield from rest


def stages(spec):
    """The cascade's stages, checked: cheap ones (rules, fitted) first, any judge last."""
    if len(spec.stages) < 2:
        raise BadInput(f"cascade {spec.name}: needs at least two stages (cheap ones first, e.g. "
                       "[\"rules\", \"lexical\"] or [\"rules\", \"gpt-4o-mini\"])")
    for s in spec.stages[:-1]:
        if s.backend not in CHEAP_BACKENDS:
            raise BadInput(f"cascade {spec.name}: stage '{s.name}' (backend {s.backend}) is not the last stage, "
                           f"so it must be a cheap one ({' or '.join(CHEAP_BACKENDS)}); put model judges last")
    return spec.stages


def most_deferrable(priorities, k: int) -> list[int]:
    """Indices (ascending) of the k items of highest defer priority (ties: the earlier item)."""
    order = sorted(range(len(priorities)), key=lambda i: (-priorities[i], i))
    return sorted(order[:max(0, k)])


def _priority(v: Verdict) -> float:
    return v.defer_priority if v.defer_priority is not None else defer_priority(v.p_yes)


def max_escalation(spec) -> float | None:
    """The share of a run's items the last stage may get at most (None: no budget; the value is
    checked with the spec's other [decoding] fields, spec.py)."""
    share = spec.decoding.get("max_escalation")
    if share is None:
        return None
    if spec.stages[-2].backend != "fitted":
        raise BadInput(f"cascade {spec.name}: max_escalation needs a fitted stage just before the last one "
                       f"(it ranks the items by that stage's P(yes)); '{spec.stages[-2].name}' is "
                       f"{spec.stages[-2].backend}")
    return float(share)


def confidence_bar(spec, rules_spec) -> float:
    """The cascade's own bar for trusting a rule over the next stage, else the rules spec's."""
    own = spec.decoding.get("min_confidence")
    return float(own if own is not None else rules_spec.decoding.get("min_confidence", 0.8))


def defer_band(spec) -> tuple[float, float]:
    """(lo, hi): a fitted stage passes on an item whose P(yes) is strictly inside (default: decides all)."""
    band = spec.decoding.get("defer_band", [0.5, 0.5])
    if (not isinstance(band, list) or len(band) != 2 or not all(isinstance(b, (int, float)) for b in band)
            or not 0 <= band[0] <= band[1] <= 1):
        raise BadInput(f"cascade {spec.name}: defer_band must be [lo, hi] with 0 <= lo <= hi <= 1 (got {band!r})")
    return float(band[0]), float(band[1])
