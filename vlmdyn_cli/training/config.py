"""Training configuration: a TOML file with [model], [data], [train], [checkpoints], [parts].

Each section is a frozen dataclass below and ``TrainConfig`` holds the five. The
field defaults are the built-in tiny configuration; ``examples/tiny.toml`` is
the same thing written out (a test keeps them identical). Values are layered:

    defaults <- the model family's own defaults (models/registry.py) <- CONFIG.toml <- command line

so a config file only needs the keys it changes. An unknown section or key, or
a value of the wrong type or outside its range, is a ``BadInput`` (exit 2) that
names the key and where it came from (the file, or the command line), with a
did-you-mean: a typo never silently trains the wrong thing.
"""

from __future__ import annotations

import copy
import math
import sys
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import ClassVar

from vlmdyn_cli.errors import BadInput, did_you_mean
from vlmdyn_cli.models.parts import check_part
from vlmdyn_cli.models.registry import resolve
from vlmdyn_cli.models.tiny import TinySizes
from vlmdyn_cli.training.trackers import TRACKERS

PAPER_PATTERN = (51, 357, 765, 1275, 2550, 3825)   # of 5120 steps (METHOD.md 1)
PAPER_TOTAL = 5120

# [train] keys that may change between a run and its resume (they do not change what is trained)
RESUMABLE_CHANGES = ("threads", "num_workers", "report_to", "resume_every", "out_dir", "packing")
LOSS_CHOICES = ("answer", "instruction+answer")
MIXED_CHOICES = ("no", "bf16", "fp16")


class ConfigError(BadInput):
    """A bad value; ``section``/``key`` let ``load_config`` say which layer set it."""

    def __init__(self, section: str, key: str, message: str):
        super().__init__(message)
        self.section, self.key = section, key


def _limits(minimum=None, below=None, choices=None) -> dict:
    return {"metadata": {"min": minimum, "below": below, "choices": choices}}


class _Section:
    """Every field is checked against its type and limits when a section is made."""

    toml_name: ClassVar[str]

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            object.__setattr__(self, f.name, _checked(self.toml_name, f, hints[f.name], getattr(self, f.name)))
        self.check()

    def check(self) -> None:
        """Checks across fields (none by default)."""


@dataclass(frozen=True)
class ModelSection(TinySizes, _Section):
    """[model]: which model (a registry id) and, for `tiny`, its sizes (the fields of TinySizes)."""

    toml_name: ClassVar[str] = "model"
    id: str = "tiny"                       # tiny | hf:<folder or hub id> | composed:<vision>+<llm>
    dtype: str = "float32"                 # weights dtype for hf: and composed: models
    vision_feature_layer: int = -2         # composed: which vision layer feeds the projector
    gradient_checkpointing: bool = False   # trade compute for activation memory

    def check(self) -> None:
        for f in fields(TinySizes):
            if getattr(self, f.name) < 1:
                raise ConfigError("model", f.name, f"[model] {f.name} must be >= 1, got {getattr(self, f.name)}")
        try:
            resolve(self.id)
        except BadInput as exc:
            raise ConfigError("model", "id", str(exc)) from None


@dataclass(frozen=True)
class DataSection(_Section):
    toml_name: ClassVar[str] = "data"
    # dataset name, or a list of names trained together as one mix (the first names the run's dataset);
    # "" = the only dataset in the database
    dataset: str | tuple[str, ...] = ""
    max_length: int = field(default=512, **_limits(8))   # tokens per conversation, image tokens included
    sample: int = field(default=0, **_limits(0))         # train on a random subset of N conversations (0 = all)
    sample_seed: int = 0                   # which subset (independent of the training seed: same data every seed)


