"""Progress display shared by the grid, training and evaluation.

One ``Board`` (a rich Progress) holds a line per running phase, so the grid's bar and the current
cell's bar show together. Library functions take an optional board and fall back to a quiet one,
so tests and library users get no output unless they ask for it. An observer (``Board.observe``)
sees every line move, displayed or not: the grid runner records them in ``status.json`` so that
``objlab status`` can show the running cell's progress from another terminal.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class LineObserver(Protocol):
    def line_changed(self, description: str, completed: float, total: float | None, first_completed: float) -> None: ...

    def line_closed(self, description: str) -> None: ...


class Line:
    def __init__(
        self, progress: Progress | None, task_id, description: str = "", total: float | None = None, observer: LineObserver | None = None
    ) -> None:
        self._progress, self._task = progress, task_id
        self.description, self.total, self._observer = description, total, observer
        self.completed = self.first_completed = 0.0
        self._advanced = False

    def _notify(self) -> None:
        if self._observer is not None:
            self._observer.line_changed(self.description, self.completed, self.total, self.first_completed)

    def advance(self, amount: float = 1, **fields) -> None:
        self.completed += amount
        self._advanced = True
        if self._progress is not None:
            self._progress.update(self._task, advance=amount, **fields)
        self._notify()

    def set(self, completed: float, **fields) -> None:
        self.completed = completed
        if not self._advanced:  # where a resumed phase starts: its rate counts from here
            self.first_completed = completed
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, **fields)
        self._notify()

    def close(self) -> None:
        if self._observer is not None:
            self._observer.line_closed(self.description)
        if self._progress is None:
            return
        if not self._progress.console.is_terminal:
            # No live display off a terminal (a log file, CI): one line per finished phase instead.
            task = next(t for t in self._progress.tasks if t.id == self._task)
            done = f"{task.completed:g}/{task.total:g}" if task.total else f"{task.completed:g}"
            info = f" {task.fields['info']}" if task.fields.get("info") else ""
            self._progress.console.print(f"{task.description}: {done}{info} ({task.elapsed or 0:.0f} s)")
        self._progress.remove_task(self._task)


class Board:
    """A live progress display (or a silent one when ``enabled`` is false)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress = (
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
                transient=False,
            )
            if enabled
            else None
        )
        self.observer: LineObserver | None = None
        self._scope = ""

    def observe(self, observer: LineObserver | None) -> None:
        """Report every line's progress to ``observer`` (lines created from now on)."""
        self.observer = observer

    def __enter__(self) -> Board:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def line(self, description: str, total: float | None) -> Line:
        label = f"{self._scope}: {description}" if self._scope else description
        task = None if self._progress is None else self._progress.add_task(label, total=total, info="")
        line = Line(self._progress, task, label, total, self.observer)
        line._notify()
        return line

    @contextlib.contextmanager
    def scope(self, label: str):
        """Lines opened inside are named after ``label`` (the cell or unit they belong to), so a
        log read later, off a terminal, says which cell each phase was part of."""
        previous, self._scope = self._scope, label
        try:
            yield self
        finally:
            self._scope = previous

    def log(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message)


@contextlib.contextmanager
def board_or_quiet(board: Board | None):
    """The caller's board, or a silent one for the duration."""
    yield board if board is not None else Board(enabled=False)
