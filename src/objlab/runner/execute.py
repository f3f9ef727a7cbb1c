"""Running a grid: train and evaluate every unfinished cell, store every number, resume safely.

This is the driver: it guards the config against the run directory, works out which cells are
still to run, hands the units to an executor (``local``: one after another in this process;
``ray_backend``: Ray tasks) and records every outcome the executor reports, through the one
cell pipeline (``pipeline``). The driver alone writes the store. A finished cell is never run
again; a killed run restarts from the last checkpoint of its unfinished unit and re-evaluates
only cells whose results were not yet stored (judge verdicts are cached in the store, so none is
asked twice).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from objlab.config import ExperimentConfig
from objlab.evaluate.results.eval_result import EvalResult
from objlab.progress import Board, board_or_quiet
from objlab.runner.grid import TrainUnit, expand, snapshots_enabled
from objlab.runner.guard import guard_config
from objlab.runner.local import run_local
from objlab.runner.pipeline import (
    BaseOutcome,
    CellOutcome,
    record_base,
    record_outcome,
    stored_base,
)
from objlab.store import BASE_CELL, ResultsStore


@dataclass
class GridSummary:
    run_dir: Path
    status: str
    cells_total: int
    cells_run: list[str] = field(default_factory=list)
    seconds: float = 0.0


def pending_units(config: ExperimentConfig, finished: set[str]) -> list[TrainUnit]:
    return [unit for unit in expand(config) if any(cell.cell_id not in finished for cell in unit.cells)]


def write_config_copy(config: ExperimentConfig, run_dir: Path) -> None:
    target = run_dir / "config.yaml"
    target.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True), sort_keys=False))


def run_grid(config: ExperimentConfig, run_dir: Path, *, ray: str | None = None, board: Board | None = None) -> GridSummary:
    """Run (or resume, or extend) the grid of ``config`` in ``run_dir``."""
    started = time.perf_counter()
    if config.eval.lm_eval is not None:
        from objlab.evaluate.axes.harness import require_lm_eval

        require_lm_eval()  # before any cell trains
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with ResultsStore.in_run_dir(run_dir) as store, board_or_quiet(board) as active:
        status = guard_config(store, config, str(run_dir))
        write_config_copy(config, run_dir)
        finished = store.finished_cells()
        units = pending_units(config, finished)
        total = 1 + sum(len(unit.cells) for unit in expand(config))
        summary = GridSummary(run_dir, status, total)
        mode = "snapshots: one run per (objective, seed)" if snapshots_enabled(config) else "one run per cell"
        active.log(f"{run_dir}: {status}; {total - len(finished)} of {total} cells to run ({mode})")
        grid_line = active.line("grid", total)
        grid_line.set(len(finished))
        base: list[EvalResult] = [stored_base(store)] if BASE_CELL in finished else []

        def on_base(outcome: BaseOutcome) -> None:
            record_base(store, outcome)
            base.append(stored_base(store))
            summary.cells_run.append(BASE_CELL)
            grid_line.advance(1, info="base model")

        def on_outcome(outcome: CellOutcome) -> None:
            record_outcome(store, outcome, base[0], run_dir)
            summary.cells_run.append(outcome.cell.cell_id)
            grid_line.advance(1, info=outcome.cell.cell_id)

        base_pending = BASE_CELL not in finished
        if ray:
            from objlab.runner.ray_backend import run_on_ray

            run_on_ray(config, run_dir, units, finished, base_pending, store, ray, active, on_base, on_outcome)
        else:
            run_local(config, run_dir, units, finished, base_pending, store, active, on_base, on_outcome)
        grid_line.close()
    summary.seconds = time.perf_counter() - started
    return summary
