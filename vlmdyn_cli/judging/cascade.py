"""The cascade judge: the rules stage decides what it is confident about, the
last stage (an LLM judge) gets the rest. ``decided_by`` on every response says
which stage decided; the LLM stage only ever sees the items rules deferred, and
it pulls them lazily, so a cascade over mostly short answers makes few LLM calls.
"""

from __future__ import annotations

from typing import Callable, Iterable

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.judging.backends.base import JudgeRequest, JudgeResponse


class CascadeBackend:
    id = "cascade"

    def __init__(self, spec, **options):
        from vlmdyn_cli.judging.backends import create_backend
        from vlmdyn_cli.judging.rules import RulesBackend

        first, last = spec.stages[0], spec.stages[-1]
        if first.backend != "rules" or len(spec.stages) != 2:
            raise BadInput(f"cascade {spec.name}: stages must be [rules spec, LLM spec]")
        self.spec = spec
        self.rules = RulesBackend(first)
        self.rules_name, self.llm_name = first.name, last.name
        self.llm_format = last.output
        # the spec's own options were merged in by the registry; the LLM stage gets its own
        self._llm_options = {k: v for k, v in options.items() if k not in spec.options}
        self._llm = None
        self._llm_factory = lambda: create_backend(last, self._llm_options)

    @property
    def llm(self):
        if self._llm is None:          # loaded only when rules defer something
            self._llm = self._llm_factory()
        return self._llm

    def run(self, requests: Iterable[JudgeRequest], on_result: Callable[[JudgeResponse], None]) -> None:
        def deferred():
            for req in requests:
                r = self.rules.respond(req)
                if r.text is not None:
                    r.extra["decided_by"] = self.rules_name
                    on_result(r)
                else:
                    yield req

        def from_llm(resp: JudgeResponse) -> None:
            resp.extra.setdefault("decided_by", self.llm_name)
            resp.extra.setdefault("format", self.llm_format)
            on_result(resp)

        gen = deferred()
        # look ahead one deferred item so an all-rules run never loads the model
        first = next(gen, None)
        if first is None:
            return

        def chain():
            yield first
            yield from gen

        self.llm.run(chain(), from_llm)

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
