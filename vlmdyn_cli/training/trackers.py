"""Experiment trackers: where per-step metrics go besides the database (a registry).

    none          the database's ``metrics`` table only
    tensorboard   event files in <out_dir>/<run>/tensorboard
    wandb         a Weights & Biases run in project "vlmdyn"

``check(kind)`` runs before any training work (a missing package is exit 2 with
what to install); ``open_tracker(...)`` returns a ``Tracker`` on the main process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from vlmdyn_cli.errors import require


class Tracker(Protocol):
    def log(self, step: int, values: dict[str, float]) -> None: ...

    def close(self) -> None: ...


class _NoTracker:
    def log(self, step: int, values: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class _TensorBoard:
    def __init__(self, run_name: str, config: dict, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class _Wandb:
    def __init__(self, run_name: str, config: dict, run_dir: Path):
        import wandb

        self.run = wandb.init(project="vlmdyn", name=run_name, config=config)

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


@dataclass(frozen=True)
class TrackerKind:
    package: str | None          # the optional package it needs (None: nothing)
    open: Callable[[str, dict, Path], Tracker]


TRACKERS: dict[str, TrackerKind] = {
    "none": TrackerKind(None, lambda name, config, run_dir: _NoTracker()),
    "tensorboard": TrackerKind("tensorboard", _TensorBoard),
    "wandb": TrackerKind("wandb", _Wandb),
}


def check(kind: str) -> None:
    """Fail (exit 2, naming the package to install) when the tracker's package is missing."""
    package = TRACKERS[kind].package
    if package:
        require(package, f"pip install {package}", f"--report-to {kind}")


def open_tracker(kind: str, run_name: str, config: dict, run_dir: Path) -> Tracker:
    check(kind)
    return TRACKERS[kind].open(run_name, config, run_dir)
