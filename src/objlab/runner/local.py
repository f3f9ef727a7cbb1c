"""The local executor: the grid's units one after another in this process.

One evaluation session (the base model loaded once) serves the base evaluation and every
adapter of one model (``model``: its key in a grid over several, run one model after another); each cell is recorded (or its failure is) the moment it ends, so a killed grid loses
at most the cell that was running (and its unit resumes from its last checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from objlab.config import ExperimentConfig
from objlab.scoring.cache import VerdictCache
from objlab.evaluate.session import EvalSession
from objlab.progress import Board
from objlab.records.failure import CellFailure
from objlab.runner.grid import TrainUnit
from objlab.runner.pipeline import (
    BaseOutcome,
    Emit,
    evaluate_base,
    train_and_evaluate,
)
from objlab.runner.status import PhaseTracker


def run_local(
    config: ExperimentConfig,
    run_dir: Path,
    units: list[TrainUnit],
    finished: set[str],
    base_pending: bool,
    cache: VerdictCache,
    board: Board,
    on_base: Callable[[BaseOutcome | CellFailure], None],
    on_outcome: Emit,
    tracker: PhaseTracker,
    model: str | None = None,
) -> None:
    session = EvalSession(config)
    if base_pending:
        on_base(evaluate_base(config, session, cache, board, tracker, model))
    for unit in units:
        train_and_evaluate(config, unit, run_dir, finished, session, cache, board, on_outcome, tracker)
