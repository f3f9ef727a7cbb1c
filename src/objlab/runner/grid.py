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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from objlab.config import ExperimentConfig
from objlab.store import BASE_CELL
from objlab.train.loop import TrainRequest
from objlab.train.schedule import budget_independent


@dataclass(frozen=True)
class Cell:
    objective: str
    seed: int
    budget: int

    @property
    def cell_id(self) -> str:
        return f"{self.objective}/seed-{self.seed}/budget-{self.budget}"

    def adapter_dir(self, run_dir: Path) -> Path:
        return run_dir / "adapters" / self.objective / f"seed-{self.seed}" / f"budget-{self.budget}"


@dataclass(frozen=True)
class TrainUnit:
    """One training run and the cells it produces (several when budgets are snapshots)."""

    objective: str
    seed: int
    cells: tuple[Cell, ...]

    @property
    def name(self) -> str:
        suffix = "" if len(self.cells) > 1 else f"/budget-{self.cells[0].budget}"
        return f"{self.objective}/seed-{self.seed}{suffix}"

    def work_dir(self, run_dir: Path) -> Path:
        return run_dir / "work" / self.name

    def request(self, config: ExperimentConfig, run_dir: Path) -> TrainRequest:
        outputs = {cell.budget: cell.adapter_dir(run_dir) for cell in self.cells}
        return TrainRequest(config, self.objective, self.seed, outputs, self.work_dir(run_dir))


def snapshots_enabled(config: ExperimentConfig) -> bool:
    return config.runner.snapshots and budget_independent(config.train.schedule)


def expand(config: ExperimentConfig) -> list[TrainUnit]:
    """Every training unit of the grid, objectives in config order, then seeds."""
    units = []
    for objective in config.objectives:
        for seed in config.seeds:
            cells = tuple(Cell(objective, seed, budget) for budget in config.budgets)
            if snapshots_enabled(config):
                units.append(TrainUnit(objective, seed, cells))
            else:
                units.extend(TrainUnit(objective, seed, (cell,)) for cell in cells)
    return units


def all_cell_ids(config: ExperimentConfig) -> list[str]:
    return [BASE_CELL] + [cell.cell_id for unit in expand(config) for cell in unit.cells]
