"""The grid's access to its results store: opened for each write, closed at once.

DuckDB lets one process write a database file or any number read it, never both at once. A grid
that held its store open for hours would lock out ``objlab results``, ``report`` and ``status``
until it ended; so the driver opens the store only for the moment of each write (a cell, a
failure, a batch of judge verdicts) and readers get in between. Writes wait for readers
(``ResultsStore.open``); the board says so when one has to.

The store is also the grid's judge-verdict cache. The run lock makes this process the run
directory's only writer, so an in-memory copy of the stored verdicts, read once, is exact:
lookups never open the file, and every new verdict is written through before it is used.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from objlab.faults import fault_point
from objlab.store import STORE_FILE, ResultsStore


class RunStore:
    """The run directory's results store, opened per operation (see the module docstring)."""

    def __init__(self, run_dir: Path, wait_s: float | None = None, on_wait: Callable[[str], None] | None = None) -> None:
        self.path = Path(run_dir) / STORE_FILE
        self.wait_s, self.on_wait = wait_s, on_wait
        self._verdicts: dict[str, dict] | None = None
        self._lock = threading.Lock()  # judges may call the cache from worker threads

    @contextmanager
    def open(self) -> Iterator[ResultsStore]:
        """The store, open for writing for the duration of the ``with`` block."""
        store = ResultsStore.open(self.path, wait_s=self.wait_s, on_wait=self.on_wait)
        try:
            yield store
        finally:
            store.close()

    # -- the verdict cache (objlab.scoring.cache.VerdictCache) ---------------------
    def _loaded(self) -> dict[str, dict]:
        if self._verdicts is None:
            with self.open() as store:
                self._verdicts = store.all_verdicts()
        return self._verdicts

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        with self._lock:
            verdicts = self._loaded()
            return {key: verdicts[key] for key in keys if key in verdicts}

    def put_many(self, verdicts: dict[str, dict]) -> None:
        if not verdicts:
            return
        with self._lock:
            known = self._loaded()
            with self.open() as store:
                store.put_many(verdicts)
            known.update(verdicts)
        fault_point("verdicts.stored")

    def all_verdicts(self) -> dict[str, dict]:
        with self._lock:
            return dict(self._loaded())
