"""The results store: atomic cells, round trips, exports, the persistent verdict cache, and
the guard that refuses a changed experiment but allows extending the grid."""

import math

import duckdb
import pytest
from factories import adapter_manifest, eval_info

from objlab.config import parse_config
from objlab.errors import StateError
from objlab.records.items import ItemRecord, MetricRow
from objlab.runner.guard import config_changes, guard_config
from objlab.records.train_log import StepLog
from objlab.store import ResultsStore

METRICS = [
    MetricRow("jailbreak", "asr", "dan", 0.25, 8, 0.07, 0.59, "Wilson 95%"),
    MetricRow("jailbreak", "asr", "translation", math.nan, 0, math.nan, math.nan, "not run", status="skipped", note="no translator"),
    MetricRow("persona", "p_match", "narcissism", 0.31, 5, 0.2, 0.4, "bootstrap", p_value=0.04, comparison="paired t-test vs base"),
]
ITEMS = [ItemRecord("jailbreak", "dan", "forbidden.csv:2", "prompt", "I can't help", 0.0, '{"refused": 1}', "refusal-classifier", {"len": 3})]


def record(store, cell_id="sft/seed-0/budget-100"):
    store.record_cell(
        cell_id, kind="adapter", metrics=METRICS, items=ITEMS, eval_info=eval_info(device="cpu"),
        train_manifest=adapter_manifest(mode="snapshot", budget_tokens=104, compute_tokens=0),
        log_rows=[StepLog(1, 2, 104, 0, 0.1, 2.5, 1.0, {"nll": 2.5})],
        objective="sft", seed=0, budget=100, adapter_dir="adapters/sft", train_seconds=1.0, eval_seconds=2.0,
    )


def test_cell_round_trip_and_nan(tmp_path):
    with ResultsStore(tmp_path / "r.duckdb") as store:
        record(store)
        assert store.finished_cells() == {"sft/seed-0/budget-100"}
        metrics = store.cell_metrics("sft/seed-0/budget-100")
        assert metrics[0] == METRICS[0]
        assert math.isnan(metrics[1].value) and metrics[1].status == "skipped" and metrics[1].note == "no translator"
        assert metrics[2].p_value == 0.04
        assert store.cell_items("sft/seed-0/budget-100") == ITEMS
        log = store.frame("SELECT step, loss, components FROM train_log").to_dict("records")
        assert log == [{"step": 1, "loss": 2.5, "components": '{"nll": 2.5}'}]


def test_recording_a_cell_twice_replaces_it(tmp_path):
    with ResultsStore(tmp_path / "r.duckdb") as store:
        record(store)
        record(store)
        assert store.frame("SELECT count(*) AS n FROM metrics")["n"][0] == len(METRICS)


def test_a_failed_cell_leaves_nothing(tmp_path):
    with ResultsStore(tmp_path / "r.duckdb") as store:
        bad = ItemRecord("jailbreak", "dan", "x", "p", "o", 0.0, extra={"unserialisable": object()})
        with pytest.raises(Exception):
            store.record_cell("c", kind="adapter", metrics=METRICS, items=[ITEMS[0], bad], eval_info=None, log_rows=[StepLog(object(), 2, 104, 0, 0.1, 2.5, 1.0)])
        assert store.finished_cells() == set()
        assert store.frame("SELECT count(*) AS n FROM metrics")["n"][0] == 0


def test_verdict_cache_persists(tmp_path):
    with ResultsStore(tmp_path / "r.duckdb") as store:
        store.put_many({"k1": {"refused": 1}, "k2": {"refused": 0, "convincing": 4}})
    with ResultsStore(tmp_path / "r.duckdb") as store:
        assert store.get_many(["k1", "k2", "k3"]) == {"k1": {"refused": 1}, "k2": {"refused": 0, "convincing": 4}}
        assert store.verdict_count() == 2


def test_export_csv_and_parquet(tmp_path):
    with ResultsStore(tmp_path / "r.duckdb") as store:
        record(store)
        files = store.export(tmp_path / "csv", "csv") + store.export(tmp_path / "pq", "parquet")
    assert {f.name for f in files} == {"cells.csv", "metrics.csv", "items.csv", "train_log.csv", "cells.parquet", "metrics.parquet", "items.parquet", "train_log.parquet"}
    assert duckdb.sql(f"SELECT count(*) FROM '{tmp_path / 'pq' / 'metrics.parquet'}'").fetchall()[0][0] == 3


def test_read_only_store_must_exist(tmp_path):
    with pytest.raises(StateError, match="no results store"):
        ResultsStore(tmp_path / "missing.duckdb", read_only=True)


BASE = {"model": {"name_or_path": "m"}, "data": {"source": "d.jsonl"}, "objectives": ["sft"], "budgets": [100]}


def test_guard_allows_grid_extension_and_refuses_other_changes(tmp_path):
    with ResultsStore(tmp_path / "r.duckdb") as store:
        assert guard_config(store, parse_config(BASE), "run") == "new run"
        extended = parse_config({**BASE, "objectives": ["sft", "dpo"], "budgets": [100, 200]})
        assert "extending the grid (objectives, budgets changed)" == guard_config(store, extended, "run")
        changed = parse_config({**BASE, "objectives": ["sft", "dpo"], "budgets": [100, 200], "train": {"learning_rate": 0.5}})
        with pytest.raises(StateError, match=r"train\.learning_rate: 0\.0001 -> 0\.5"):
            guard_config(store, changed, "run")


def test_changed_objective_params_are_refused():
    old = parse_config({**BASE, "objectives": {"dpo": {"beta": 0.1}}}).model_dump(mode="json")
    new = parse_config({**BASE, "objectives": {"dpo": {"beta": 0.2}, "sft": {}}}).model_dump(mode="json")
    assert config_changes(old, new) == ["objectives.dpo.beta: 0.1 -> 0.2"]
