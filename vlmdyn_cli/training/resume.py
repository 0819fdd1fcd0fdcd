"""The resume state of an unfinished run: ``<out_dir>/<run>/resume/``.

    resume/model/          the model (a checkpoint folder)
    resume/optimizer.pt    the optimizer (or resume/state/ through accelerate for DeepSpeed / FSDP)
    resume/trainer.json    {"step", "run"}: written last, so its presence means the folder is complete

Saved at each checkpoint and every ``[train] resume_every`` steps. A `kill -9`
at any instant must leave one complete state behind, so nothing complete is
ever deleted before its successor is complete, and every deletion removes the
marker first (a folder with a marker is always whole):

    1. write ``resume.partial`` (marker last)
    2. discard ``resume.old``; rename ``resume`` -> ``resume.old``
    3. rename ``resume.partial`` -> ``resume``; discard ``resume.old``

``--resume`` reloads the complete folder with the highest step among the
three (read only, so every rank may look) and redoes the later steps with the
identical order; all three are removed when the run is done.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from vlmdyn_cli.models.checkpoint import save_checkpoint
from vlmdyn_cli.training.distributed import Dist, gathered

RESUME_DIR = "resume"
MARKER = "trainer.json"


def _marked_step(folder: Path) -> int:
    marker = folder / MARKER
    return json.loads(marker.read_text())["step"] if marker.exists() else 0


def _discard(folder: Path) -> None:
    """Delete a folder, its marker first: a deletion cut short leaves an incomplete folder, never a marked one."""
    (folder / MARKER).unlink(missing_ok=True)
    if folder.exists():
        shutil.rmtree(folder)


class ResumeState:
    def __init__(self, run_dir: Path):
        self.dir = run_dir / RESUME_DIR
        self.partial = run_dir / (RESUME_DIR + ".partial")
        self.old = run_dir / (RESUME_DIR + ".old")

    def _latest(self) -> Path | None:
        """The complete folder with the highest step (None: nothing to resume from)."""
        marked = [(s, f) for f in (self.dir, self.partial, self.old) if (s := _marked_step(f)) > 0]
        return max(marked, key=lambda sf: sf[0])[1] if marked else None

    def step(self) -> int:
        """The step the saved state is at (0: nothing to resume from)."""
        latest = self._latest()
        return _marked_step(latest) if latest else 0

    @property
    def model_dir(self) -> Path:
        return (self._latest() or self.dir) / "model"

    def save(self, dist: Dist, wrapped, model, processor, opt, step: int, run: str) -> None:
        """Replace the resume state with this step's (a collective: every rank calls it)."""
        import torch

        full = gathered(dist, wrapped, model)
        tmp = self.partial
        if dist.main:
            _discard(tmp)
            tmp.mkdir(parents=True)
            save_checkpoint(full, processor, tmp / "model", {"step": step, "run": run})
        dist.acc.wait_for_everyone()
        if dist.sharded:
            dist.acc.save_state(str(tmp / "state"))
        elif dist.main:
            torch.save(opt.state_dict(), tmp / "optimizer.pt")
        dist.acc.wait_for_everyone()
        if dist.main:
            (tmp / MARKER).write_text(json.dumps({"step": step, "run": run}))
            _discard(self.old)
            if self.dir.exists():
                self.dir.rename(self.old)
            tmp.rename(self.dir)
            _discard(self.old)
        dist.acc.wait_for_everyone()

    def load_optimizer(self, dist: Dist, opt) -> None:
        import torch

        source = self._latest() or self.dir
        if dist.sharded:
            dist.acc.load_state(str(source / "state"))
        else:
            opt.load_state_dict(torch.load(source / "optimizer.pt", map_location=dist.device, weights_only=True))

    def remove(self) -> None:
        for folder in (self.dir, self.partial, self.old):
            _discard(folder)
