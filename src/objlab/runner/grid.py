"""Expanding a config into the grid: cells, and the training runs that produce them.

A *cell* is one (objective, seed, budget) adapter, plus the untouched base model (cell
``base``). A *training unit* is one call of the training loop: with the budget-independent
schedule and ``runner.snapshots`` (the defaults) one unit per (objective, seed) yields every
budget; otherwise one unit per cell. The run directory layout::

    RUN_DIR/results.duckdb                               the results store
    RUN_DIR/config.yaml                                  the config the run was started with
    RUN_DIR/adapters/<objective>/seed-<s>/budget-<B>/    one adapter per cell (peft format)
    RUN_DIR/work/<objective>/seed-<s>[/budget-<B>]/      checkpoints and the unit's full log
    RUN_DIR/report/                                      report.html and the plots as PNG

A grid over several models (``models:``) is one such grid per model in one run directory and
one store: every cell id, adapter and work folder is prefixed with the model's key
(``llama/sft/seed-0/budget-25000``, ``adapters/llama/sft/...``), and each model has its own
base cell (``llama/base``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from objlab.config import ExperimentConfig
from objlab.store import BASE_CELL
from objlab.train.loop import TrainRequest
from objlab.train.schedule import budget_independent


def _prefixed(model: str | None, name: str) -> str:
    return name if model is None else f"{model}/{name}"


@dataclass(frozen=True)
class Cell:
    objective: str
    seed: int
    budget: int
    model: str | None = None  # the model's key in a grid over several models

    @property
    def cell_id(self) -> str:
        return _prefixed(self.model, f"{self.objective}/seed-{self.seed}/budget-{self.budget}")

    @property
    def base_id(self) -> str:
        """The base cell this cell is compared with (its own model's)."""
        return base_cell_id(self.model)

    def adapter_dir(self, run_dir: Path) -> Path:
        return run_dir / "adapters" / _prefixed(self.model, self.objective) / f"seed-{self.seed}" / f"budget-{self.budget}"


@dataclass(frozen=True)
class TrainUnit:
    """One training run and the cells it produces (several when budgets are snapshots)."""

    objective: str
    seed: int
    cells: tuple[Cell, ...]
    model: str | None = None

    @property
    def name(self) -> str:
        suffix = "" if len(self.cells) > 1 else f"/budget-{self.cells[0].budget}"
        return _prefixed(self.model, f"{self.objective}/seed-{self.seed}{suffix}")

    def work_dir(self, run_dir: Path) -> Path:
        return run_dir / "work" / self.name

    def request(self, config: ExperimentConfig, run_dir: Path) -> TrainRequest:
        outputs = {cell.budget: cell.adapter_dir(run_dir) for cell in self.cells}
        return TrainRequest(config, self.objective, self.seed, outputs, self.work_dir(run_dir))


def snapshots_enabled(config: ExperimentConfig) -> bool:
    return config.runner.snapshots and budget_independent(config.train.schedule)


def base_cell_id(model: str | None) -> str:
    """The base model's cell: ``base``, or ``<key>/base`` for one model of several."""
    return _prefixed(model, BASE_CELL)


def expand(config: ExperimentConfig, model: str | None = None) -> list[TrainUnit]:
    """Every training unit of one model's grid (``config``: that model's config, ``model``: its
    key among several), objectives in config order, then seeds."""
    units = []
    for objective in config.objectives:
        for seed in config.seeds:
            cells = tuple(Cell(objective, seed, budget, model) for budget in config.budgets)
            if snapshots_enabled(config):
                units.append(TrainUnit(objective, seed, cells, model))
            else:
                units.extend(TrainUnit(objective, seed, (cell,), model) for cell in cells)
    return units


def all_cell_ids(config: ExperimentConfig) -> list[str]:
    """Every cell of the grid, each model's base cell before its adapters."""
    ids = []
    for model, single in config.per_model():
        ids += [base_cell_id(model)] + [cell.cell_id for unit in expand(single, model) for cell in unit.cells]
    return ids
