"""Subprocesses in tests: never leave one running when a test fails half-way."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def reaped(*procs):
    """Kill (SIGKILL) and wait for every process of ``procs`` still running when the block ends."""
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(30)
