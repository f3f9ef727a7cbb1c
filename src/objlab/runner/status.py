"""Recording what the grid is doing, for ``objlab status`` in another terminal.

The pipeline wraps each phase of a cell's life (a unit's training, a cell's evaluation, its
recording) in ``tracker.phase(...)``; the tracker keeps the running phases, their progress
lines (it observes the board) and the finished phases' timings, and rewrites
``RUN_DIR/status.json`` atomically (``objlab.records.run_status``). Phase boundaries are written
at once; progress lines at most once a second (a timer writes the last one), so a training
loop is never slowed by it.

Ray workers run the same pipeline with ``NO_TRACKING``; the driver records each unit as one
``train+evaluate`` phase from submission to result.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from objlab.errors import DataError
from objlab.records.failure import utc_now
from objlab.records.run_status import (
    Phase,
    PhaseRecord,
    ProgressLine,
    RunningPhase,
    RunStatus,
    read_status,
    write_status,
)

LINE_WRITE_INTERVAL_S = 1.0


@dataclass
class PhaseHandle:
    """What the code inside a phase reports about it: task tokens trained, and failure."""

    tokens: int = 0
    ok: bool = True


class PhaseTracker(Protocol):
    def phase(self, unit: str, phase: Phase, cells: list[str] = (), objective: str | None = None): ...


class NullTracker:
    """Tracks nothing (Ray workers, library calls of the pipeline)."""

    @contextmanager
    def phase(self, unit: str, phase: Phase, cells: list[str] = (), objective: str | None = None) -> Iterator[PhaseHandle]:
        yield PhaseHandle()


NO_TRACKING = NullTracker()


class StatusTracker:
    """Writes ``status.json`` for one grid invocation; phase timings of earlier ones are kept."""

    def __init__(self, run_dir: Path, executor: str = "local", log: Callable[[str], None] = print) -> None:
        self.run_dir = Path(run_dir)
        try:
            previous = read_status(self.run_dir)
        except DataError as error:
            log(f"{error}; its phase timings are dropped (the estimate of time left restarts)")
            previous = None
        now = utc_now()
        self.status = RunStatus(
            state="running", pid=os.getpid(), host=socket.gethostname(), executor=executor,
            started_at=now, updated_at=now, phases=previous.phases if previous else [],
        )
        self._started: dict[str, float] = {}
        self._current: str | None = None  # the phase that progress lines belong to (local runs)
        self._ignored: set[str] = set()
        self._last_write = 0.0
        self._timer: threading.Timer | None = None
        self._counter = 0
        self._lock = threading.RLock()
        self._write()

    def _write(self, throttled: bool = False) -> None:
        """Write now, or (``throttled``) at most once per interval: an update that comes too
        soon is written by a timer at the interval's end, so the file is never left stale."""
        wait = LINE_WRITE_INTERVAL_S - (time.monotonic() - self._last_write)
        if throttled and wait > 0:
            if self._timer is None:
                self._timer = threading.Timer(wait, self._flush)
                self._timer.daemon = True
                self._timer.start()
            return
        self.status.updated_at = utc_now()
        write_status(self.run_dir, self.status)
        self._last_write = time.monotonic()

    def _flush(self) -> None:
        with self._lock:
            self._timer = None
            if self.status.state == "running":
                self._write()

    def begin(self, unit: str, phase: Phase, cells: list[str] = (), objective: str | None = None) -> str:
        with self._lock:
            self._counter += 1
            key = f"{self._counter}:{unit}:{phase}"
            self.status.running.append(RunningPhase(key=key, unit=unit, phase=phase, cells=list(cells), objective=objective, started_at=utc_now()))
            self._started[key] = time.monotonic()
            self._write()
            return key

    def end(self, key: str, ok: bool = True, tokens: int = 0) -> None:
        with self._lock:
            running = next(entry for entry in self.status.running if entry.key == key)
            self.status.running.remove(running)
            seconds = time.monotonic() - self._started.pop(key)
            self.status.phases.append(PhaseRecord(
                unit=running.unit, phase=running.phase, cells=running.cells, objective=running.objective,
                seconds=round(seconds, 3), tokens=tokens, ok=ok, finished_at=utc_now(),
            ))
            self._write()

    @contextmanager
    def phase(self, unit: str, phase: Phase, cells: list[str] = (), objective: str | None = None) -> Iterator[PhaseHandle]:
        """A phase of the local pipeline: timed, shown as running, its progress lines recorded."""
        key = self.begin(unit, phase, cells, objective)
        outer, self._current = self._current, key
        handle = PhaseHandle()
        try:
            yield handle
        except BaseException:
            handle.ok = False
            raise
        finally:
            self._current = outer
            self.end(key, handle.ok, handle.tokens)

    # -- the board's observer ---------------------------------------------------------------
    def _running(self, key: str | None) -> RunningPhase | None:
        return next((entry for entry in self.status.running if entry.key == key), None)

    def line_changed(self, description: str, completed: float, total: float | None, first_completed: float) -> None:
        with self._lock:
            running = self._running(self._current)
            if running is None or description in self._ignored:
                self._ignored.add(description)  # a line begun outside any phase (the grid's own)
                return
            line = next((line for line in running.lines if line.description == description), None)
            now = utc_now()
            new = line is None
            if new:
                line = ProgressLine(description=description, completed=completed, total=total, first_completed=first_completed, started_at=now, updated_at=now)
                running.lines.append(line)
            line.completed, line.total, line.first_completed, line.updated_at = completed, total, first_completed, now
            self._write(throttled=not new)  # a new line shows at once; its progress once a second

    def line_closed(self, description: str) -> None:
        with self._lock:
            for running in self.status.running:
                running.lines = [line for line in running.lines if line.description != description]

    def finish(self, state: str, message: str = "") -> None:
        """The grid ended: ``finished`` or ``stopped`` (with the error's one-line message)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self.status.state, self.status.message = state, message
            self.status.running = []
            self._write()
