"""The local executor: the grid's units one after another in this process.

One evaluation session (the base model loaded once) serves the base evaluation and every
adapter; each outcome is recorded as soon as its unit is done, so a killed grid loses at most
the unit that was running (and that one resumes from its last checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from objlab.config import ExperimentConfig
from objlab.evaluate.scoring.cache import VerdictCache
from objlab.evaluate.session import EvalSession
from objlab.progress import Board
from objlab.runner.grid import TrainUnit
from objlab.runner.pipeline import (
    BaseOutcome,
    CellOutcome,
    evaluate_base,
    train_and_evaluate,
)


def run_local(
    config: ExperimentConfig,
    run_dir: Path,
    units: list[TrainUnit],
    finished: set[str],
    base_pending: bool,
    cache: VerdictCache,
    board: Board,
    on_base: Callable[[BaseOutcome], None],
    on_outcome: Callable[[CellOutcome], None],
) -> None:
    session = EvalSession(config)
    if base_pending:
        on_base(evaluate_base(config, session, cache, board))
    for unit in units:
        for outcome in train_and_evaluate(config, unit, run_dir, finished, session, cache, board):
            on_outcome(outcome)
