"""The cascade judge: the rules stage decides what it is confident about, the
last stage (an LLM judge) gets the rest. ``decided_by`` on every response says
which stage decided; the LLM stage only ever sees the items rules deferred, and
it pulls them lazily, so a cascade over mostly short answers makes few LLM calls.

The LLM stage shares its cache with the stand-alone judge of the same spec: a
deferred item already judged (scored) by that spec, e.g. by `--judge local`, is
reused without a call, and the runner stores the stage's new results under the
stage's own spec hash too (so `--judge local` later reuses them).
"""

from __future__ import annotations

from typing import Callable, Iterable

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.judging.backends.base import JudgeRequest, JudgeResponse


def cascade_rules(spec):
    """The cascade's rules stage, with the cascade's own confidence bar when it sets one."""
    from vlmdyn_cli.judging.rules import RulesBackend

    rules = RulesBackend(spec.stages[0])
    bar = spec.raw.get("decoding", {}).get("min_confidence")
    if bar is not None:               # the cascade's own bar for trusting a rule over its LLM stage
        rules.min_confidence = float(bar)
    return rules


class CascadeBackend:
    id = "cascade"

    def __init__(self, spec, **options):
        from vlmdyn_cli.judging.backends import create_backend
        first, last = spec.stages[0], spec.stages[-1]
        if first.backend != "rules" or len(spec.stages) != 2:
            raise BadInput(f"cascade {spec.name}: stages must be [rules spec, LLM spec]")
        self.spec = spec
        self.rules = cascade_rules(spec)
        self.rules_name, self.llm_name = first.name, last.name
        self.llm_format = last.output
        # the spec's own options were merged in by the registry; the LLM stage gets its own
        self._llm_options = {k: v for k, v in options.items() if k not in spec.options}
        self._llm = None
        self._llm_factory = lambda: create_backend(last, self._llm_options)
        self.db = None if options.get("rejudge") else options.get("db")   # --rejudge: no reuse either
        self.llm_hash = last.hash
        self.reused = 0

    def stored_llm_result(self, key: str) -> JudgeResponse | None:
        """The LLM stage's own stored scored judgement of this triple, as a response (or None)."""
        if self.db is None:
            return None
        row = self.db.conn.execute(
            "SELECT id, raw, p_yes, prompt_tokens, completion_tokens, cost_usd, latency_s, resolved_model "
            "FROM judgements WHERE spec_hash = ? AND triple_hash = ? AND status = 'scored'",
            (self.llm_hash, key)).fetchone()
        if row is None:
            return None
        jid, raw, p_yes, pt, ct, cost, lat, model = row
        score_only = raw is not None and raw.startswith("p_yes=") and p_yes is not None
        return JudgeResponse(key=key, text=None if score_only else raw, p_yes=p_yes, prompt_tokens=pt,
                             completion_tokens=ct, cost_usd=cost, latency_s=lat, resolved_model=model,
                             extra={"decided_by": self.llm_name, "format": self.llm_format, "reused": True,
                                    "reason": f"reused judgement #{jid} of {self.llm_name}"})

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
                    continue
                stored = self.stored_llm_result(req.key)
                if stored is not None:
                    self.reused += 1
                    on_result(stored)
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
