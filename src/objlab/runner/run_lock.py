"""One ``objlab run`` per run directory: a lock file that names its holder.

Two grids writing one run directory would train the same units twice into the same checkpoint
directories and race on the store. ``RUN_DIR/run.lock`` is locked with ``flock`` for the whole
grid and holds the holder's pid, host, start time and command line, so the second ``objlab run``
is refused with a message that names the first. The kernel releases a ``flock`` when its
process dies, even by ``kill -9``, so the lock of a dead process is stale by construction and
the next run takes it over (and says so). Where ``flock`` is not supported (some network
filesystems) the holder's pid decides: a live process on this host keeps the lock.

``objlab status`` asks ``holder_of`` whether a grid is running; it only probes the lock for an
instant, and ``RunLock`` retries for ``ACQUIRE_WAIT_S`` so that probe never refuses a run.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from objlab.errors import StateError

LOCK_FILE = "run.lock"
ACQUIRE_WAIT_S = 2.0
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a run directory."""

    pid: int
    host: str
    started_at: str
    command: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, since {self.started_at}"

    def is_alive_here(self) -> bool:
        """True when the holder is a live process on this host (False when unknown elsewhere)."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _read_holder(handle: int) -> LockHolder | None:
    """The holder record in the lock file; None when it is empty or unreadable."""
    os.lseek(handle, 0, os.SEEK_SET)
    text = os.read(handle, 64 * 1024).decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        return LockHolder(**json.loads(text))
    except (json.JSONDecodeError, TypeError, ValueError):
        return None


def _try_flock(handle: int, mode: int) -> bool | None:
    """True when locked, False when another process holds it, None where flock is unsupported."""
    try:
        fcntl.flock(handle, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return False
        if error.errno in _UNSUPPORTED:
            return None
        raise


class RunLock:
    """``with RunLock(run_dir):`` the grid runs; a second holder gets a ``StateError``.

    ``took_over`` is the record of a dead holder whose stale lock this one replaced."""

    def __init__(self, run_dir: Path, wait_s: float = ACQUIRE_WAIT_S) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.wait_s = wait_s
        self.took_over: LockHolder | None = None
        self._handle: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._lock(handle)
        except BaseException:
            os.close(handle)
            raise
        self._handle = handle
        me = LockHolder(os.getpid(), socket.gethostname(), datetime.now(UTC).isoformat(timespec="seconds"), " ".join(sys.argv))
        os.ftruncate(handle, 0)
        os.lseek(handle, 0, os.SEEK_SET)
        os.write(handle, (json.dumps(asdict(me)) + "\n").encode())
        os.fsync(handle)
        return self

    def _lock(self, handle: int) -> None:
        deadline = time.monotonic() + self.wait_s
        while True:
            locked = _try_flock(handle, fcntl.LOCK_EX)
            previous = _read_holder(handle)
            if locked is None:  # no flock here: a live holder on this host keeps the lock
                locked = previous is None or previous.pid == os.getpid() or not previous.is_alive_here()
            if locked:
                self.took_over = previous
                return
            if time.monotonic() >= deadline:
                who = previous.describe() if previous else "a process that left no readable record in it"
                raise StateError(
                    f"{self.path.parent} is in use by another `objlab run` ({who}); one grid at a time may run "
                    f"in a run directory. `objlab status {self.path.parent}` shows its progress."
                )
            time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            os.ftruncate(self._handle, 0)  # an empty file: nobody holds it
            os.close(self._handle)  # closing the last descriptor releases the flock
            self._handle = None


def holder_of(run_dir: Path) -> tuple[LockHolder | None, bool]:
    """(the lock file's holder record, whether that holder is running now).

    A record whose process is gone (killed) is returned with False: the grid stopped without
    releasing the lock. The probe takes a shared lock for an instant and releases it."""
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return None, False
    handle = os.open(path, os.O_RDONLY)
    try:
        holder = _read_holder(handle)
        free = _try_flock(handle, fcntl.LOCK_SH)
        if free:
            fcntl.flock(handle, fcntl.LOCK_UN)
            return holder, False
        if free is None:
            return holder, holder is not None and holder.is_alive_here()
        return holder, True
    finally:
        os.close(handle)
