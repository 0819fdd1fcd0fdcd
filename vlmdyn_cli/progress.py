"""Progress reporting, decoupled from the work (DESIGN.md convention 6).

Library code takes a ``Reporter`` and does::

    with reporter.task("judging", total=len(items), unit="items") as t:
        for batch in ...:
            ...
            t.advance(len(batch), cost=f"${cost:.4f}")
    reporter.info("checkpoint 357: loss 1.23")

The CLI passes ``cli_reporter()``: a Rich bar with rate and ETA on a TTY,
plain timestamped lines (also with rate and ETA) otherwise, always on stderr.
Tests and the TUI pass ``NullReporter`` or ``RecordingReporter``.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator

from vlmdyn_cli.safetext import clean


class TaskHandle:
    def __init__(self, reporter: "Reporter", desc: str, total: int | None, unit: str):
        self.reporter, self.desc, self.total, self.unit = reporter, desc, total, unit
        self.done = 0
        self.fields: dict[str, object] = {}
        self.t0 = time.monotonic()
        self.first: tuple[float, int] | None = None     # (time, done) at the first advance
        self.stopped = False                            # ended by an error or an interrupt, not done

    def advance(self, n: int = 1, **fields) -> None:
        self.done += n
        if self.first is None:
            self.first = (time.monotonic(), self.done)
        self.fields.update(fields)
        self.reporter._update(self)

    def set_total(self, total: int) -> None:
        self.total = total
        self.reporter._update(self)

    @property
    def rate(self) -> float:
        dt = time.monotonic() - self.t0
        return self.done / dt if dt > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate since the first advance: the time before it (loading a model,
        a cold cache) is not a per-item cost, so it does not inflate the estimate; None until two
        advances have been seen (or when there is no total)."""
        if not self.total or self.first is None:
            return None
        if self.done >= self.total:
            return 0.0
        t1, d1 = self.first
        dt = time.monotonic() - t1
        if self.done <= d1 or dt <= 0:
            return None
        return (self.total - self.done) * dt / (self.done - d1)

    def line(self) -> str:
        tot = f"/{self.total}" if self.total else ""
        pct = f" {100 * self.done / self.total:5.1f}%" if self.total else ""
        eta = f" ETA {format_seconds(self.eta)}" if self.eta is not None else ""
        extra = "".join(f" {k}={v}" for k, v in self.fields.items())
        return f"{self.desc}: {self.done}{tot} {self.unit}{pct} {self.rate:.1f} {self.unit}/s{eta}{extra}"


def format_seconds(s: float | None) -> str:
    """m:ss, or h:mm:ss from an hour on; "?" when unknown."""
    if s is None:
        return "?"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Reporter:
    """Base reporter: ignores everything. Subclasses render."""

    prefix: str = ""

    @contextmanager
    def task(self, desc: str, total: int | None = None, unit: str = "items") -> Iterator[TaskHandle]:
        h = TaskHandle(self, self.prefix + desc, total, unit)
        self._start(h)
        try:
            yield h
        except BaseException:
            h.stopped = True
            raise
        finally:
            self._finish(h)

    def info(self, message: str) -> None:  # a one-line summary
        pass

    def stage(self, name: str) -> "Reporter":
        """A reporter whose task names are prefixed (the demo's pipeline stages)."""
        return _Prefixed(self, f"{self.prefix}[{name}] ")

    def _start(self, h: TaskHandle) -> None:
        pass

    def _update(self, h: TaskHandle) -> None:
        pass

    def _finish(self, h: TaskHandle) -> None:
        pass


class _Prefixed(Reporter):
    def __init__(self, parent: Reporter, prefix: str):
        self.parent, self.prefix = parent, prefix

    def info(self, message: str) -> None:
        self.parent.info(self.prefix + message)

    def _start(self, h):
        self.parent._start(h)

    def _update(self, h):
        self.parent._update(h)

    def _finish(self, h):
        self.parent._finish(h)


class NullReporter(Reporter):
    pass


class RecordingReporter(Reporter):
    """Keeps every event, for tests."""

    def __init__(self):
        self.events: list[tuple] = []

    def info(self, message: str) -> None:
        self.events.append(("info", message))

    def _start(self, h):
        self.events.append(("start", h.desc, h.total))

    def _update(self, h):
        self.events.append(("update", h.desc, h.done))

    def _finish(self, h):
        self.events.append(("finish", h.desc, h.done))


class PlainReporter(Reporter):
    """Plain lines on stderr every ``interval`` seconds: for logs and non-TTYs."""

    def __init__(self, stream=None, interval: float = 5.0):
        self.stream = stream or sys.stderr
        self.interval = interval
        self._last: dict[int, float] = {}

    def info(self, message: str) -> None:
        print(clean(message), file=self.stream, flush=True)

    def _start(self, h):
        self._last[id(h)] = time.monotonic()

    def _update(self, h):
        t = time.monotonic()
        if t - self._last.get(id(h), 0) >= self.interval:
            self._last[id(h)] = t
            print(clean(h.line()), file=self.stream, flush=True)

    def _finish(self, h):
        self._last.pop(id(h), None)
        print(clean(h.line()) + (" stopped" if h.stopped else " done"), file=self.stream, flush=True)


class RichReporter(Reporter):
    """A Rich progress bar with rate and ETA on stderr."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), TextColumn("{task.fields[extra]}"),
            console=self.console, transient=False,
        )
        self._ids: dict[int, int] = {}
        self._active = 0

    def info(self, message: str) -> None:
        from rich.text import Text

        self.console.print(Text(clean(message)))

    def _start(self, h):
        if self._active == 0:
            self.progress.start()
        self._active += 1
        from rich.markup import escape

        self._ids[id(h)] = self.progress.add_task(escape(clean(h.desc)), total=h.total, rate="", extra="")

    def _update(self, h):
        from rich.markup import escape

        extra = " ".join(f"{k}={v}" for k, v in h.fields.items())
        self.progress.update(self._ids[id(h)], completed=h.done, total=h.total,
                             rate=f"{h.rate:.1f} {h.unit}/s", extra=escape(clean(extra)))

    def _finish(self, h):
        self._update(h)
        self._active -= 1
        if self._active == 0:
            self.progress.stop()


def cli_reporter(quiet: bool = False) -> Reporter:
    if quiet:
        return NullReporter()
    if sys.stderr.isatty():
        return RichReporter()
    return PlainReporter()
