"""The cell pipeline, written once: train a unit, evaluate its cells, record them in the store.

Both executors (``local`` and ``ray_backend``) run exactly these functions; they differ only in
where a unit runs and how its outcome travels back to the one process that writes the store.

- ``evaluate_base`` and ``train_and_evaluate`` run where the model is (a worker on Ray). They
  do not raise for a failing cell: each cell ends as a ``CellOutcome`` or a ``CellFailure``
  (plain data that pickles), handed to ``emit`` as soon as it exists, and the unit goes on.
  Training that fails part-way leaves the snapshots it had already written: those cells are
  evaluated, the rest fail. A cell whose judge or translator requests still failed after their
  retries fails as well (``JudgeUnavailable``): the verdicts that did arrive are already in the
  store, so the re-run asks only for the others.
- ``record_base``, ``record_outcome`` and ``record_failure`` run in the driver: they add the
  paired comparison with the base model and write each cell atomically.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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
from objlab.scoring.cache import VerdictCache
from objlab.scoring.judges import is_request_failure
from objlab.evaluate.session import EvalSession
from objlab.progress import Board
from objlab.records.adapter import AdapterManifest
from objlab.records.failure import CellFailure
from objlab.records.train_log import StepLog
from objlab.runner.grid import Cell, TrainUnit, base_cell_id
from objlab.runner.status import NO_TRACKING, PhaseTracker
from objlab.store import BASE_CELL, ResultsStore
from objlab.train.loop import train
from objlab.train.outputs import TRAIN_LOG, is_complete, read_log, read_manifest


class JudgeUnavailable(RuntimeError):
    """Some of a cell's judge or translator requests failed even after their retries."""


@dataclass
class CellOutcome:
    """Everything a cell contributes to the store (built on the machine that ran it)."""

    cell: Cell
    result: EvalResult
    train_manifest: AdapterManifest
    log_rows: list[StepLog]
    eval_seconds: float


@dataclass
class BaseOutcome:
    """The base model's evaluation (``cell_id``: ``base``, or ``<key>/base`` for one model of several)."""

    result: EvalResult
    eval_seconds: float
    cell_id: str = BASE_CELL
    model: str | None = None


Emit = Callable[[CellOutcome | CellFailure], None]


def free_accelerator_memory() -> None:
    """After a failure (out of memory above all) the next cell starts from an empty cache."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def unavailable_judge(result: EvalResult) -> JudgeUnavailable | None:
    """The error to fail a cell with when judge or translator requests failed for good."""
    failed = [item for item in result.items if is_request_failure(item.extra.get("error"))]
    if not failed:
        return None
    return JudgeUnavailable(
        f"{len(failed)} of {len(result.items)} items could not be scored: the judge or translator request still "
        f"failed after its retries (first: {failed[0].extra['error']}). Verdicts that arrived are kept in the "
        "results store; the next `objlab run` asks only for the others."
    )


def evaluate_base(
    config: ExperimentConfig, session: EvalSession, cache: VerdictCache, board: Board, tracker: PhaseTracker = NO_TRACKING,
    model: str | None = None,
) -> BaseOutcome | CellFailure:
    base_id = base_cell_id(model)
    with tracker.phase(base_id, "evaluate base", [base_id]) as phase:
        started = time.perf_counter()
        try:
            with board.scope(base_id):
                result = evaluate(config, session, None, board=board, verdict_cache=cache)
            error = unavailable_judge(result)
        except Exception as caught:
            free_accelerator_memory()
            error = caught
        if error is not None:
            phase.ok = False
            return CellFailure.from_exception(base_id, base_id, "evaluate base", error)
    return BaseOutcome(result, time.perf_counter() - started, base_id, model)


def trained_tokens(manifest: AdapterManifest, log_rows: list[StepLog]) -> int:
    """Task tokens this process trained (a resumed run started at ``resumed_from_step``)."""
    start = manifest.resumed_from_step
    before = log_rows[start - 1].budget_tokens if 0 < start <= len(log_rows) else 0
    return manifest.budget_tokens - before


def _train(
    config: ExperimentConfig, unit: TrainUnit, run_dir: Path, cells: list[Cell], board: Board, tracker: PhaseTracker
) -> tuple[dict[int, AdapterManifest], list[CellFailure]]:
    """The unit's manifests by budget, and a failure for each cell that training did not reach."""
    request = unit.request(config, run_dir)
    if all(is_complete(path) for path in request.outputs.values()):
        return {budget: read_manifest(path) for budget, path in request.outputs.items()}, []
    with tracker.phase(unit.name, "train", [cell.cell_id for cell in cells], unit.objective) as phase:
        try:
            with board.scope(unit.name):
                manifests = train(request, board=board)
        except Exception as error:
            phase.ok = False
            free_accelerator_memory()
            done = {cell.budget: read_manifest(cell.adapter_dir(run_dir)) for cell in cells if is_complete(cell.adapter_dir(run_dir))}
            return done, [CellFailure.from_exception(c.cell_id, unit.name, "train", error) for c in cells if c.budget not in done]
        largest = max(request.outputs)
        phase.tokens = trained_tokens(manifests[largest], read_log(request.outputs[largest] / TRAIN_LOG))
    return manifests, []


