"""The `fitted` backend: a logistic regression over cheap signals (written by `vlmdyn calibrate fit`).

The spec's [options] hold the feature names, the standardisation and the weights.
Text features are computed on the spot; model features a batch at a time
(``local-p_yes``: the local GGUF judge in score mode; ``minilm-*``: sentence embeddings).

The cheap stage of a calibrated cascade with a budget (``calibrate fit --escalate-to SPEC``)
also holds ``llm_ok_weights`` / ``llm_ok_bias``: a second logistic regression over the same
standardised features, fitted to whether SPEC's verdict agreed with the label. Each verdict
then carries a ``defer_priority`` (``defer_priority`` below) by which the cascade chooses
which items its budget sends to SPEC.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Iterable

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.judging.backends import check_installed, create_backend
from vlmdyn_cli.judging.backends.base import Item, JudgeBackend, OnVerdict, Options
from vlmdyn_cli.judging.features import MODEL_FEATURES, TEXT_FEATURES, check_features, model_feature_values
from vlmdyn_cli.judging.spec import load_spec
from vlmdyn_cli.judging.verdict import Completion, decided, unscored

BATCH = 64   # items per round of model features
# the weight of the escalation judge's estimated error in the defer priority: measured on the NQ
# half-splits (examples/calibration/nq/README.md), 0.3 and 0.5 alike, 1.0 worse (its model is weak)
LLM_ERROR_WEIGHT = 0.5


def defer_priority(p_yes: float, p_llm_ok: float | None = None) -> float:
    """What handing an item on to the escalation judge is worth: the fitted judge's own chance of
    being wrong, min(P(yes), P(no)), less a share of the escalation judge's estimated chance of
    being wrong on it (when the fitted judge has that model). A cascade's budget goes to the
    highest first; without the second model this is "P(yes) nearest 0.5 first"."""
    own = min(p_yes, 1.0 - p_yes)
    return own if p_llm_ok is None else own - LLM_ERROR_WEIGHT * (1.0 - p_llm_ok)


@dataclass
class LogReg:
    weights: list[float]          # one per feature
    bias: float
    mean: list[float]             # feature standardisation
    scale: list[float]

    def prob(self, x: list[float]) -> float:
        z = self.bias + sum(w * (v - m) / s for w, v, m, s in zip(self.weights, x, self.mean, self.scale))
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))

    def to_dict(self) -> dict:
        return {"weights": self.weights, "bias": self.bias, "mean": self.mean, "scale": self.scale}


@dataclass(frozen=True)
class FittedOptions(Options):
    features: list = field(default_factory=list)
    threshold: float = 0.5
    weights: list = field(default_factory=list)
    bias: float = 0.0
    mean: list = field(default_factory=list)
    scale: list = field(default_factory=list)
    llm_ok_weights: list = field(default_factory=list)   # P(the escalation judge agrees with the label)
    llm_ok_bias: float = 0.0
    n_threads: int | None = None      # CPU threads for a model feature (--threads)

    def __post_init__(self):
        if not self.features:
            raise BadInput("a fitted judge spec needs [options] features, weights, bias, mean and scale "
                           "(`vlmdyn calibrate fit` writes them)")
        check_features(self.features)
        n = len(self.features)
        if not len(self.weights) == len(self.mean) == len(self.scale) == n:
            raise BadInput(f"a fitted judge needs one weight, mean and scale per feature ({n} features); "
                           "refit it with `vlmdyn calibrate fit`")
        if self.llm_ok_weights and len(self.llm_ok_weights) != n:
            raise BadInput(f"a fitted judge's llm_ok_weights need one weight per feature ({n} features); "
                           "refit it with `vlmdyn calibrate fit`")
        numbers = [*self.weights, *self.mean, *self.scale, *self.llm_ok_weights]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
            raise BadInput("a fitted judge's weights, mean and scale must be finite numbers; refit it with "
                           "`vlmdyn calibrate fit`")
        if not 0 <= self.threshold <= 1 or any(v == 0 for v in self.scale):
            raise BadInput(f"a fitted judge's threshold must be from 0 to 1 (got {self.threshold}) and no scale 0")

    @property
    def model(self) -> LogReg:
        return LogReg([float(v) for v in self.weights], float(self.bias), [float(v) for v in self.mean],
                      [float(v) for v in self.scale])

    @property
    def llm_ok_model(self) -> LogReg | None:
        if not self.llm_ok_weights:
            return None
        return LogReg([float(v) for v in self.llm_ok_weights], float(self.llm_ok_bias),
                      [float(v) for v in self.mean], [float(v) for v in self.scale])


class FittedBackend(JudgeBackend):
    Options = FittedOptions

    @classmethod
    def check_installed(cls, spec) -> None:
        """The models behind its model features: the embedding package, a judge in score mode."""
        for f in spec.options.get("features") or []:
            source = MODEL_FEATURES.get(f, "")
            if source == "minilm":
                from vlmdyn_cli.judging.embed import model_dir

                model_dir()
            elif source.startswith("judge:"):
                check_installed(load_spec(source.split(":", 1)[1]))

    def __init__(self, spec, options: FittedOptions, context=None):
        super().__init__(spec, options, context)
        self.model, self.llm_ok_model = options.model, options.llm_ok_model
        if options.n_threads and any(f.startswith("minilm") for f in options.features):
            import torch

            torch.set_num_threads(options.n_threads)
        self._score_backends: dict[str, object] = {}

    def _judge_scores(self, judge: str, items: list[Item]) -> dict[str, float]:
        """P(yes) of a judge in score mode, by item key (missing when it gave none)."""
        sub = load_spec(judge)
        if judge not in self._score_backends:
            self._score_backends[judge] = create_backend(sub)
        out: dict[str, float] = {}

        def keep(c: Completion) -> None:
            if c.p_yes is not None:
                out[c.key] = float(c.p_yes)

        self._score_backends[judge].complete((replace(sub.render(it), score_only=True) for it in items), keep)
        return out

    def run(self, items: Iterable[Item], on_verdict: OnVerdict) -> None:
        batch: list[Item] = []
        for it in items:
            batch.append(it)
            if len(batch) >= BATCH:
                self._judge(batch, on_verdict)
                batch = []
        if batch:
            self._judge(batch, on_verdict)

    def _judge(self, items: list[Item], on_verdict: OnVerdict) -> None:
        t0 = time.perf_counter()
        scores = model_feature_values(self.options.features, items, self._judge_scores)
        per_item = (time.perf_counter() - t0) / max(len(items), 1)
        for it in items:
            t1 = time.perf_counter()
            x, missing = [], None
            for f in self.options.features:
                if f in TEXT_FEATURES:
                    x.append(TEXT_FEATURES[f](it))
                elif it.key in scores[f]:
                    x.append(scores[f][it.key])
                else:
                    missing = f
            usage = dict(resolved_model=self.spec.model, prompt_tokens=0, completion_tokens=0, cost_usd=0.0)
            if missing:
                v = unscored(it.key, f"feature {missing} could not be computed for this item", **usage)
            else:
                p = self.model.prob(x)
                q = self.llm_ok_model.prob(x) if self.llm_ok_model else None
                v = decided(it.key, "yes" if p >= self.options.threshold else "no", p_yes=p,
                            defer_priority=defer_priority(p, q), **usage)
            v.latency_s = per_item + (time.perf_counter() - t1)
            on_verdict(v)

    def close(self) -> None:
        for b in self._score_backends.values():
            b.close()