@dataclass(frozen=True)
class TrainSection(_Section):
    toml_name: ClassVar[str] = "train"
    per_device_batch: int = field(default=8, **_limits(1))
    steps: int = field(default=0, **_limits(0))           # fixed optimizer steps (0 = one epoch); see order.py
    grad_accum: int = field(default=1, **_limits(1))      # global batch = per_device_batch x grad_accum x processes
    lr: float = field(default=1e-3, **_limits(0))
    warmup: float = field(default=0.03, **_limits(0, below=1))   # fraction of the epoch
    min_lr_ratio: float = field(default=0.0, **_limits(0))       # cosine floor, as a fraction of lr
    weight_decay: float = field(default=0.0, **_limits(0))
    max_grad_norm: float = field(default=1.0, **_limits(0))
    adam_beta1: float = field(default=0.9, **_limits(0, below=1))
    adam_beta2: float = field(default=0.999, **_limits(0, below=1))
    loss: str = field(default="answer", **_limits(choices=LOSS_CHOICES))   # instruction+answer = L2T
    mixed_precision: str = field(default="no", **_limits(choices=MIXED_CHOICES))
    threads: int = field(default=1, **_limits(0))          # torch CPU threads (0 = all cores / processes)
    num_workers: int = field(default=0, **_limits(0))      # DataLoader workers for collation
    packing: bool = True                   # a micro-batch's conversations in one row, no padding (packing.py)
    out_dir: str = "runs"                  # checkpoints go to <out_dir>/<run>/checkpoints/step-NNNNNN
    report_to: str = field(default="none", **_limits(choices=tuple(TRACKERS)))    # training/trackers.py
    resume_every: int = field(default=0, **_limits(0))     # also save the resume state every N steps


@dataclass(frozen=True)
class CheckpointSection(_Section):
    toml_name: ClassVar[str] = "checkpoints"
    # "paper" (51/357/765/1275/2550/3825 of 5120, scaled) or steps (ints) and fractions of the epoch (floats)
    steps: str | tuple[int | float, ...] = "paper"
    include_step_0: bool = False           # also save the untrained model as step 0
    final: bool = True                     # also save the last step of the epoch

    def check(self) -> None:
        if isinstance(self.steps, str) and self.steps != "paper":
            raise ConfigError("checkpoints", "steps",
                              f"[checkpoints] steps must be \"paper\" or a list of numbers, got {self.steps!r}")


@dataclass(frozen=True)
class PartsSection(_Section):
    toml_name: ClassVar[str] = "parts"
    freeze: tuple[str, ...] = ()           # any of vision, projector, llm
    # per-part learning rates (a part not listed uses train.lr); tuned for the tiny preset, see registry
    lr: dict[str, float] = field(default_factory=lambda: {"vision": 3e-3, "projector": 3e-3}, **_limits(0))

    def check(self) -> None:
        for key, names in (("freeze", self.freeze), ("lr", self.lr)):
            for name in names:
                try:
                    check_part(name, f"[parts] {key}")
                except BadInput as exc:
                    raise ConfigError("parts", key, str(exc)) from None


