"""Running a grid: train and evaluate every unfinished cell, store every number, resume safely.

This is the driver: it takes the run directory's lock (one grid per directory), guards the
config against the run directory, works out which cells are still to run, hands the units to
an executor (``local``: one after another in this process; ``ray_backend``: Ray tasks) and
records every outcome the executor reports, through the one cell pipeline (``pipeline``). The
driver alone writes the store, opening it only for each write so that readers get in between.

A finished cell is never run again; a killed run restarts from the last checkpoint of its
unfinished unit and re-evaluates only cells whose results were not yet stored (judge verdicts
are cached in the store, so none is asked twice). A failing cell is recorded as failed and the
grid goes on (``fail_fast`` stops it instead); the next run retries it. The base model's
evaluation is the exception: every cell is compared with it, so its failure stops the grid.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from objlab.config import ExperimentConfig
from objlab.errors import StateError, StoreBusy
from objlab.evaluate.results.eval_result import EvalResult
from objlab.faults import ENV as FAULTS_ENV
from objlab.faults import parse_faults
from objlab.progress import Board, Line, board_or_quiet
from objlab.records.failure import CellFailure
from objlab.runner.grid import TrainUnit, all_cell_ids, base_cell_id, expand, snapshots_enabled
from objlab.runner.guard import guard_config
from objlab.runner.local import run_local
from objlab.runner.pipeline import (
    BaseOutcome,
    CellOutcome,
    record_base,
    record_outcome,
    stored_base,
)
from objlab.runner.run_lock import RunLock
from objlab.runner.run_store import RunStore
from objlab.runner.status import StatusTracker


class GridStopped(StateError):
    """The grid stopped at a failure: ``--fail-fast``, or the base model's evaluation failed."""


@dataclass
class GridSummary:
    run_dir: Path
    status: str
    cells_total: int
    cells_run: list[str] = field(default_factory=list)
    cells_failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def pending_units(config: ExperimentConfig, finished: set[str], model: str | None = None) -> list[TrainUnit]:
    return [unit for unit in expand(config, model) if any(cell.cell_id not in finished for cell in unit.cells)]


def write_config_copy(config: ExperimentConfig, run_dir: Path) -> None:
    target = run_dir / "config.yaml"
    target.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True), sort_keys=False))


def _failure_text(failure: CellFailure) -> str:
    return f"{failure.cell_id} failed in {failure.phase}: {failure.error_type}: {failure.message}"


class Recorder:
    """The driver's end of the pipeline: writes each outcome or failure the moment it arrives."""

    def __init__(self, store: RunStore, tracker: StatusTracker, summary: GridSummary, line: Line, board: Board, fail_fast: bool) -> None:
        self.store, self.tracker, self.summary, self.line, self.board = store, tracker, summary, line, board
        self.fail_fast = fail_fast
        self.bases: dict[str, EvalResult] = {}  # by base cell: each model's base evaluation

    def _record_failure(self, failure: CellFailure) -> None:
        with self.store.open() as store:
            store.record_failure(failure)
        self.summary.cells_failed.append(failure.cell_id)
        self.board.log(f"{_failure_text(failure).splitlines()[0]} (recorded; the next `objlab run` retries it)")

    def on_base(self, outcome: BaseOutcome | CellFailure) -> None:
        if isinstance(outcome, CellFailure):
            self._record_failure(outcome)
            raise GridStopped(
                f"the base model's evaluation failed, and every cell is compared with it, so the grid stops "
                f"(the failure is recorded; `objlab run` again retries it):\n{outcome.error_type}: {outcome.message}"
            )
        with self.tracker.phase(outcome.cell_id, "record", [outcome.cell_id]), self.store.open() as store:
            record_base(store, outcome)
            self.bases[outcome.cell_id] = stored_base(store, outcome.cell_id)
        self.summary.cells_run.append(outcome.cell_id)
        self.line.advance(1, info=outcome.cell_id)

    def on_outcome(self, outcome: CellOutcome | CellFailure) -> None:
        if isinstance(outcome, CellOutcome):
            outcome = self._record(outcome)
        if isinstance(outcome, CellFailure):
            self._record_failure(outcome)
            if self.fail_fast:
                raise GridStopped(f"--fail-fast: stopped at the first failure (recorded; `objlab run` again retries it):\n{_failure_text(outcome)}")

    def _record(self, outcome: CellOutcome) -> CellFailure | None:
        """Write a cell; a cell that cannot be written (a value the store refuses) is a failure
        like any other. A store that stays busy stops the grid: nothing could be written."""
        cell = outcome.cell
        try:
            with self.tracker.phase(cell.cell_id, "record", [cell.cell_id], cell.objective), self.store.open() as store:
                if cell.base_id not in self.bases:
                    self.bases[cell.base_id] = stored_base(store, cell.base_id)
                record_outcome(store, outcome, self.bases[cell.base_id], self.summary.run_dir)
        except StoreBusy:
            raise
        except Exception as error:
            return CellFailure.from_exception(cell.cell_id, cell.cell_id, "record", error)
        self.summary.cells_run.append(cell.cell_id)
        self.line.advance(1, info=cell.cell_id)
        return None


