"""A cell that failed: which cell, in which phase, the error and its traceback.

A long grid must not end because one cell failed (an exception, a non-finite loss, running out
of memory, a judge endpoint that stays down). The runner catches the failure where the cell
runs (a worker, on Ray), turns it into this record -- plain data that pickles -- and the driver
stores it in the results store's ``failures`` table; the cell has no ``cells`` row, so the next
``objlab run`` retries it. Failures stay in the table as history after a retry succeeds.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime

TRACEBACK_CHARS = 20_000  # enough for any real traceback; a runaway repr must not bloat the store


def utc_now() -> datetime:
    """The current UTC time without tzinfo (how the store's TIMESTAMP columns hold it)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class CellFailure:
    """One failed attempt at a cell. ``phase``: train, evaluate, evaluate base, record, ray task."""

    cell_id: str
    unit: str
    phase: str
    error_type: str
    message: str
    traceback: str = ""
    failed_at: datetime = field(default_factory=utc_now)

    @classmethod
    def from_exception(cls, cell_id: str, unit: str, phase: str, error: BaseException) -> CellFailure:
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        return cls(cell_id, unit, phase, type(error).__name__, str(error) or type(error).__name__, text[-TRACEBACK_CHARS:])

    @property
    def summary(self) -> str:
        """One line: ``ErrorType: first line of the message``."""
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return f"{self.error_type}: {first}"
