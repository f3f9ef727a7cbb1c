"""``objlab status``'s estimate of the time left, checked against arithmetic done by hand.

The rates: training seconds per task token per objective (sum of seconds / sum of tokens over
the objective's finished training phases), seconds per evaluated cell, the base evaluation
apart. Every expected figure below is written out from those definitions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from objlab.config import parse_config
from objlab.records.run_status import PhaseRecord, ProgressLine, RunningPhase
from objlab.runner.estimate import Rates, estimate_left
from objlab.runner.status_view import format_duration

NOW = datetime(2030, 1, 1, 12, 0, 0)
CONFIG = parse_config({
    "model": {"name_or_path": "m"}, "data": {"source": "d.jsonl"},
    "objectives": ["sft", "dpo"], "budgets": [600, 1200], "seeds": [0],
})
FINISHED = {"base", "sft/seed-0/budget-600", "sft/seed-0/budget-1200"}


def phase(kind, seconds, cells=(), objective=None, tokens=0, ok=True, unit="u"):
    return PhaseRecord(unit=unit, phase=kind, cells=list(cells), objective=objective, seconds=seconds, tokens=tokens, ok=ok, finished_at=NOW)


PHASES = [
    phase("evaluate base", 3.0, ["base"]),
    phase("train", 10.0, objective="sft", tokens=1000),
    phase("train", 20.0, objective="sft", tokens=1000),
    phase("train", 99.0, objective="sft", tokens=10, ok=False),  # failed: left out of the rates
    phase("evaluate", 8.0, ["a", "b"]),
    phase("evaluate", 5.0, ["c"]),
    phase("record", 0.5, ["a"]),
]


def test_rates_are_sums_of_seconds_over_sums_of_work():
    rates = Rates.measure(PHASES)
    assert rates.train == {"sft": pytest.approx(30 / 2000)}
    assert rates.train_overall == pytest.approx(30 / 2000)
    assert rates.eval_per_cell == pytest.approx(13 / 3)
    assert rates.base_eval == 3.0


def test_pending_unit_borrows_the_measured_rate(tmp_path):
    estimate = estimate_left(CONFIG, tmp_path, FINISHED, PHASES, [], NOW)
    # dpo is not measured: it trains to 1200 tokens at sft's 0.015 s/token, then 2 cells at 13/3 s each
    assert estimate.complete and estimate.seconds == pytest.approx(1200 * 0.015 + 2 * 13 / 3)
    assert any("dpo not measured yet" in part for part in estimate.basis)


def test_a_checkpoint_shortens_the_training_left(tmp_path):
    work = tmp_path / "work" / "dpo" / "seed-0"
    (work / "checkpoint-0000004").mkdir(parents=True)
    (work / "checkpoint-0000004" / "counters.json").write_text(json.dumps({"counters": {"step": 4, "examples": 8, "budget_tokens": 400, "compute_tokens": 0}}))
    (work / "LATEST").write_text("checkpoint-0000004")
    estimate = estimate_left(CONFIG, tmp_path, FINISHED, PHASES, [], NOW)
    assert estimate.seconds == pytest.approx((1200 - 400) * 0.015 + 2 * 13 / 3)


def dpo_training(line_started_ago: float, updated_ago: float) -> list[RunningPhase]:
    """dpo's training, running: 4 of 10 steps done (the line started ``line_started_ago`` s ago)."""
    line = ProgressLine(description="train dpo seed 0", completed=4, total=10, first_completed=0,
                        started_at=NOW - timedelta(seconds=line_started_ago), updated_at=NOW - timedelta(seconds=updated_ago))
    return [RunningPhase(key="1", unit="dpo/seed-0", phase="train", cells=["dpo/seed-0/budget-600"], objective="dpo",
                         started_at=NOW - timedelta(seconds=line_started_ago + 5), lines=[line])]


def test_a_running_training_extrapolates_its_own_progress(tmp_path):
    estimate = estimate_left(CONFIG, tmp_path, FINISHED, PHASES, dpo_training(20, 2), NOW)
    # 18 s for 4 steps = 4.5 s/step; 6 steps left = 27 s, of which 2 s have passed since the update
    assert estimate.seconds == pytest.approx(27 - 2 + 2 * 13 / 3)


def test_a_running_evaluation_counts_its_elapsed_time_and_trained_cells_skip_training(tmp_path):
    for budget in (600, 1200):  # both dpo adapters are complete: only their evaluation is left
        adapter = tmp_path / "adapters" / "dpo" / "seed-0" / f"budget-{budget}"
        adapter.mkdir(parents=True)
        (adapter / "manifest.json").write_text("{}")
    running = [RunningPhase(key="1", unit="dpo/seed-0", phase="evaluate", cells=["dpo/seed-0/budget-600"], started_at=NOW - timedelta(seconds=3))]
    estimate = estimate_left(CONFIG, tmp_path, FINISHED, PHASES, running, NOW)
    assert estimate.seconds == pytest.approx(2 * 13 / 3 - 3)


def test_nothing_measured_yet_names_what_is_missing(tmp_path):
    estimate = estimate_left(CONFIG, tmp_path, set(), [], [], NOW)
    assert not estimate.complete and estimate.seconds == 0
    assert estimate.unknown == ["evaluation", "training (sft)", "training (dpo)"]


def test_durations_read_at_a_glance():
    assert [format_duration(s) for s in (0, 12.4, 63, 3600 + 125)] == ["0s", "12s", "1m 03s", "1h 02m"]


def test_a_step_taking_unusually_long_is_not_counted_as_more_than_one_step(tmp_path):
    estimate = estimate_left(CONFIG, tmp_path, FINISHED, PHASES, dpo_training(120, 100), NOW)
    # 20 s for 4 steps = 5 s/step; 6 steps left = 30 s, less at most one step (5 s) under way
    assert estimate.seconds == pytest.approx(30 - 5 + 2 * 13 / 3)
