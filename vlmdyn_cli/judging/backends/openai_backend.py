"""The `openai` judge backend: chat completions over the OpenAI API or any compatible server.

Live calls run concurrently (openai_live.py); with ``batch = true`` (``--batch``) the items
go through the Batch API at half price (openai_batch.py). Both speak the protocol of
openai_wire.py, and everything either brings back from a server passes through
``openai_wire.scrubbed`` here, once, so the API key can never reach a row, a log line
or ``--json``.

Score mode reads the token log-probabilities at the verdict position and gives
``p_yes = P(yes) / (P(yes) + P(no))`` summed over case and space variants; the same
log-probabilities are asked for in full mode too, so a verdict-first dict yields the
verdict and ``p_yes`` in one call.
"""

from __future__ import annotations

from typing import Iterable

from vlmdyn_cli.errors import BadInput, require
from vlmdyn_cli.judging import prices
from vlmdyn_cli.judging.backends import openai_batch, openai_live
from vlmdyn_cli.judging.backends import openai_wire as wire
from vlmdyn_cli.judging.backends.base import ModelBackend, OnCompletion, Prompt


class OpenAIBackend(ModelBackend):
    Options = wire.OpenAIOptions

    def __init__(self, spec, options: wire.OpenAIOptions, context=None):
        super().__init__(spec, options, context)
        require("openai", wire.INSTALL_HINT, "the openai judge backend")
        if not spec.model:
            raise BadInput("the openai judge spec has no `model` (e.g. model = \"gpt-4o-mini\")")
        if options.batch and self.context.jobs is None:
            raise BadInput("--batch needs the experiment database (the batch ids are stored there to resume)")
        self.key = wire.read_api_key(options)

    @classmethod
    def ready(cls, spec, options: wire.OpenAIOptions) -> None:
        if not spec.model:
            raise BadInput("the openai judge spec has no `model` (e.g. model = \"gpt-4o-mini\")")
        wire.read_api_key(options)

    @classmethod
    def estimated_cost(cls, spec, options: wire.OpenAIOptions, prompt_tokens: int, completion_tokens: int):
        return prices.cost_usd(wire.price(spec, options), prompt_tokens, completion_tokens, batch=options.batch)

    @classmethod
    def estimate(cls, spec, options: wire.OpenAIOptions, items, context):
        est = super().estimate(spec, options, items, context)
        if est.cost_usd is None:
            where = f"served by {options.base_url}" if options.base_url else "(not in the price table)"
            est.no_price = (f"no price for model {spec.model!r} {where}: add price_in and price_out "
                            "(USD per 1M tokens) to the spec's [options]")
        return est

    def check(self) -> None:
        """One free request (the server's model list, no retries): refused, unreachable, TLS trouble
        or a rejected key is BadInput naming the endpoint; a server without that route is fine."""
        openai = require("openai", wire.INSTALL_HINT, "the openai judge backend")
        endpoint = wire.endpoint(self.options)
        try:
            client = openai.OpenAI(api_key=self.key, base_url=self.options.base_url, max_retries=0,
                                   timeout=openai.Timeout(min(10.0, self.options.timeout)))
            client.models.list()
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise BadInput(f"judge '{self.spec.name}': {endpoint} refused the API key from "
                           f"${self.options.api_key_env} (HTTP {exc.status_code})") from None
        except openai.APIConnectionError as exc:
            raise BadInput(f"judge '{self.spec.name}' cannot reach {endpoint}: "
                           f"{wire.scrub(wire.connection_detail(exc), self.key)}") from None
        except openai.APIStatusError:
            pass                          # it answers: the chat route may still work
        except Exception as exc:  # noqa: BLE001 - e.g. a malformed base_url
            raise BadInput(f"judge '{self.spec.name}': cannot use {endpoint}: {wire.scrub(str(exc), self.key)}") from None

    def complete(self, prompts: Iterable[Prompt], on_completion: OnCompletion) -> None:
        def emit(c) -> None:
            on_completion(wire.scrubbed(c, self.key))

        if not self.options.batch:
            counts = openai_live.run(prompts, emit, self.spec, self.options, self.key)
            self.context.tally("retries", counts["retries"])
            self.context.tally("429s", counts["429"])
            return
        note = openai_batch.run(list(prompts), emit, self.spec, self.options, self.key, self.context.jobs,
                                self.context.reporter)
        if note:
            self.context.note(note)