@dataclass(frozen=True)
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    checkpoints: CheckpointSection = field(default_factory=CheckpointSection)
    parts: PartsSection = field(default_factory=PartsSection)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Sections from a nested dict of checked keys (``load_config`` checks the keys of user input)."""
        return cls(**{name: section(**values.get(name, {})) for name, section in SECTIONS.items()})

    def to_dict(self) -> dict:
        """Plain nested dict (lists, not tuples): what runs.config_json and checkpoint meta store."""
        return _plain(asdict(self))


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in fields(TrainConfig)}


def training_differences(stored: dict, cfg: "TrainConfig") -> list[str]:
    """Keys (section.key) whose value in a run's stored config differs from ``cfg`` in what is trained
    (the [train] keys of RESUMABLE_CHANGES may differ)."""
    new, default = cfg.to_dict(), defaults()     # a key the run predates counts as its default
    return [f"{sec}.{k}" for sec in SECTIONS for k in new[sec]
            if not (sec == "train" and k in RESUMABLE_CHANGES)
            and stored.get(sec, {}).get(k, default[sec][k]) != new[sec][k]]


def defaults() -> dict:
    return TrainConfig().to_dict()


# ---------------------------------------------------------------- loading


def toml_module():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib


def read_toml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"config file {p} does not exist")
    try:
        return toml_module().loads(p.read_text())
    except Exception as exc:  # tomllib.TOMLDecodeError
        raise BadInput(f"{p}: not valid TOML: {exc}") from exc


def parse_set(items: list[str]) -> dict:
    """``--set SECTION.KEY=VALUE`` items -> nested overrides (VALUE in TOML syntax; a bare word is a string)."""
    out: dict = {}
    for item in items:
        path, eq, raw = item.partition("=")
        if not eq or path.count(".") != 1:
            raise BadInput(f"--set '{item}': expected SECTION.KEY=VALUE, e.g. --set train.lr=3e-4")
        try:
            value = toml_module().loads(f"v = {raw}")["v"]
        except Exception:
            value = raw
        section, key = path.split(".")
        out.setdefault(section, {})[key] = value
    return out


def load_config(path: str | Path | None = None, overrides: dict | None = None,
                overrides_from: str = "overrides") -> TrainConfig:
    """The checked config: defaults <- model family defaults <- file <- overrides (same nesting).

    ``overrides_from`` names the overrides in messages (the CLI says "the command line").
    """
    layers = ([(str(path), read_toml(path))] if path else []) + ([(overrides_from, overrides)] if overrides else [])
    given: dict = {}
    origin: dict[tuple[str, str], str] = {}
    for source, layer in layers:
        _overlay(given, layer, source, origin)
    try:
        model_id = given.get("model", {}).get("id", ModelSection.id)
        family_defaults = resolve(model_id)[0].config_defaults if isinstance(model_id, str) else {}
        values = defaults()
        for layer in (family_defaults, given):
            for name, body in copy.deepcopy(layer).items():
                values[name].update(body)
        return TrainConfig.from_dict(values)
    except ConfigError as exc:
        raise BadInput(f"{origin.get((exc.section, exc.key), 'config')}: {exc}") from None
    except BadInput as exc:      # the model id, resolved before the sections are made
        raise BadInput(f"{origin.get(('model', 'id'), 'config')}: {exc}") from None


def _overlay(into: dict, layer: dict, source: str, origin: dict) -> None:
    """Copy a layer's values into ``into``, refusing unknown sections and keys."""
    for name, body in layer.items():
        if name not in SECTIONS:
            raise BadInput(f"{source}: unknown section '{name}'{did_you_mean(name, SECTIONS)}; "
                           f"known: {', '.join(SECTIONS)}")
        if not isinstance(body, dict):
            raise BadInput(f"{source}: '{name}' must be a table ([{name}])")
        known = [f.name for f in fields(SECTIONS[name])]
        for key, value in body.items():
            if key not in known:
                raise BadInput(f"{source}: unknown key '{name}.{key}'{did_you_mean(key, known)}; "
                               f"[{name}] keys: {', '.join(known)}")
            into.setdefault(name, {})[key] = value
            origin[(name, key)] = source


# ---------------------------------------------------------------- checking values


def _checked(section: str, f, tp, value):
    """``value`` as the field's type (tuples for lists, floats for numbers), or ConfigError."""
    if not _conforms(value, tp):
        raise ConfigError(section, f.name, f"[{section}] {f.name} must be {_describe(tp)}, got {value!r}")
    limits = f.metadata
    for v in (value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]):
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(section, f.name, f"[{section}] {f.name} must be finite, got {value!r}")
        if limits.get("min") is not None and v < limits["min"]:
            raise ConfigError(section, f.name, f"[{section}] {f.name} must be >= {limits['min']}, got {v!r}")
        if limits.get("below") is not None and v >= limits["below"]:
            raise ConfigError(section, f.name, f"[{section}] {f.name} must be below {limits['below']}, got {v!r}")
    if limits.get("choices"):
        _check_choice(section, f.name, value, limits["choices"])
    if tp is float:
        return float(value)
    if isinstance(value, list):
        return tuple(value)
    return value


def _check_choice(section: str, key: str, value, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(section, key, f"[{section}] {key} = '{value}' is not one of {', '.join(choices)}"
                                        f"{did_you_mean(str(value), choices)}")


def _conforms(value, tp) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if origin is tuple:
        return isinstance(value, (list, tuple)) and all(_conforms(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_conforms(k, args[0]) and _conforms(v, args[1])
                                               for k, v in value.items())
    if tp is bool:
        return isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, tp) and not isinstance(value, bool)


def _describe(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if set(args) == {int, float}:
        return "a number"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin in (tuple, dict):
        item = _describe(args[0] if origin is tuple else args[1]).removeprefix("a ").removeprefix("an ")
        return f"a {'list' if origin is tuple else 'table'} of {item}s"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[tp]


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
