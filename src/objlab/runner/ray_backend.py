"""The same grid as Ray tasks: one training unit per task (one GPU each by default).

Workers train and evaluate; the driver alone writes the results store (DuckDB has one writer),
recording each unit's cells (outcomes and failures) as its task returns. The run directory must be on a filesystem
every worker sees (adapters and checkpoints are written there), as on any shared cluster
volume; a task that dies is retried by Ray and resumes from its unit's last checkpoint.

Judge verdicts are shared through a small Ray actor seeded from the store: workers look up and
add verdicts through it, and the driver writes new ones to the store as units finish, so a
resumed grid still never judges the same answer twice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from objlab.config import ExperimentConfig, parse_config
from objlab.errors import ConfigError
from objlab.progress import Board
from objlab.records.failure import CellFailure
from objlab.runner.grid import TrainUnit, base_cell_id
from objlab.runner.pipeline import BaseOutcome, Emit
from objlab.runner.run_store import RunStore
from objlab.runner.status import StatusTracker

_SESSIONS: dict[str, object] = {}  # per worker process: the base model loaded once


class VerdictBroker:
    """Ray actor body: the grid's verdict cache while tasks run."""

    def __init__(self, seed_verdicts: dict[str, dict]) -> None:
        self.verdicts = dict(seed_verdicts)
        self.new: dict[str, dict] = {}

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        return {key: self.verdicts[key] for key in keys if key in self.verdicts}

    def put_many(self, verdicts: dict[str, dict]) -> None:
        self.verdicts.update(verdicts)
        self.new.update(verdicts)

    def take_new(self) -> dict[str, dict]:
        new, self.new = self.new, {}
        return new


class BrokerCache:
    """The ``VerdictCache`` protocol on top of the broker actor (used inside workers)."""

    def __init__(self, broker) -> None:
        self.broker = broker

    def get_many(self, keys):
        import ray

        return ray.get(self.broker.get_many.remote(list(keys)))

    def put_many(self, verdicts):
        import ray

        ray.get(self.broker.put_many.remote(dict(verdicts)))


def _session(config: ExperimentConfig):
    from objlab.evaluate.session import EvalSession

    key = config.fingerprint()
    if key not in _SESSIONS:
        _SESSIONS.clear()
        _SESSIONS[key] = EvalSession(config)
    return _SESSIONS[key]


def base_task(config_data: dict, broker, model: str | None = None):
    from objlab.progress import Board
    from objlab.runner.pipeline import evaluate_base

    config = parse_config(config_data)
    return evaluate_base(config, _session(config), BrokerCache(broker), Board(enabled=False), model=model)


def unit_task(config_data: dict, unit: TrainUnit, run_dir: str, skip: set[str], broker):
    from objlab.progress import Board
    from objlab.runner.pipeline import train_and_evaluate

    config = parse_config(config_data)
    ended: list = []
    train_and_evaluate(config, unit, Path(run_dir), skip, _session(config), BrokerCache(broker), Board(enabled=False), ended.append)
    return ended


def _lost_task(unit: TrainUnit, finished: set[str], error: Exception) -> list[CellFailure]:
    """A task that Ray could not finish (its worker died past the retries): its cells fail."""
    return [CellFailure.from_exception(cell.cell_id, unit.name, "ray task", error) for cell in unit.cells if cell.cell_id not in finished]


def run_on_ray(
    config: ExperimentConfig,
    run_dir: Path,
    units: list[TrainUnit],
    finished: set[str],
    base_pending: bool,
    store: RunStore,
    address: str,
    board: Board,
    on_base: Callable[[BaseOutcome | CellFailure], None],
    on_outcome: Emit,
    tracker: StatusTracker,
    model: str | None = None,
) -> None:
    """Run the units as Ray tasks (of one model: ``model`` its key among several); outcomes come back to this (driver) process, which passes
    them to ``on_base``/``on_outcome`` (they write the store) with the verdicts judged meanwhile.
    The status shows each submitted unit as one ``train+evaluate`` phase (the driver does not
    see a worker's phases)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'objlab[ray]'") from None

    ray.init(address=None if address == "local" else address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False)
    gpus = config.runner.gpus_per_cell if ray.cluster_resources().get("GPU", 0) > 0 else 0
    broker = ray.remote(VerdictBroker).remote(store.all_verdicts())
    config_data = config.model_dump(mode="json", by_alias=True)
    options = {"num_gpus": gpus, "max_retries": 2}

    def take_verdicts() -> None:
        store.put_many(ray.get(broker.take_new.remote()))

    if base_pending:
        base_id = base_cell_id(model)
        key = tracker.begin(base_id, "evaluate base", [base_id])
        try:
            outcome = ray.get(ray.remote(base_task).options(**options).remote(config_data, broker, model))
        except Exception as error:  # the task itself was lost (a worker that died, past the retries)
            outcome = CellFailure.from_exception(base_id, base_id, "ray task", error)
        tracker.end(key, ok=not isinstance(outcome, CellFailure))
        take_verdicts()
        on_base(outcome)
    remote_unit = ray.remote(unit_task).options(**options)
    pending = {}
    for unit in units:
        cells = [cell.cell_id for cell in unit.cells if cell.cell_id not in finished]
        pending[remote_unit.remote(config_data, unit, str(run_dir), set(finished), broker)] = (unit, tracker.begin(unit.name, "train+evaluate", cells, unit.objective))
    board.log(f"ray: {len(pending)} training units on {ray.cluster_resources().get('GPU', 0):g} GPUs / {ray.cluster_resources().get('CPU', 0):g} CPUs")
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        unit, key = pending.pop(done[0])
        try:
            ended = ray.get(done[0])
        except Exception as error:
            ended = _lost_task(unit, finished, error)
        tracker.end(key, ok=not any(isinstance(item, CellFailure) for item in ended))
        take_verdicts()
        for item in ended:
            on_outcome(item)
