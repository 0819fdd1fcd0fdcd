"""The cascade judge: cheap stages decide what they are confident about, the last stage the rest.

    stages = ["rules", "lexical"]                       the built-in offline default
    stages = ["my-cheap.toml", "gpt-4o-mini"]           a calibrated cascade (`vlmdyn calibrate fit
                                                        --escalate-to gpt-4o-mini` writes it)
    [decoding] min_confidence = 0.8                     the bar a rule must reach to decide
               defer_band = [0.2, 0.8]                  a fitted stage passes on p_yes inside it

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
from vlmdyn_cli.judging.verdict import Verdict

CHEAP_BACKENDS = ("rules", "fitted")   # what may decide before the last stage (no calls, no cost)
CHUNK = 64                             # items a cheap stage sees at once (the fitted judge batches its features)


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

    def _run(self, items: list[Item]) -> dict[str, Verdict]:
        got: dict[str, Verdict] = {}
        self.backend.run(items, lambda v: got.__setitem__(v.key, v))
        return got

    def pass_on(self, items: list[Item], on_verdict: OnVerdict) -> list[Item]:
        got = self.judge(items)
        left = []
        for it in items:
            v = got.get(it.key)
            if v is not None and self.confident(v):
                on_verdict(replace(v, decided_by=self.spec.name))
            else:
                left.append(it)
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
        self._last = None

    @classmethod
    def options_for(cls, spec, runtime: dict | None = None) -> CascadeOptions:
        NoOptions.build(replace(spec, options={}))   # its own [options] went to the last stage (spec.py)
        last = stages(spec)[-1]
        return CascadeOptions(backend_class(last.backend).options_for(last, runtime))

    # ---- one item: the cheap stages in order, else a stored verdict of the last stage, else the last stage

    def _route(self, items: Iterable[Item], on_verdict: OnVerdict) -> Iterator[Item]:
        """Hand out what the cheap stages decide and what the last stage has stored; yield the rest."""
        for chunk in _chunks(items, CHUNK):
            for gate in self.gates:
                chunk = gate.pass_on(chunk, on_verdict)
            for item in chunk:
                stored = self.context.stored(self.last_spec, item.key) if self.last_is_model else None
                if stored is None:
                    yield item
                    continue
                jid, sv = stored
                on_verdict(replace(sv, decided_by=self.last_spec.name,
                                   reason=f"reused judgement #{jid} of {self.last_spec.name}"))

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
