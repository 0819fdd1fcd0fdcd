"""The resume state of an unfinished run: ``<out_dir>/<run>/resume/``.

    resume/model/          the model (a checkpoint folder)
    resume/optimizer.pt    the optimizer (or resume/state/ through accelerate for DeepSpeed / FSDP)
    resume/trainer.json    {"step", "run"}: written last, so its presence means the folder is complete

Saved at each checkpoint and every ``[train] resume_every`` steps, written as
``resume.partial`` and renamed into place; ``--resume`` reloads it and redoes
the later steps with the identical order; removed when the run is done.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from vlmdyn_cli.models.checkpoint import save_checkpoint
from vlmdyn_cli.training.distributed import Dist, gathered

RESUME_DIR = "resume"


class ResumeState:
    def __init__(self, run_dir: Path):
        self.dir = run_dir / RESUME_DIR

    @property
    def model_dir(self) -> Path:
        return self.dir / "model"

    def step(self) -> int:
        """The step the saved state is at (0: nothing to resume from)."""
        marker = self.dir / "trainer.json"
        return json.loads(marker.read_text())["step"] if marker.exists() else 0

    def save(self, dist: Dist, wrapped, model, processor, opt, step: int, run: str) -> None:
        """Replace the resume state with this step's (a collective: every rank calls it)."""
        import torch

        full = gathered(dist, wrapped, model)
        tmp = self.dir.with_name(RESUME_DIR + ".partial")
        if dist.main:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            save_checkpoint(full, processor, tmp / "model", {"step": step, "run": run})
        dist.acc.wait_for_everyone()
        if dist.sharded:
            dist.acc.save_state(str(tmp / "state"))
        elif dist.main:
            torch.save(opt.state_dict(), tmp / "optimizer.pt")
        dist.acc.wait_for_everyone()
        if dist.main:
            (tmp / "trainer.json").write_text(json.dumps({"step": step, "run": run}))
            self.remove()
            tmp.rename(self.dir)
        dist.acc.wait_for_everyone()

    def load_optimizer(self, dist: Dist, opt) -> None:
        import torch

        if dist.sharded:
            dist.acc.load_state(str(self.dir / "state"))
        else:
            opt.load_state_dict(torch.load(self.dir / "optimizer.pt", map_location=dist.device, weights_only=True))

    def remove(self) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir)
