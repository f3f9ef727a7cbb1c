"""The cell pipeline, written once: train a unit, evaluate its cells, record them in the store.

Both executors (``local`` and ``ray_backend``) run exactly these functions; they differ only in
where a unit runs and how its outcome travels back to the one process that writes the store.

- ``evaluate_base`` and ``train_and_evaluate`` run where the model is (a worker on Ray): they
  return ``CellOutcome`` records, plain data that pickles.
- ``record_base`` and ``record_outcome`` run in the driver: they add the paired comparison
  with the base model and write each cell atomically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from objlab.config import ExperimentConfig
from objlab.evaluate.evaluator import (
    EvalResult,
    compare_with_base,
    evaluate,
    evaluate_many,
)
from objlab.evaluate.results.evidence import evidence_metrics
from objlab.evaluate.scoring.cache import VerdictCache
from objlab.evaluate.session import EvalSession
from objlab.progress import Board
from objlab.records.adapter import AdapterManifest
from objlab.runner.grid import Cell, TrainUnit
from objlab.store import BASE_CELL, ResultsStore
from objlab.train.loop import train
from objlab.train.outputs import TRAIN_LOG, read_log


@dataclass
class CellOutcome:
    """Everything a cell contributes to the store (built on the machine that ran it)."""

    cell: Cell
    result: EvalResult
    train_manifest: AdapterManifest
    log_rows: list[dict]
    eval_seconds: float


@dataclass
class BaseOutcome:
    """The base model's evaluation."""

    result: EvalResult
    eval_seconds: float


def evaluate_base(config: ExperimentConfig, session: EvalSession, cache: VerdictCache, board: Board) -> BaseOutcome:
    started = time.perf_counter()
    with board.scope("base"):
        result = evaluate(config, session, None, board=board, verdict_cache=cache)
    return BaseOutcome(result, time.perf_counter() - started)


def train_and_evaluate(
    config: ExperimentConfig, unit: TrainUnit, run_dir: Path, skip: set[str], session: EvalSession, cache: VerdictCache, board: Board
) -> list[CellOutcome]:
    """Train one unit (resuming if it was interrupted) and evaluate its unfinished cells.

    On GPU the unit's adapters are evaluated together (their prompts share mixed-adapter
    batches, with the same outputs as alone; each cell is charged an equal share of the time).
    On CPU batches are small and peft's mixed forward loops over adapters in every LoRA layer,
    so one adapter at a time is faster (measured by benchmarks/grid_eval.py)."""
    with board.scope(unit.name):
        manifests = train(unit.request(config, run_dir), board=board)
    cells = [cell for cell in unit.cells if cell.cell_id not in skip]
    together = session.max_loaded if session.device.type == "cuda" else 1
    outcomes = []
    for start in range(0, len(cells), together):
        group = cells[start : start + together]
        started = time.perf_counter()
        with board.scope(", ".join(cell.cell_id for cell in group)):
            results = evaluate_many(config, session, [cell.adapter_dir(run_dir) for cell in group], board=board, verdict_cache=cache)
        share = (time.perf_counter() - started) / len(group)
        for cell, result in zip(group, results):
            log_rows = read_log(cell.adapter_dir(run_dir) / TRAIN_LOG)
            outcomes.append(CellOutcome(cell, result, manifests[cell.budget], log_rows, share))
    return outcomes


def stored_base(store: ResultsStore) -> EvalResult:
    """The base model's stored evaluation, for paired comparisons with every cell."""
    return EvalResult(metrics=store.cell_metrics(BASE_CELL), items=store.cell_items(BASE_CELL))


def record_base(store: ResultsStore, outcome: BaseOutcome) -> None:
    result = outcome.result
    store.record_cell(BASE_CELL, kind="base", metrics=result.metrics, items=result.items, eval_info=result.info, eval_seconds=outcome.eval_seconds)


def record_outcome(store: ResultsStore, outcome: CellOutcome, base: EvalResult, run_dir: Path) -> None:
    cell, result = outcome.cell, outcome.result
    comparisons = compare_with_base(result, base)
    evidence = evidence_metrics(outcome.log_rows, cell.objective)
    store.record_cell(
        cell.cell_id,
        kind="adapter",
        metrics=list(result.metrics) + list(comparisons) + evidence,
        items=result.items,
        eval_info=result.info,
        train_manifest=outcome.train_manifest,
        log_rows=outcome.log_rows,
        objective=cell.objective,
        seed=cell.seed,
        budget=cell.budget,
        adapter_dir=str(cell.adapter_dir(run_dir).relative_to(run_dir)),
        train_seconds=outcome.train_manifest.wall_time_s,
        eval_seconds=outcome.eval_seconds,
    )
