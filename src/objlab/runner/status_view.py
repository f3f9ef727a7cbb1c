"""``objlab status RUN_DIR``: what a grid has done, what it is doing, how long the rest takes.

Everything is read from places that never hold the grid up: the results store opened read-only
for a moment (the config, finished cells, failures), ``status.json`` (running phases, progress
lines, phase timings; see ``objlab.records.run_status``) and the run lock (is the grid's process
alive). A grid killed without a chance to say so still shows ``running`` in its status file; the
lock tells the truth, and its running phases are then shown as interrupted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from objlab.config import parse_config
from objlab.errors import DataError, StateError
from objlab.records.failure import CellFailure, utc_now
from objlab.records.run_status import STATUS_FILE, RunningPhase, RunStatus, read_status
from objlab.runner.estimate import Estimate, estimate_left
from objlab.runner.grid import all_cell_ids
from objlab.runner.run_lock import LockHolder, holder_of
from objlab.store import STORE_FILE, ResultsStore

STATES = ("finished", "running", "failed", "pending")


@dataclass
class GridView:
    """Everything ``objlab status`` prints, gathered once."""

    run_dir: Path
    holder: LockHolder | None
    alive: bool
    status: RunStatus | None
    problems: list[str] = field(default_factory=list)
    cells: dict[str, str] = field(default_factory=dict)  # cell -> one of STATES, grid order
    running: list[RunningPhase] = field(default_factory=list)
    interrupted: list[RunningPhase] = field(default_factory=list)
    estimate: Estimate | None = None
    failures: list[CellFailure] = field(default_factory=list)  # open ones: not finished since

    def count(self, state: str) -> int:
        return sum(1 for value in self.cells.values() if value == state)


def _store_facts(run_dir: Path, wait_s: float | None) -> tuple[dict | None, set[str], list[CellFailure]]:
    """(stored config, finished cells, open failures); nothing when the store is not there yet."""
    if not (run_dir / STORE_FILE).is_file():
        return None, set(), []
    with ResultsStore.in_run_dir(run_dir, read_only=True, wait_s=wait_s) as store:
        text = store.meta("config")
        return (json.loads(text) if text else None), store.finished_cells(), store.failures(open_only=True)


def grid_view(run_dir: Path, wait_s: float | None = None, now: datetime | None = None) -> GridView:
    """Gather the view of ``run_dir`` (see the module docstring)."""
    run_dir = Path(run_dir)
    if not (run_dir / STORE_FILE).is_file() and not (run_dir / STATUS_FILE).is_file():
        raise StateError(f"{run_dir}: not a run directory (no {STORE_FILE} or {STATUS_FILE}; `objlab run` writes them)")
    now = now or utc_now()
    holder, alive = holder_of(run_dir)
    view = GridView(run_dir, holder, alive, None)
    try:
        view.status = read_status(run_dir)
    except DataError as error:
        view.problems.append(f"{error} (progress and timings unknown until the grid rewrites it)")
    config_data, finished, view.failures = _store_facts(run_dir, wait_s)
    phases = list(view.status.running) if view.status else []
    if alive:
        view.running = phases
    elif view.status is not None and view.status.state == "running":
        view.interrupted = phases  # the process is gone: killed, or its machine stopped
    if config_data is None:
        return view
    config = parse_config(config_data)
    running_cells = {cell for phase in view.running for cell in phase.cells}
    failed = {failure.cell_id for failure in view.failures}
    for cell in all_cell_ids(config):
        view.cells[cell] = (
            "finished" if cell in finished else "running" if cell in running_cells else "failed" if cell in failed else "pending"
        )
    if view.status is not None and view.status.executor == "local":
        view.estimate = estimate_left(config, run_dir, finished, view.status.phases, view.running, now)
    return view


def format_duration(seconds: float) -> str:
    """``1h 02m``, ``5m 03s``, ``12s``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _state_line(view: GridView, now: datetime) -> str:
    status = view.status
    if view.alive:
        updated = f"; status updated {format_duration((now - status.updated_at).total_seconds())} ago" if status else ""
        holder = view.holder.describe() if view.holder else "its lock file holds no readable record"
        return f"{view.run_dir}: running ({holder}{updated})"
    if view.interrupted or (status is not None and status.state == "running"):
        return f"{view.run_dir}: not running: the last grid stopped without finishing (killed?); `objlab run` resumes it"
    if status is not None:
        ended = f" at {status.updated_at:%Y-%m-%d %H:%M:%S} UTC"
        message = f" ({status.message})" if status.message else ""
        return f"{view.run_dir}: not running; the last grid {status.state}{ended}{message}"
    return f"{view.run_dir}: not running"


