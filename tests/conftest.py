"""Shared fixtures: a fresh experiment database, an in-process CLI runner, a fast training config."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(*args: str, env: dict | None = None) -> CliResult:
    """Run `vlmdyn ARGS` in-process through the real entry point (exit-code mapping included)."""
    from vlmdyn_cli.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Every test starts in an empty working directory of its own, with no VLMDYN_DB and
    no API key from the developer's shell: a test that forgot to pass --db (or wrote
    judges-local/ into the cwd, or reached a real API) fails here instead of touching
    the user's files."""
    monkeypatch.delenv("VLMDYN_DB", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "exp.db"


@pytest.fixture
def db(db_path):
    from vlmdyn_cli.store import open_db

    d = open_db(db_path)
    yield d
    d.close()


# A tiny model small enough for a training test to take seconds: 16 px images in 4 px patches
# (16 image tokens), narrow towers; the default tiny model's layer counts.
SMALL_TRAINING = {"model": {"image_size": 16, "patch_size": 4, "text_hidden": 64, "vision_hidden": 32},
                  "train": {"per_device_batch": 4, "lr": 3e-3, "warmup": 0.1}}


@pytest.fixture
def small_training(tmp_path):
    """``small_training(**sections)``: config overrides for a fast tiny run with checkpoints under tmp_path;
    each keyword is a section whose keys replace the defaults'."""

    def make(**sections) -> dict:
        ov = {name: dict(body) for name, body in SMALL_TRAINING.items()}
        ov["train"]["out_dir"] = str(tmp_path / "runs")
        for name, body in sections.items():
            ov.setdefault(name, {}).update(body)
        return ov

    return make
