"""The cascade judge: its rules stage decides what it is confident about, its LLM stage the rest.

    stages = ["rules", "<llm spec>"]      [decoding] min_confidence = the bar for trusting a rule

Per item: the rules decide when a rule leans with confidence >= the bar (the
cascade's own ``min_confidence``, else the rules spec's). Otherwise the item goes to
the LLM stage, unless that judge has already scored it on its own (``--judge local``
earlier): its stored verdict is reused, no call. The LLM stage's new verdicts are
stored under its own spec too, so the stand-alone judge reuses them later: running
rules, the LLM judge and the cascade over the same items costs the LLM calls once.
``decided_by`` says which stage decided. The LLM backend is built only when the rules
defer at least one item, and pulls the deferred items lazily.

Reading and storing the LLM stage's verdicts goes through the runner's Context
(``stored`` / ``remember``): this module never sees the database.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Iterator

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.judging.backends import backend_class, create_backend
from vlmdyn_cli.judging.backends.base import (Context, Estimate, Item, JudgeBackend, NoOptions, OnVerdict,
                                              Options)
from vlmdyn_cli.judging.verdict import Verdict


@dataclass(frozen=True)
class CascadeOptions(Options):
    llm: Options = NoOptions()         # the LLM stage's options (command-line values go there)

    @property
    def pays_later(self) -> bool:
        return self.llm.pays_later


class CascadeBackend(JudgeBackend):
    """[rules spec, LLM spec]; command-line options (threads, concurrency, batch...) go to the LLM stage."""

    Options = CascadeOptions

    def __init__(self, spec, options: CascadeOptions, context: Context | None = None):
        super().__init__(spec, options, context)
        self.rules_spec, self.llm_spec = _stages(spec)
        self.rules = create_backend(self.rules_spec)
        self.bar = _bar(spec, self.rules_spec)
        self._llm = None

    @classmethod
    def options_for(cls, spec, runtime: dict | None = None) -> CascadeOptions:
        NoOptions.build(spec)               # a cascade has no options of its own
        llm = _stages(spec)[1]
        return CascadeOptions(backend_class(llm.backend).options_for(llm, runtime))

    # ---- one item: the rules, else a stored verdict of the LLM stage, else the LLM stage

    def _route(self, items: Iterable[Item], on_verdict: OnVerdict) -> Iterator[Item]:
        """Hand out what the rules decide and what the LLM stage has stored; yield the rest."""
        for item in items:
            v = self.rules.verdict(item, self.bar)
            if v.scored:
                on_verdict(replace(v, decided_by=self.rules_spec.name))
                continue
            stored = self.context.stored(self.llm_spec, item.key)
            if stored is None:
                yield item
                continue
            jid, sv = stored
            on_verdict(replace(sv, decided_by=self.llm_spec.name,
                               reason=f"reused judgement #{jid} of {self.llm_spec.name}"))

    def run(self, items: Iterable[Item], on_verdict: OnVerdict) -> None:
        deferred = self._route(items, on_verdict)
        first = next(deferred, None)       # look ahead: an all-rules run never loads the model
        if first is None:
            return

        def from_llm(v: Verdict) -> None:
            v = replace(v, decided_by=self.llm_spec.name)
            self.context.remember(self.llm_spec, v)
            on_verdict(v)

        self._llm = backend_class(self.llm_spec.backend)(self.llm_spec, self.options.llm, self.context)
        self._llm.run(_chain(first, deferred), from_llm)

    @classmethod
    def estimate(cls, spec, options: CascadeOptions, items: list[Item], context: Context) -> Estimate:
        """Only what reaches the LLM stage costs anything: the items the rules and its store leave."""
        cascade = cls(spec, options, context)
        left = list(cascade._route(items, lambda v: None))
        llm = cascade.llm_spec
        est = backend_class(llm.backend).estimate(llm, options.llm, left, context)
        est.notes.append(f"{len(items) - len(left)} of {len(items)} new items decided by rules or already "
                         f"judged by {llm.name}, {len(left)} go to {llm.name}")
        return est

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()


def _chain(first: Item, rest: Iterator[Item]) -> Iterator[Item]:
    yield first
    yield from rest


def _stages(spec):
    if len(spec.stages) != 2 or spec.stages[0].backend != "rules":
        raise BadInput(f"cascade {spec.name}: stages must be [rules spec, LLM spec]")
    return spec.stages


def _bar(spec, rules_spec) -> float:
    """The cascade's own bar for trusting a rule over its LLM stage, else the rules spec's."""
    own = spec.raw.get("decoding", {}).get("min_confidence")
    return float(own if own is not None else rules_spec.decoding.get("min_confidence", 0.8))