def _evaluate_group(
    config: ExperimentConfig, unit: TrainUnit, group: list[Cell], run_dir: Path, manifests: dict[int, AdapterManifest],
    session: EvalSession, cache: VerdictCache, board: Board, tracker: PhaseTracker,
) -> list[CellOutcome | CellFailure]:
    with tracker.phase(unit.name, "evaluate", [cell.cell_id for cell in group], unit.objective) as phase:
        started = time.perf_counter()
        try:
            with board.scope(", ".join(cell.cell_id for cell in group)):
                results = evaluate_many(config, session, [cell.adapter_dir(run_dir) for cell in group], board=board, verdict_cache=cache)
        except Exception as error:
            phase.ok = False
            free_accelerator_memory()
            return [CellFailure.from_exception(cell.cell_id, unit.name, "evaluate", error) for cell in group]
        share = (time.perf_counter() - started) / len(group)
        ended: list[CellOutcome | CellFailure] = []
        for cell, result in zip(group, results):
            error = unavailable_judge(result)
            if error is not None:
                phase.ok = False
                ended.append(CellFailure.from_exception(cell.cell_id, unit.name, "evaluate", error))
            else:
                log_rows = read_log(cell.adapter_dir(run_dir) / TRAIN_LOG)
                ended.append(CellOutcome(cell, result, manifests[cell.budget], log_rows, share))
    return ended


def train_and_evaluate(
    config: ExperimentConfig, unit: TrainUnit, run_dir: Path, skip: set[str], session: EvalSession, cache: VerdictCache,
    board: Board, emit: Emit, tracker: PhaseTracker = NO_TRACKING,
) -> None:
    """Train one unit (resuming if it was interrupted), evaluate its unfinished cells, and
    ``emit`` an outcome or a failure for each as soon as it is known.

    On GPU the unit's adapters are evaluated together (their prompts share mixed-adapter
    batches, with the same outputs as alone; each cell is charged an equal share of the time).
    On CPU batches are small and peft's mixed forward loops over adapters in every LoRA layer,
    so one adapter at a time is faster (measured by benchmarks/grid_eval.py)."""
    cells = [cell for cell in unit.cells if cell.cell_id not in skip]
    manifests, failures = _train(config, unit, run_dir, cells, board, tracker)
    for failure in failures:
        emit(failure)
    ready = [cell for cell in cells if cell.budget in manifests]
    together = session.max_loaded if session.device.type == "cuda" else 1
    for start in range(0, len(ready), together):
        for ended in _evaluate_group(config, unit, ready[start : start + together], run_dir, manifests, session, cache, board, tracker):
            emit(ended)


def stored_base(store: ResultsStore, base_id: str = BASE_CELL) -> EvalResult:
    """The base model's stored evaluation, for paired comparisons with every cell of its model."""
    return EvalResult(metrics=store.cell_metrics(base_id), items=store.cell_items(base_id))


def record_base(store: ResultsStore, outcome: BaseOutcome) -> None:
    result = outcome.result
    store.record_cell(outcome.cell_id, kind="base", metrics=result.metrics, items=result.items, eval_info=result.info,
                      eval_seconds=outcome.eval_seconds, model=outcome.model)


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
        model=cell.model,
        adapter_dir=str(cell.adapter_dir(run_dir).relative_to(run_dir)),
        train_seconds=outcome.train_manifest.wall_time_s,
        eval_seconds=outcome.eval_seconds,
    )
