"""The resume state survives a kill at every file-system step of its replacement.

`vlmdyn train` replaces ``<run>/resume/`` every ``resume_every`` steps; a `kill -9` may land
between any two file operations, including in the middle of deleting a folder. Here the
process "dies" (an exception that nothing catches) at the n-th file operation of a save, for
every n, and a fresh look at the run folder must find a whole state: either the one before
the save or the one it was writing, with its model and optimizer loadable.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from vlmdyn_cli.models.checkpoint import load_checkpoint, read_meta
from vlmdyn_cli.models.registry import build_model
from vlmdyn_cli.training import distributed, resume
from vlmdyn_cli.training.resume import ResumeState

torch.set_num_threads(1)
TEXTS = ["USER: <image>\nWhat is it? ASSISTANT: a red square"]


class Killed(BaseException):
    """The process dying: not an Exception, so no `except Exception` in the code under test stops it."""


class Reaper:
    """Counts file operations (each file deleted, each rename, each marker unlink) and dies at the n-th."""

    def __init__(self, monkeypatch, die_at: int | None):
        self.n, self.die_at = 0, die_at
        real_rename, real_unlink, real_rmtree = Path.rename, Path.unlink, shutil.rmtree

        def tick():
            self.n += 1
            if self.die_at is not None and self.n == self.die_at:
                raise Killed(self.n)

        def rmtree(path, *a, **kw):
            # deletes file by file, the marker last: the worst order a real rmtree could take
            files = sorted((Path(root) / f for root, _, fs in os.walk(path) for f in fs),
                           key=lambda p: (p.name == resume.MARKER, str(p)))
            for f in files:
                tick()
                real_unlink(f)
            real_rmtree(path)   # only empty folders are left

        def rename(self_path, target):
            tick()
            return real_rename(self_path, target)

        def unlink(self_path, missing_ok=False):
            if self_path.name == resume.MARKER:
                tick()
            return real_unlink(self_path, missing_ok=missing_ok)

        monkeypatch.setattr(resume.shutil, "rmtree", rmtree)
        monkeypatch.setattr(Path, "rename", rename)
        monkeypatch.setattr(Path, "unlink", unlink)


@pytest.fixture(scope="module")
def parts():
    dist = distributed.start("no", 1)
    model, processor = build_model("tiny", {"seed": 0, "image_size": 16, "patch_size": 4,
                                            "text_hidden": 32, "vision_hidden": 16}, texts=TEXTS)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for p in model.parameters():          # give the optimizer a state to save
        p.grad = torch.ones_like(p)
    opt.step()
    return dist, model, processor, opt


def _save(parts, run_dir: Path, step: int) -> None:
    dist, model, processor, opt = parts
    with torch.no_grad():
        next(model.parameters()).fill_(float(step))      # each step's weights are told apart
    ResumeState(run_dir).save(dist, model, model, processor, opt, step, "r")


def _check_whole(parts, run_dir: Path, allowed: set[int]) -> int:
    dist, model, _, opt = parts
    state = ResumeState(run_dir)
    step = state.step()
    assert step in allowed
    assert read_meta(state.model_dir)["step"] == step
    loaded, _, _ = load_checkpoint(state.model_dir)
    assert float(next(loaded.parameters()).detach().flatten()[0]) == float(step)
    state.load_optimizer(dist, torch.optim.AdamW(model.parameters(), lr=1e-3))
    return step


def test_a_kill_at_any_file_operation_of_a_save_leaves_a_whole_state(parts, tmp_path, monkeypatch):
    seen = set()
    for die_at in range(1, 200):
        run_dir = tmp_path / f"kill-{die_at}"
        _save(parts, run_dir, 5)
        _save(parts, run_dir, 10)        # two saves before: resume/ and a replaced one behind it
        with monkeypatch.context() as m:
            reaper = Reaper(m, die_at)
            try:
                _save(parts, run_dir, 15)
                finished = True
            except Killed:
                finished = False
        seen.add(_check_whole(parts, run_dir, {10, 15}))
        # the resumed run goes on: its next save must succeed and leave only resume/
        _save(parts, run_dir, 20)
        assert _check_whole(parts, run_dir, {20}) == 20
        assert sorted(p.name for p in run_dir.iterdir()) == ["resume"]
        if finished:
            break
    assert finished and reaper.n > 5, "the save never ran to its end"
    assert seen == {10, 15}       # kills early fall back on step 10, late ones keep step 15


def test_a_kill_while_a_finished_run_removes_its_state_leaves_none_or_a_whole_one(parts, tmp_path, monkeypatch):
    for die_at in range(1, 200):
        run_dir = tmp_path / f"kill-{die_at}"
        _save(parts, run_dir, 5)
        with monkeypatch.context() as m:
            Reaper(m, die_at)
            try:
                ResumeState(run_dir).remove()
                finished = True
            except Killed:
                finished = False
        if ResumeState(run_dir).step():
            _check_whole(parts, run_dir, {5})
        if finished:
            assert ResumeState(run_dir).step() == 0 and not (run_dir / "resume").exists()
            break
    assert finished
