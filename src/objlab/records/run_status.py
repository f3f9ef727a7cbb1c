"""``RUN_DIR/status.json``: what a running grid is doing, readable at any moment.

``objlab status`` must answer while the grid runs: which cell is running and in which phase,
since when, how far its progress lines are, and how long each finished phase took (the rates
behind the estimate of the time left). The runner rewrites this small file atomically (a
temporary file renamed over it) at every phase boundary and at most once a second while
progress lines move, so a reader never sees half a file and never waits for a lock. Finished
cells and failures are read from the results store; this file holds only what the store does
not: the live state and the phase timings, kept across invocations on the same run directory.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from objlab.errors import DataError

STATUS_FILE = "status.json"
STATUS_VERSION = 1
Phase = Literal["train", "evaluate", "evaluate base", "record", "train+evaluate"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProgressLine(_Record):
    """A progress line of the running phase (``train sft seed 0``: 40 of 120 steps)."""

    description: str
    completed: float
    total: float | None = None
    first_completed: float = 0.0  # where the line started (a resumed run starts past zero)
    started_at: datetime
    updated_at: datetime


class RunningPhase(_Record):
    """A phase in progress: a unit's training, a cell's evaluation, a cell being recorded."""

    key: str
    unit: str
    phase: Phase
    cells: list[str] = []
    objective: str | None = None
    started_at: datetime
    lines: list[ProgressLine] = []


class PhaseRecord(_Record):
    """A finished phase. ``tokens``: task tokens trained in it (train phases; 0 otherwise)."""

    unit: str
    phase: Phase
    cells: list[str] = []
    objective: str | None = None
    seconds: float
    tokens: int = 0
    ok: bool = True
    finished_at: datetime


class RunStatus(_Record):
    """The whole file. ``state``: running, finished, stopped (an error ended the grid)."""

    version: int = STATUS_VERSION
    state: Literal["running", "finished", "stopped"]
    pid: int
    host: str
    executor: Literal["local", "ray"] = "local"
    started_at: datetime
    updated_at: datetime
    message: str = ""
    running: list[RunningPhase] = []
    phases: list[PhaseRecord] = []


def write_status(run_dir: Path, status: RunStatus) -> None:
    """Replace ``status.json`` atomically (write a temporary file, then rename it over)."""
    target = Path(run_dir) / STATUS_FILE
    partial = target.with_name(f".{STATUS_FILE}.{os.getpid()}.tmp")
    partial.write_text(status.model_dump_json(indent=1) + "\n")
    os.replace(partial, target)


def read_status(run_dir: Path) -> RunStatus | None:
    """The run's status file; None where there is none; DataError naming the file if it is bad."""
    path = Path(run_dir) / STATUS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if isinstance(data, dict) and data.get("version") not in (None, STATUS_VERSION):
        raise DataError(f"{path}: status file version {data.get('version')!r}, this objlab reads {STATUS_VERSION}")
    try:
        return RunStatus.model_validate(data)
    except ValidationError as error:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in error.errors()[:5])
        raise DataError(f"{path}: not an objlab status file ({fields})") from None
