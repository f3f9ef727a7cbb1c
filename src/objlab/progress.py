"""Progress display shared by the grid, training and evaluation.

One ``Board`` (a rich Progress) holds a line per running phase, so the grid's bar and the current
cell's bar show together. Library functions take an optional board and fall back to a quiet one,
so tests and library users get no output unless they ask for it.
"""

from __future__ import annotations

import contextlib
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Line:
    def __init__(self, progress: Progress | None, task_id) -> None:
        self._progress, self._task = progress, task_id

    def advance(self, amount: float = 1, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=amount, **fields)

    def set(self, completed: float, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, **fields)

    def close(self) -> None:
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
        self._scope = ""
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

    def __enter__(self) -> Board:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def line(self, description: str, total: float | None) -> Line:
        if self._progress is None:
            return Line(None, None)
        label = f"{self._scope}: {description}" if self._scope else description
        return Line(self._progress, self._progress.add_task(label, total=total, info=""))

    @contextlib.contextmanager
    def scope(self, label: str):
        """Lines opened inside name ``label`` (the cell or unit they belong to), so a log read
        later says which cell each finished phase was part of."""
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
