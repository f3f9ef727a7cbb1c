"""The same grid as Ray tasks: one training unit per task (one GPU each by default).

Workers train and evaluate; the driver alone writes the results store (DuckDB has one writer),
recording each unit's cells as its task returns. The run directory must be on a filesystem
every worker sees (adapters and checkpoints are written there), as on any shared cluster
volume; a task that dies is retried by Ray and resumes from its unit's last checkpoint.

Judge verdicts are shared through a small Ray actor seeded from the store: workers look up and
add verdicts through it, and the driver writes new ones to the store as units finish, so a
resumed grid still never judges the same answer twice.
"""

from __future__ import annotations

import time
from pathlib import Path

from objlab.config import ExperimentConfig, parse_config
from objlab.runner.grid import TrainUnit

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


def evaluate_base_task(config_data: dict, broker):
    from objlab.evaluate.evaluator import evaluate

    config = parse_config(config_data)
    started = time.perf_counter()
    result = evaluate(config, _session(config), None, verdict_cache=BrokerCache(broker))
    return result, time.perf_counter() - started


def unit_task(config_data: dict, unit: TrainUnit, run_dir: str, skip: set[str], broker):
    from objlab.progress import Board
    from objlab.runner.execute import train_and_evaluate

    config = parse_config(config_data)
    return train_and_evaluate(config, unit, Path(run_dir), skip, _session(config), BrokerCache(broker), Board(enabled=False))


def run_units_on_ray(config, run_dir, store, units, finished, address, board, grid_line, summary) -> None:
    try:
        import ray
    except ImportError:
        from objlab.errors import ConfigError

        raise ConfigError("--ray needs Ray: pip install 'objlab[ray]'") from None
    from objlab.runner.execute import base_result, record_base, record_outcome
    from objlab.store import BASE_CELL

    ray.init(address=None if address == "local" else address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False)
    gpus = config.runner.gpus_per_cell if ray.cluster_resources().get("GPU", 0) > 0 else 0
    existing = {row[0]: row[1] for row in store.db.execute("SELECT key, verdict FROM verdicts").fetchall()}
    import json

    broker = ray.remote(VerdictBroker).remote({key: json.loads(value) for key, value in existing.items()})
    config_data = config.model_dump(mode="json", by_alias=True)
    options = {"num_gpus": gpus, "max_retries": 2}
    if BASE_CELL not in finished:
        result, seconds = ray.get(ray.remote(evaluate_base_task).options(**options).remote(config_data, broker))
        store.put_many(ray.get(broker.take_new.remote()))
        record_base(store, result, seconds)
        summary.cells_run.append(BASE_CELL)
        grid_line.advance(1, info="base model")
    base = base_result(store)
    remote_unit = ray.remote(unit_task).options(**options)
    pending = {remote_unit.remote(config_data, unit, str(run_dir), set(finished), broker): unit for unit in units}
    board.log(f"ray: {len(pending)} training units on {ray.cluster_resources().get('GPU', 0):g} GPUs / {ray.cluster_resources().get('CPU', 0):g} CPUs")
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        pending.pop(done[0])
        outcomes = ray.get(done[0])
        store.put_many(ray.get(broker.take_new.remote()))
        for outcome in outcomes:
            record_outcome(store, outcome, base, run_dir)
            summary.cells_run.append(outcome.cell.cell_id)
            grid_line.advance(1, info=outcome.cell.cell_id)