def _phase_text(phase: RunningPhase, now: datetime) -> str:
    cells = ", ".join(phase.cells) or phase.unit
    lines = "; ".join(
        f"{line.description}: {line.completed:g}/{line.total:g}" if line.total else f"{line.description}: {line.completed:g}"
        for line in phase.lines
    )
    return f"{cells}: {phase.phase} for {format_duration((now - phase.started_at).total_seconds())}" + (f" ({lines})" if lines else "")


def _phase_table(status: RunStatus) -> Table:
    table = Table("phase", "seconds", "count", "mean seconds", "failed", title="time per phase (every grid on this run directory)")
    for name in ("evaluate base", "train", "evaluate", "train+evaluate", "record"):
        done = [phase for phase in status.phases if phase.phase == name]
        if done:
            total = sum(phase.seconds for phase in done)
            failed = sum(not phase.ok for phase in done)
            table.add_row(name, f"{total:,.1f}", str(len(done)), f"{total / len(done):,.1f}", str(failed))
    return table


def _estimate_text(view: GridView) -> str:
    estimate = view.estimate
    if estimate is None:
        return "time left: not estimated (Ray grids run units in parallel)" if view.status else "time left: no timings yet"
    if not view.count("pending") and not view.count("running") and not view.count("failed"):
        return "time left: none (every cell has finished)"
    if estimate.complete:
        text = f"estimated time left: about {format_duration(estimate.seconds)}"
    elif estimate.seconds > 0:
        text = f"estimated time left: at least {format_duration(estimate.seconds)} (no rate measured yet for: {', '.join(estimate.unknown)})"
    else:
        return f"estimated time left: unknown until this run has measured {', '.join(estimate.unknown)}"
    return text + (f"; from this run's rates: {'; '.join(estimate.basis)}" if estimate.basis else "")


def render_status(view: GridView, console: Console, all_cells: bool = False, now: datetime | None = None) -> None:
    """Print ``view``: state, cell counts, running phases, timings, estimate, last failure."""
    now = now or utc_now()
    console.print(_state_line(view, now), highlight=False, soft_wrap=True)
    for problem in view.problems:
        console.print(f"warning: {problem}", highlight=False, soft_wrap=True)
    if view.cells:
        counts = ", ".join(f"{view.count(state)} {state}" for state in STATES)
        console.print(f"cells: {len(view.cells)} in the grid: {counts}", highlight=False)
    for phase in view.running:
        console.print(f"running: {_phase_text(phase, now)}", highlight=False, soft_wrap=True)
    for phase in view.interrupted:
        console.print(f"interrupted: {_phase_text(phase, now).split(' for ')[0]} (since {phase.started_at:%H:%M:%S} UTC)", highlight=False, soft_wrap=True)
    if view.status is not None and view.status.phases:
        console.print(_phase_table(view.status))
    if view.cells:
        console.print(_estimate_text(view), highlight=False, soft_wrap=True)
    if view.failures:
        last = view.failures[-1]
        console.print(
            f"last failure: {last.cell_id} in {last.phase} at {last.failed_at:%Y-%m-%d %H:%M:%S} UTC: {last.summary} "
            f"({len(view.failures)} failed cell(s) in all; `objlab report` lists them; `objlab run` retries them)",
            highlight=False, soft_wrap=True,
        )
    if all_cells and view.cells:
        table = Table("cell", "state")
        for cell, state in view.cells.items():
            table.add_row(cell, state)
        console.print(table)
