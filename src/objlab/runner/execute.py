"""Running a grid: train and evaluate every unfinished cell, store every number, resume safely.

On one machine the training units run in sequence and one evaluation session (the base model
loaded once) evaluates the base and every adapter. A finished cell is never run again; a killed
run restarts from the last checkpoint of its unfinished unit and re-evaluates only cells whose
results were not yet stored (judge verdicts are cached in the store, so none is asked twice).
With ``ray`` set, units are Ray tasks (see ``ray_backend``) and the driver alone writes the store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from objlab.config import ExperimentConfig
from objlab.evaluate.evaluator import EvalResult, compare_with_base, evaluate, evaluate_many
from objlab.evaluate.session import EvalSession
from objlab.progress import Board, board_or_quiet
from objlab.runner.grid import Cell, TrainUnit, expand, snapshots_enabled
from objlab.runner.guard import guard_config
from objlab.store import BASE_CELL, ResultsStore
from objlab.train.loop import train
from objlab.train.outputs import TRAIN_LOG, read_log


@dataclass
class GridSummary:
    run_dir: Path
    status: str
    cells_total: int
    cells_run: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class CellOutcome:
    """Everything a cell contributes to the store (built on the machine that ran it)."""

    cell: Cell
    result: EvalResult
    train_manifest: dict
    log_rows: list[dict]
    eval_seconds: float


def pending_units(config: ExperimentConfig, finished: set[str]) -> list[TrainUnit]:
    return [unit for unit in expand(config) if any(cell.cell_id not in finished for cell in unit.cells)]


def base_result(store: ResultsStore) -> EvalResult:
    """The base model's stored evaluation, for paired comparisons with every cell."""
    return EvalResult(metrics=store.cell_metrics(BASE_CELL), items=store.cell_items(BASE_CELL), info={})


def record_base(store: ResultsStore, result: EvalResult, seconds: float) -> None:
    store.record_cell(BASE_CELL, kind="base", metrics=result.metrics, items=result.items, eval_manifest=result.info, eval_seconds=seconds)


def record_outcome(store: ResultsStore, outcome: CellOutcome, base: EvalResult, run_dir: Path) -> None:
    cell, result = outcome.cell, outcome.result
    comparisons = compare_with_base(result, base)
    store.record_cell(
        cell.cell_id,
        kind="adapter",
        metrics=list(result.metrics) + list(comparisons),
        items=result.items,
        eval_manifest=result.info,
        train_manifest=outcome.train_manifest,
        log_rows=outcome.log_rows,
        objective=cell.objective,
        seed=cell.seed,
        budget=cell.budget,
        adapter_dir=str(cell.adapter_dir(run_dir).relative_to(run_dir)),
        train_seconds=outcome.train_manifest.get("wall_time_s"),
        eval_seconds=outcome.eval_seconds,
    )


def train_and_evaluate(
    config: ExperimentConfig, unit: TrainUnit, run_dir: Path, skip: set[str], session: EvalSession, cache, board: Board
) -> list[CellOutcome]:
    """Train one unit (resuming if it was interrupted) and evaluate its unfinished cells.

    On GPU the unit's adapters are evaluated together (their prompts share mixed-adapter
    batches, with the same outputs as alone; each cell is charged an equal share of the time).
    On CPU batches are small and peft's mixed forward loops over adapters in every LoRA layer,
    so one adapter at a time is faster (measured by benchmarks/grid_eval.py)."""
    manifests = train(unit.request(config, run_dir), board=board)
    cells = [cell for cell in unit.cells if cell.cell_id not in skip]
    together = session.max_loaded if session.device.type == "cuda" else 1
    outcomes = []
    for start in range(0, len(cells), together):
        group = cells[start : start + together]
        started = time.perf_counter()
        results = evaluate_many(config, session, [cell.adapter_dir(run_dir) for cell in group], board=board, verdict_cache=cache)
        share = (time.perf_counter() - started) / len(group)
        for cell, result in zip(group, results):
            log_rows = read_log(cell.adapter_dir(run_dir) / TRAIN_LOG)
            outcomes.append(CellOutcome(cell, result, manifests[cell.budget], log_rows, share))
    return outcomes


def write_config_copy(config: ExperimentConfig, run_dir: Path) -> None:
    target = run_dir / "config.yaml"
    target.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True), sort_keys=False))


def run_grid(config: ExperimentConfig, run_dir: Path, *, ray: str | None = None, board: Board | None = None) -> GridSummary:
    """Run (or resume, or extend) the grid of ``config`` in ``run_dir``."""
    started = time.perf_counter()
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
        if ray:
            from objlab.runner.ray_backend import run_units_on_ray

            run_units_on_ray(config, run_dir, store, units, finished, ray, active, grid_line, summary)
        else:
            run_units_locally(config, run_dir, store, units, finished, active, grid_line, summary)
        grid_line.close()
    summary.seconds = time.perf_counter() - started
    return summary


def run_units_locally(config, run_dir, store, units, finished, board, grid_line, summary) -> None:
    session = EvalSession(config)
    if BASE_CELL not in finished:
        started = time.perf_counter()
        result = evaluate(config, session, None, board=board, verdict_cache=store)
        record_base(store, result, time.perf_counter() - started)
        summary.cells_run.append(BASE_CELL)
        grid_line.advance(1, info="base model")
    base = base_result(store)
    for unit in units:
        for outcome in train_and_evaluate(config, unit, run_dir, finished, session, store, board):
            record_outcome(store, outcome, base, run_dir)
            summary.cells_run.append(outcome.cell.cell_id)
            grid_line.advance(1, info=outcome.cell.cell_id)