def run_grid(
    config: ExperimentConfig, run_dir: Path, *, ray: str | None = None, board: Board | None = None, fail_fast: bool = False
) -> GridSummary:
    """Run (or resume, or extend) the grid of ``config`` in ``run_dir``."""
    started = time.perf_counter()
    if config.eval.lm_eval is not None:
        from objlab.evaluate.axes.harness import require_lm_eval

        require_lm_eval()  # before any cell trains
    run_dir = Path(run_dir)
    parse_faults(os.environ.get(FAULTS_ENV, ""))  # a malformed fault spec fails here, not mid-grid
    run_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(run_dir) as lock, board_or_quiet(board) as active:
        if lock.took_over is not None:
            active.log(f"{run_dir}: the last `objlab run` here ({lock.took_over.describe()}) ended without releasing it; taking over")
        tracker = StatusTracker(run_dir, "ray" if ray else "local", active.log)
        active.observe(tracker)
        try:
            summary = _run(config, run_dir, ray, active, tracker, fail_fast)
        except BaseException as error:
            tracker.finish("stopped", (str(error) or type(error).__name__).splitlines()[0])
            raise
        finally:
            active.observe(None)
        failed = summary.cells_failed
        tracker.finish("finished", f"{len(failed)} cell(s) failed: {', '.join(failed)}" if failed else "")
    summary.seconds = time.perf_counter() - started
    return summary


def _run(config: ExperimentConfig, run_dir: Path, ray: str | None, board: Board, tracker: StatusTracker, fail_fast: bool) -> GridSummary:
    store = RunStore(run_dir, on_wait=lambda holder: board.log(f"{run_dir}: the results store is being read by {holder}; waiting"))
    with store.open() as opened:
        status = guard_config(opened, config, str(run_dir))
        finished = opened.finished_cells()
    write_config_copy(config, run_dir)
    cells = all_cell_ids(config)
    total = len(cells)
    summary = GridSummary(run_dir, status, total)
    mode = "snapshots: one run per (objective, seed)" if snapshots_enabled(config) else "one run per cell"
    models = config.per_model()
    several = f" over {len(models)} models, one after another" if len(models) > 1 else ""
    board.log(f"{run_dir}: {status}; {sum(cell not in finished for cell in cells)} of {total} cells to run ({mode}){several}")
    grid_line = board.line("grid", total)
    grid_line.set(sum(cell in finished for cell in cells))
    recorder = Recorder(store, tracker, summary, grid_line, board, fail_fast)
    for model, single in models:  # each model: its base model loaded once, its base cell, its cells
        units = pending_units(single, finished, model)
        base_pending = base_cell_id(model) not in finished
        if not units and not base_pending:
            continue
        if ray:
            from objlab.runner.ray_backend import run_on_ray

            run_on_ray(single, run_dir, units, finished, base_pending, store, ray, board, recorder.on_base, recorder.on_outcome, tracker, model)
        else:
            run_local(single, run_dir, units, finished, base_pending, store, board, recorder.on_base, recorder.on_outcome, tracker, model)
    grid_line.close()
    return summary
