"""How long the rest of a grid should take, from the rates measured in this very run.

A plan made before a run (``objlab run --plan``) scales benchmark rates to the model; once the
run has started its own phases are the better witness: the same model, data, machine and
objectives. The estimate therefore uses only ``status.json``'s finished phases:

- training: seconds per task token, per objective (summed over that objective's finished
  training phases: ``sum(seconds) / sum(tokens)``); an objective not measured yet borrows the
  rate of all measured ones together (said so in the basis). A training phase that is running
  extrapolates its own progress line instead: seconds per step so far (up to the line's last
  update) times the steps left, less the time since that update (at most one step's worth).
  A pending unit resumed from a checkpoint has only the tokens past the checkpoint left.
- evaluation: seconds per evaluated cell (all finished evaluation phases), the base model's
  evaluation apart; a running evaluation counts its elapsed time as done.

Whatever has no measured rate yet is named instead of guessed, and the figure is then a lower
bound. Failed phases are left out of the rates (they ended early). Ray grids run units in
parallel, so their serial time left is not estimated.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from objlab.config import ExperimentConfig
from objlab.records.run_status import PhaseRecord, RunningPhase
from objlab.runner.grid import TrainUnit, expand
from objlab.store import BASE_CELL
from objlab.train.checkpoint import checkpoint_progress
from objlab.train.outputs import is_complete


@dataclass
class Rates:
    """This run's measured rates (see the module docstring)."""

    train: dict[str, float] = field(default_factory=dict)  # objective -> seconds per task token
    train_overall: float | None = None
    eval_per_cell: float | None = None
    base_eval: float | None = None
    counts: dict[str, int] = field(default_factory=dict)  # what each rate rests on

    @classmethod
    def measure(cls, phases: list[PhaseRecord]) -> Rates:
        seconds, tokens = defaultdict(float), defaultdict(int)
        eval_seconds, eval_cells, base = 0.0, 0, []
        for phase in (p for p in phases if p.ok):
            if phase.phase == "train" and phase.tokens > 0 and phase.objective:
                seconds[phase.objective] += phase.seconds
                tokens[phase.objective] += phase.tokens
            elif phase.phase == "evaluate" and phase.cells:
                eval_seconds += phase.seconds
                eval_cells += len(phase.cells)
            elif phase.phase == "evaluate base":
                base.append(phase.seconds)
        rates = cls({objective: seconds[objective] / tokens[objective] for objective in tokens})
        if tokens:
            rates.train_overall = sum(seconds.values()) / sum(tokens.values())
        rates.eval_per_cell = eval_seconds / eval_cells if eval_cells else None
        rates.base_eval = sum(base) / len(base) if base else None
        rates.counts = {"train units": sum(1 for p in phases if p.ok and p.phase == "train" and p.tokens > 0),
                        "evaluated cells": eval_cells, "base evaluations": len(base)}
        return rates


@dataclass
class Estimate:
    """Seconds left for what has a rate; ``unknown`` names what has none (then a lower bound)."""

    seconds: float = 0.0
    unknown: list[str] = field(default_factory=list)
    basis: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.unknown

    def add(self, seconds: float | None, missing: str) -> None:
        if seconds is None:
            if missing not in self.unknown:
                self.unknown.append(missing)
        else:
            self.seconds += max(0.0, seconds)


def _running(running: list[RunningPhase], unit: str, phase: str) -> RunningPhase | None:
    return next((entry for entry in running if entry.unit == unit and entry.phase == phase), None)


def _training_left(unit: TrainUnit, untrained_budget: int, run_dir: Path, rates: Rates, running: list[RunningPhase], now: datetime) -> tuple[float | None, str]:
    """Seconds of training left for ``unit`` (to ``untrained_budget`` tokens), and what is missing."""
    phase = _running(running, unit.name, "train")
    line = next((line for line in phase.lines if line.total), None) if phase else None
    if line is not None and line.completed > line.first_completed:
        per_step = (line.updated_at - line.started_at).total_seconds() / (line.completed - line.first_completed)
        into_step = min((now - line.updated_at).total_seconds(), per_step)  # the step under way is at most done
        return per_step * (line.total - line.completed) - into_step, ""
    progress = checkpoint_progress(unit.work_dir(run_dir))
    tokens_left = untrained_budget - (progress.budget_tokens if progress else 0)
    rate = rates.train.get(unit.objective, rates.train_overall)
    return (None if rate is None else rate * tokens_left), f"training ({unit.objective})"


def _evaluation_left(unit: TrainUnit, cells: list[str], rates: Rates, running: list[RunningPhase], now: datetime) -> float | None:
    if rates.eval_per_cell is None:
        return None
    seconds = rates.eval_per_cell * len(cells)
    phase = _running(running, unit.name, "evaluate")
    if phase is not None:
        seconds -= min((now - phase.started_at).total_seconds(), rates.eval_per_cell * len(phase.cells))
    return seconds


def estimate_left(
    config: ExperimentConfig, run_dir: Path, finished: set[str], phases: list[PhaseRecord], running: list[RunningPhase], now: datetime
) -> Estimate:
    """The time the unfinished cells of ``config``'s grid should still take (module docstring)."""
    rates = Rates.measure(phases)
    estimate = Estimate(basis=_basis(rates))
    borrowed = sorted({unit.objective for unit in expand(config)} - set(rates.train)) if rates.train else []
    if borrowed:
        estimate.basis.append(f"{', '.join(borrowed)} not measured yet: the other objectives' rate")
    if BASE_CELL not in finished:
        base = rates.base_eval if rates.base_eval is not None else rates.eval_per_cell
        phase = _running(running, BASE_CELL, "evaluate base")
        elapsed = (now - phase.started_at).total_seconds() if phase else 0.0
        estimate.add(None if base is None else base - min(elapsed, base), "evaluation")
    for unit in expand(config):
        pending = [cell for cell in unit.cells if cell.cell_id not in finished]
        if not pending:
            continue
        untrained = [cell.budget for cell in pending if not is_complete(cell.adapter_dir(run_dir))]
        if untrained:
            estimate.add(*_training_left(unit, max(untrained), run_dir, rates, running, now))
        estimate.add(_evaluation_left(unit, [cell.cell_id for cell in pending], rates, running, now), "evaluation")
    return estimate


def _basis(rates: Rates) -> list[str]:
    parts = [f"training {objective} {rate * 1000:.3g} s per 1k tokens" for objective, rate in sorted(rates.train.items())]
    if rates.eval_per_cell is not None:
        parts.append(f"evaluation {rates.eval_per_cell:.3g} s per cell ({rates.counts['evaluated cells']} cells)")
    if rates.base_eval is not None:
        parts.append(f"base model evaluation {rates.base_eval:.3g} s")
    return parts
