"""Judge specs as data (DESIGN.md convention 2).

A spec is a TOML file: backend, model, prompt template file(s), output format,
decoding parameters and backend options. Built-in specs live in the top-level
``judges/`` folder (installed as the ``vlmdyn_judges`` package); a user passes
a built-in name (``--judge rules``) or a path to their own file.

The spec hash covers the spec's fields, the texts of its templates and the
hashes of its cascade stages, so changing a prompt makes a new judge.

``spec.render(item)`` is the prompt for one item: the fixed text (rubric,
instructions, few-shot examples) first and the item last, so local backends
reuse the KV cache of the shared prefix. Placeholders are ``{question}``,
``{answer}`` and ``{prediction}``, substituted in one pass (a prediction
containing "{answer}" stays literal; other braces, such as the dict example in
the rubric, are untouched).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import resources
from pathlib import Path

from vlmdyn_cli.errors import BadInput, did_you_mean
from vlmdyn_cli.judging.backends.base import Prompt
from vlmdyn_cli.jsonl import decode, input_file, read_text
from vlmdyn_cli.judging.references import display
from vlmdyn_cli.judging.verdict import FORMATS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOP_FIELDS = {"name", "description", "backend", "model", "output", "system_template",
              "user_template", "text_template", "stages", "decoding", "options"}
DECODING_FIELDS = {"temperature", "max_tokens", "grammar", "fill", "score_mode", "threshold", "min_confidence",
                   "defer_band", "max_escalation"}
SCORE_MODES = ("off", "with-verdict", "only")
TEMPLATE_FIELDS = ("system_template", "user_template", "text_template")
DEFAULT_DECODING = {"temperature": 0.0, "max_tokens": 64, "grammar": True, "score_mode": "off",
                    "threshold": 0.5}
# option names that may only ever name an environment variable, never hold a secret
_SECRET_WORDS = ("key", "secret", "password", "token", "authorization", "bearer")
_SAFE_OPTION_NAMES = {"api_key_env", "max_tokens", "score_max_tokens", "n_tokens"}
_PLACEHOLDER = re.compile(r"\{(question|answer|prediction)\}")
# what a reply of each output format says before its yes/no token (the verdict position)
VERDICT_PREFIX = {"rubric-dict": "{'p': '", "verdict-dict": "{'p': '", "yesno": ""}


@dataclass(frozen=True)
class JudgeSpec:
    name: str
    backend: str
    model: str | None
    output: str
    decoding: dict
    options: dict
    templates: dict                      # field -> template text (system/user/text)
    stages: tuple["JudgeSpec", ...] = ()
    description: str = ""
    source: str = ""                     # builtin:<name> or the file path
    raw: dict = field(default_factory=dict, repr=False)
    overridden: frozenset = frozenset()  # option names set from the command line (--base-url)

    @cached_property
    def hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    def canonical_json(self) -> str:
        body = {"spec": self.raw, "templates": self.templates, "stages": [s.hash for s in self.stages]}
        return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def record(self) -> dict:
        """What is stored in judge_specs.spec_json: everything needed to rebuild it, no secrets."""
        return {"spec": self.raw, "templates": self.templates,
                "stages": [{"name": s.name, "hash": s.hash} for s in self.stages], "source": self.source}

    @property
    def score_mode(self) -> str:
        return self.decoding.get("score_mode", "off")

    def render(self, item) -> Prompt:
        """The prompt for one item (``item``: key, question, answer, prediction)."""
        values = {"question": item.question, "answer": display(item.answer), "prediction": item.prediction}
        t = self.templates
        messages = [{"role": role, "content": fill(t[f], values).strip()}
                    for role, f in (("system", "system_template"), ("user", "user_template")) if f in t]
        text = fill(t["text_template"], values).rstrip("\n") if "text_template" in t else None
        return Prompt(key=item.key, messages=messages, text=text, score_only=self.score_mode == "only",
                      verdict_prefix=VERDICT_PREFIX.get(self.output))

    def with_overrides(self, *, model: str | None = None, options: dict | None = None,
                       where: str = "--base-url") -> "JudgeSpec":
        """A derived spec (new hash) with the model and/or backend options replaced.

        For a cascade the overrides go to its last stage, which must be a model judge.
        """
        if not model and not options:
            return self
        if self.stages:
            last = self.stages[-1]
            if last.backend in ("rules", "fitted"):
                raise BadInput(f"judge '{self.name}' ends with the {last.backend} judge '{last.name}', which has no "
                               "model: --model/--base-url apply to a cascade whose last stage is a model judge")
            stages = self.stages[:-1] + (last.with_overrides(model=model, options=options, where=where),)
            return replace(self, stages=stages)
        if model and _CREDENTIAL.search(model):
            raise BadInput("--model holds what looks like a credential (an API key, or a password in a URL); "
                           "keys are read from the environment only (the value is not shown)")
        raw = dict(self.raw)
        new_options = dict(self.options)
        if options:
            _check_options(options, where)
            new_options.update({k: v for k, v in options.items() if v is not None})
            raw["options"] = new_options
        if model:
            raw["model"] = model
        return replace(self, model=model or self.model, options=new_options, raw=raw,
                       overridden=self.overridden | {k for k, v in (options or {}).items() if v is not None})


def fill(template: str, values: dict) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)


def builtin_dir():
    return resources.files("vlmdyn_judges")


def builtin_names() -> list[str]:
    return sorted(p.name[:-5] for p in builtin_dir().iterdir() if p.name.endswith(".toml"))


def load_spec(ref: str) -> JudgeSpec:
    """A spec by built-in name or by path to a TOML file."""
    p = Path(ref).expanduser()
    names = builtin_names()
    pathlike = ref.endswith(".toml") or "/" in ref or "\\" in ref
    if pathlike or (ref not in names and p.is_file()):
        return _load(read_text(input_file(p, "judge spec file")), p.parent, str(p))
    if ref not in names:
        raise BadInput(f"unknown judge spec '{ref}'{did_you_mean(ref, names)}; built-in specs: "
                       f"{', '.join(names)} (or pass a path to a .toml spec file)")
    f = builtin_dir() / f"{ref}.toml"
    return _load(f.read_text(encoding="utf-8"), builtin_dir(), f"builtin:{ref}")


def _load(text: str, base, source: str, _depth: int = 0) -> JudgeSpec:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"judge spec {source} is not valid TOML: {exc}") from exc
    unknown = sorted(set(raw) - TOP_FIELDS)
    if unknown:
        u = unknown[0]
        raise BadInput(f"judge spec {source}: unknown field '{u}'{did_you_mean(u, TOP_FIELDS)}; "
                       f"known fields: {', '.join(sorted(TOP_FIELDS))}")
    for req in ("name", "backend"):
        if not isinstance(raw.get(req), str) or not raw[req]:
            raise BadInput(f"judge spec {source}: missing required field '{req}'")
    for f in ("model", "description", "output", *TEMPLATE_FIELDS):
        if f in raw and not isinstance(raw[f], str):
            raise BadInput(f"judge spec {source}: {f} = {raw[f]!r} must be a string")
    decoding = raw.get("decoding", {})
    if not isinstance(decoding, dict):
        raise BadInput(f"judge spec {source}: [decoding] must be a table")
    bad = sorted(set(decoding) - DECODING_FIELDS)
    if bad:
        raise BadInput(f"judge spec {source}: unknown decoding field '{bad[0]}'"
                       f"{did_you_mean(bad[0], DECODING_FIELDS)}; known: {', '.join(sorted(DECODING_FIELDS))}")
    decoding = DEFAULT_DECODING | decoding
    _check_decoding(decoding, source)
    if decoding["score_mode"] not in SCORE_MODES:
        raise BadInput(f"judge spec {source}: score_mode must be one of {', '.join(SCORE_MODES)}")
    if decoding.get("fill", "slots") not in ("slots", "sample"):
        raise BadInput(f"judge spec {source}: fill must be slots or sample")
    options = raw.get("options", {})
    if not isinstance(options, dict):
        raise BadInput(f"judge spec {source}: [options] must be a table")
    _check_options(options, f"judge spec {source}")
    output = raw.get("output", "verdict-dict")
    if output not in FORMATS:
        raise BadInput(f"judge spec {source}: output '{output}'{did_you_mean(output, FORMATS)} is not one of "
                       f"{', '.join(FORMATS)}")
    templates = {}
    for f in TEMPLATE_FIELDS:
        if f in raw:
            tp = base / raw[f] if not Path(raw[f]).is_absolute() else Path(raw[f])
            if not tp.is_file():
                raise BadInput(f"judge spec {source}: template file {raw[f]} not found")
            templates[f] = decode(tp.read_bytes(), f"judge spec {source}: template file {raw[f]}")
    stages: tuple[JudgeSpec, ...] = ()
    if raw["backend"] == "cascade":
        refs = raw.get("stages")
        if (not isinstance(refs, list) or len(refs) < 2 or _depth > 3
                or not all(isinstance(r, str) and r for r in refs)):
            raise BadInput(f"judge spec {source}: a cascade needs stages = [\"rules\", \"<llm spec>\"]")
        stages = tuple(_stage(r, base, source, _depth) for r in refs)
        if raw.get("model") or options:   # a cascade's model / [options] go to its last stage (e.g. base_url)
            last = stages[-1].with_overrides(model=raw.get("model"), options=dict(options) or None,
                                             where=f"judge spec {source}")
            stages = stages[:-1] + (replace(last, overridden=frozenset()),)
            options = {}
    elif raw["backend"] not in ("rules", "fitted") and not templates:
        raise BadInput(f"judge spec {source}: needs system_template/user_template or text_template")
    return JudgeSpec(name=raw["name"], backend=raw["backend"], model=raw.get("model"), output=output,
                     decoding=decoding, options=dict(options), templates=templates, stages=stages,
                     description=raw.get("description", ""), source=source, raw=raw)


def _stage(ref: str, base, source: str, depth: int) -> JudgeSpec:
    cand = base / ref
    if ref.endswith(".toml") and cand.is_file():
        return _load(read_text(cand), cand.parent if isinstance(cand, Path) else base,
                     str(cand), depth + 1)
    return load_spec(ref)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# [decoding] field -> (check, what it must be)
_DECODING_CHECKS = {
    "temperature": (lambda v: _number(v) and 0 <= v <= 2, "a number from 0 to 2"),
    "max_tokens": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a whole number >= 1"),
    "grammar": (lambda v: isinstance(v, bool), "true or false"),
    "threshold": (lambda v: _number(v) and 0 <= v <= 1, "a number from 0 to 1"),
    "min_confidence": (lambda v: _number(v) and 0 <= v <= 1, "a number from 0 to 1"),
    "max_escalation": (lambda v: _number(v) and 0 <= v <= 1, "a number from 0 to 1 (a share of each run's items)"),
    "defer_band": (lambda v: isinstance(v, list) and len(v) == 2 and all(_number(x) and 0 <= x <= 1 for x in v)
                   and v[0] <= v[1], "two numbers [low, high] from 0 to 1, low <= high"),
}


def _check_decoding(decoding: dict, source: str) -> None:
    for k, (ok, what) in _DECODING_CHECKS.items():
        if k in decoding and not ok(decoding[k]):
            raise BadInput(f"judge spec {source}: [decoding] {k} = {decoding[k]!r} must be {what}")


# a value that carries a credential: an API key, or a password in a URL (https://user:pw@host)
_CREDENTIAL = re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}|://[^/@\s]*:[^/@\s]*@")


def _check_options(options: dict, where: str) -> None:
    """Options hold no secrets (DESIGN.md: keys come from the environment): a secret-looking name, or a
    value holding a key or a URL password, is BadInput naming the option, never showing the value.
    ``where``: "judge spec FILE" or "--base-url" (checked the same, as both end up in the database)."""
    for k, v in options.items():
        lk = k.lower()
        if lk not in _SAFE_OPTION_NAMES and any(w in lk for w in _SECRET_WORDS):
            raise BadInput(f"{where}: option '{k}' looks like a secret; secrets are read from "
                           f"the environment only (use api_key_env = \"ENV_VAR_NAME\")")
        if isinstance(v, str) and _CREDENTIAL.search(v):
            raise BadInput(f"{where}: option '{k}' holds what looks like a credential (an API key, or a "
                           f"password in a URL); it would be stored with every judgement: put the key in an "
                           f"environment variable and set api_key_env (the value is not shown)")
