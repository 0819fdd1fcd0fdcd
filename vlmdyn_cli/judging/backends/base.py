"""The contract every judge backend implements (registry in backends/__init__.py).

A backend gets items and hands back one ``Verdict`` per item (judging/verdict.py),
in any order. It knows nothing of the database: what it needs from outside (another
judge's stored verdicts, somewhere to keep Batch API job ids, a note for the run's
summary) comes through the ``Context`` the runner gives it.

    Backend.check_installed(spec)                       # its optional packages, before any work
    options = Backend.options_for(spec, runtime)        # checked before any work
    Backend.estimate(spec, options, items, context)     # --dry-run: tokens and cost, nothing loaded
    backend = Backend(spec, options, context)
    backend.run(items, on_verdict); backend.close()

Model backends (llama-cpp, transformers, openai) subclass ``ModelBackend``: they only
implement ``complete`` (prompts in, ``Completion`` out) and the spec's prompt and the
strict parser turn each item into a verdict around it.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar, Iterable

from vlmdyn_cli.errors import BadInput, did_you_mean
from vlmdyn_cli.judging.verdict import Completion, Verdict, from_completion
from vlmdyn_cli.progress import NullReporter, Reporter

OnVerdict = Callable[[Verdict], None]
OnCompletion = Callable[[Completion], None]
CHARS_PER_TOKEN = 4       # the rough prompt-token estimate of --dry-run and --max-cost with --batch


@dataclass(frozen=True)
class Item:
    """One (question, reference answer, prediction) triple to judge; ``key`` is its hash."""

    key: str
    question: str
    answer: str
    prediction: str


@dataclass
class Prompt:
    """What a model is asked: chat messages (or plain text for base models) for one item."""

    key: str
    messages: list[dict]                  # [{"role": ..., "content": ...}]
    text: str | None = None               # plain-text prompt for base models without a chat template
    score_only: bool = False              # only P(yes) at the verdict position, no decoding
    verdict_prefix: str | None = None     # what the reply starts with before the yes/no token
    grammar: str | None = None            # GBNF replacing the output format's (e.g. one category letter)

    @property
    def estimated_tokens(self) -> int:
        chars = len(self.text or "") + sum(len(str(m.get("content", ""))) + 8 for m in self.messages)
        return max(1, chars // CHARS_PER_TOKEN)


@dataclass
class Estimate:
    """A --dry-run estimate for the items a backend would be sent."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0          # None: no price known for this model ...
    no_price: str | None = None           # ... and why, with what to do about it
    notes: list[str] = field(default_factory=list)


@dataclass
class Context:
    """What the runner lends a backend (the backend never sees the database itself)."""

    reporter: Reporter = field(default_factory=NullReporter)
    # another judge's stored scored verdict of an item: (judgement id, verdict) or None
    stored: Callable[[Any, str], tuple[int, Verdict] | None] = lambda spec, key: None
    # store a verdict under another judge as well (a cascade's LLM stage shares its cache)
    remember: Callable[[Any, Verdict], None] = lambda spec, verdict: None
    note: Callable[[str], None] = lambda text: None          # a line for the run's summary
    tally: Callable[[str, int], None] = lambda name, n: None  # a count for the summary (retries, 429s)
    jobs: Any = None                      # store.batch_jobs.BatchJobs of this judge (Batch API ids)


@dataclass(frozen=True)
class Options:
    """A backend's options: its spec's [options] overlaid with command-line values, checked once.

    Subclasses are frozen dataclasses listing every option with its type and default; an
    unknown or misspelt name, or a value of the wrong type, is BadInput naming it.
    """

    @classmethod
    def build(cls, spec, runtime: dict | None = None):
        runtime = {k: v for k, v in (runtime or {}).items() if v is not None}
        given = dict(spec.options) | runtime
        hints = typing.get_type_hints(cls)
        known = [f.name for f in fields(cls)]
        for name, value in given.items():
            where = ("given on the command line" if name in runtime or name in spec.overridden
                     else f"in the [options] of {spec.source}")
            if name not in known:
                valid = f"its options: {', '.join(known)}" if known else "it takes no options"
                raise BadInput(f"judge '{spec.name}' (backend {spec.backend}) has no option '{name}' ({where})"
                               f"{did_you_mean(name, known)}; {valid}")
            given[name] = _checked(name, value, hints[name], spec, where)
        return cls(**given)

    @property
    def pays_later(self) -> bool:
        """True when the cost of what is handed out is only known later (the Batch API)."""
        return False


def _checked(name: str, value, hint, spec, where: str):
    allowed = [t for t in typing.get_args(hint) or (hint,) if t is not type(None)]
    base = typing.get_origin(allowed[0]) or allowed[0]
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is float and isinstance(value, float) and not math.isfinite(value):
        raise BadInput(f"option '{name}' of judge '{spec.name}' ({where}) must be a finite number, got {value!r}")
    if isinstance(value, base) and not (base is int and isinstance(value, bool)):
        return value
    raise BadInput(f"option '{name}' of judge '{spec.name}' ({where}) must be {base.__name__}, got {value!r}")


@dataclass(frozen=True)
class NoOptions(Options):
    pass


class JudgeBackend:
    """Base of every backend: options, a free estimate, run, close."""

    Options: ClassVar[type[Options]] = NoOptions

    def __init__(self, spec, options: Options, context: Context | None = None):
        self.spec, self.options = spec, options
        self.context = context or Context()

    @classmethod
    def options_for(cls, spec, runtime: dict | None = None) -> Options:
        return cls.Options.build(spec, runtime)

    @classmethod
    def check_installed(cls, spec) -> None:
        """Raise MissingDependency (exit 2, with the install command) when a package this judge
        needs is not installed. Cheap and called before any work, so a judge that cannot run
        writes nothing (a cascade's last stage is otherwise built only when an item reaches it)."""

    @classmethod
    def estimate(cls, spec, options: Options, items: list[Item], context: Context) -> Estimate:
        return Estimate()                 # no model, no tokens, no cost

    @classmethod
    def ready(cls, spec, options: Options) -> None:
        """Raise BadInput when what this judge needs from the environment is missing (an API key,
        a model name): free, no network, called with the options before anything is written."""

    def check(self) -> None:
        """Raise BadInput when this judge cannot run at all (e.g. its server cannot be reached);
        called before work that depends on it (``calibrate fit --escalate-to``). Free: no judging."""

    def run(self, items: Iterable[Item], on_verdict: OnVerdict) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ModelBackend(JudgeBackend):
    """A backend over a language model: prompts rendered from the spec, answers parsed strictly."""

    def complete(self, prompts: Iterable[Prompt], on_completion: OnCompletion) -> None:
        """The model's completion of every prompt (``on_completion`` once each, in any order)."""
        raise NotImplementedError

    def run(self, items: Iterable[Item], on_verdict: OnVerdict) -> None:
        spec = self.spec
        self.complete((spec.render(it) for it in items), lambda c: on_verdict(from_completion(spec, c)))

    @classmethod
    def estimate(cls, spec, options: Options, items: list[Item], context: Context) -> Estimate:
        prompt_tokens = sum(spec.render(it).estimated_tokens for it in items)
        completion_tokens = len(items) * (1 if spec.score_mode == "only" else int(spec.decoding["max_tokens"]) // 2)
        return Estimate(prompt_tokens, completion_tokens,
                        cls.estimated_cost(spec, options, prompt_tokens, completion_tokens))

    @classmethod
    def estimated_cost(cls, spec, options: Options, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for that many tokens (None: no price known); a local model costs nothing."""
        return 0.0
