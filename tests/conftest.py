"""Shared fixtures: a fresh experiment database, an in-process CLI runner."""

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
