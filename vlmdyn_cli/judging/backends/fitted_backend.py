"""The `fitted` backend: a logistic regression over cheap signals (from `vlmdyn calibrate fit`).

The spec's [options] hold the feature names, the standardisation and the
weights. Text features are computed on the spot; ``local-p_yes`` runs the
local GGUF judge in score mode (one forward pass per item) first.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from vlmdyn_cli.calibration.features import MODEL_FEATURES, TEXT_FEATURES, check_features
from vlmdyn_cli.calibration.logreg import LogReg
from vlmdyn_cli.judging.backends.base import JudgeRequest, JudgeResponse
from vlmdyn_cli.judging.rules import verdict_text


class FittedBackend:
    id = "fitted"

    def __init__(self, spec, **options):
        opts = dict(spec.options) | options
        self.features = check_features(list(opts["features"]))
        self.model = LogReg.from_dict(opts)
        self.threshold = float(opts.get("threshold", 0.5))
        self.spec = spec
        self._score_backends: dict[str, object] = {}

    def _model_scores(self, feature: str, reqs: list[JudgeRequest]) -> dict[str, float]:
        from vlmdyn_cli.judging.backends import create_backend
        from vlmdyn_cli.judging.prompts import render_request
        from vlmdyn_cli.judging.spec import load_spec

        sub = load_spec(MODEL_FEATURES[feature])
        if feature not in self._score_backends:
            self._score_backends[feature] = create_backend(sub, {})
        backend = self._score_backends[feature]
        sub_reqs = []
        for r in reqs:
            q = render_request(sub, r.key, r.item["question"], r.item["answer"], r.item["prediction"])
            q.score_only = True
            sub_reqs.append(q)
        out: dict[str, float] = {}

        def keep(resp: JudgeResponse) -> None:
            if resp.p_yes is not None:
                out[resp.key] = float(resp.p_yes)

        backend.run(iter(sub_reqs), keep)
        return out

    def run(self, requests: Iterable[JudgeRequest], on_result: Callable[[JudgeResponse], None]) -> None:
        batch: list[JudgeRequest] = []
        for req in requests:
            batch.append(req)
            if len(batch) >= 64:
                self._run_batch(batch, on_result)
                batch = []
        if batch:
            self._run_batch(batch, on_result)

    def _run_batch(self, reqs: list[JudgeRequest], on_result) -> None:
        t0 = time.perf_counter()
        scores = {f: self._model_scores(f, reqs) for f in self.features if f in MODEL_FEATURES}
        per_item = (time.perf_counter() - t0) / max(len(reqs), 1)
        for r in reqs:
            t1 = time.perf_counter()
            x = []
            missing = None
            for f in self.features:
                if f in TEXT_FEATURES:
                    x.append(TEXT_FEATURES[f](r.item))
                elif r.key in scores[f]:
                    x.append(scores[f][r.key])
                else:
                    missing = f
            resp = JudgeResponse(key=r.key, resolved_model=self.spec.model, prompt_tokens=0,
                                 completion_tokens=0, cost_usd=0.0)
            if missing:
                resp.error = f"feature {missing} could not be computed for this item"
            else:
                p = self.model.prob(x)
                resp.p_yes = p
                resp.text = verdict_text("yes" if p >= self.threshold else "no")
            resp.latency_s = per_item + (time.perf_counter() - t1)
            on_result(resp)

    def close(self) -> None:
        for b in self._score_backends.values():
            b.close()
