"""Fault injection: every fault ends with figures identical to an uninterrupted run.

- ``kill -9`` (SIGKILL: no handler, no flush) during training, during evaluation and while a
  cell is being written, each at several points, by the failpoints of ``objlab.faults``; the
  killed grid is then resumed and its whole store compared with an uninterrupted grid's.
- A damaged latest checkpoint (truncated, a flipped byte, an unreadable record, a missing
  file): resuming falls back to the previous one and ends bit-identical; with none intact,
  the error names every file.
- A judge endpoint that fails intermittently (within the retries), and one that is down for
  longer than the retries and then recovers: no verdict lost, none asked twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from factories import assert_same_adapter, torch_threads
from grids import grid_config
from tiny import REPO

from objlab.config import load_config
from objlab.errors import StateError
from objlab.progress import Board
from objlab.runner.execute import run_grid
from objlab.runner.status_view import grid_view
from objlab.store import BASE_CELL, ResultsStore
from objlab.train import loop
from objlab.train.loop import TrainRequest, train
from objlab.train.outputs import read_log, read_manifest

TRAIN = {"batch_size": 2, "warmup_steps": 1, "checkpoint_every": 1, "max_length": 256}


def without_provenance(verdict: str | None) -> str | None:
    """An item's verdict without ``cached`` (whether it came from the verdict cache: where the
    verdict came from, which a resume changes by design, not what it is)."""
    if not verdict:
        return verdict
    data = json.loads(verdict)
    for score in data.values():  # one verdict per scorer
        if isinstance(score, dict):
            score.pop("cached", None)
    return json.dumps(data, sort_keys=True)


def store_contents(run_dir: Path):
    """Every figure, item and training-log row of a run, in a canonical order; how often each cell occurs."""
    with ResultsStore.in_run_dir(run_dir, read_only=True) as store:
        query = store.db.execute
        items = query('SELECT cell_id, axis, "group", item_id, prompt, output, score, verdict, scorer FROM items ORDER BY ALL').fetchall()
        return {
            "cells": query("SELECT cell_id, count(*) FROM cells GROUP BY cell_id ORDER BY cell_id").fetchall(),
            "metrics": query('SELECT cell_id, axis, metric, "group", value, n, ci_low, ci_high, status, p_value, comparison FROM metrics ORDER BY ALL').fetchall(),
            "items": [(*row[:7], without_provenance(row[7]), row[8]) for row in items],
            "train_log": query("SELECT cell_id, step, examples, budget_tokens, compute_tokens, lr, loss, grad_norm, components FROM train_log ORDER BY ALL").fetchall(),
            "open_failures": store.failures(open_only=True),
        }


def run_cli_grid(config_path: Path, run_dir: Path, faults: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OBJLAB_FAULTS": faults, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "objlab.cli", "run", str(config_path), "--out", str(run_dir)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


# -- kill -9 at chosen points of a grid ----------------------------------------------------------
@pytest.fixture(scope="module")
def one_thread():
    """The in-process runs of this module use one thread, as the killed subprocess does
    (``run_cli_grid``): figures are bit-identical between runs with the same thread count."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model, one_thread):
    """An uninterrupted grid: base + sft at two budgets (one unit, a snapshot and its end)."""
    root = tmp_path_factory.mktemp("reference")
    config_path = grid_config(root, tiny_model, objectives={"sft": {}}, budgets=[600, 1200], train=TRAIN)
    run_grid(load_config(config_path), root / "run")
    steps = read_manifest(root / "run" / "adapters" / "sft" / "seed-0" / "budget-1200").steps
    assert steps >= 6  # the points below fall inside the run
    return config_path, store_contents(root / "run")


KILL_POINTS = [
    "train.step=2",  # training: a step logged, its checkpoint not written (the log has a row too many)
    "train.step=5",
    "train.checkpoint.written=3",  # a checkpoint half-way: files written, not published
    "train.checkpoint.published=2",  # published, the older one not yet removed
    "train.output.written=1",  # the budget-600 snapshot written under its temporary name
    "train.output.written=2",  # the final adapter likewise
    "evaluate.axis=2",  # evaluation: the base model's, after two axes
    "evaluate.axis=4",  # the first adapter cell's, after its first axis
    "store.cell.before_commit=1",  # writing: the base cell's rows inserted, not committed
    "store.cell.before_commit=2",  # the first adapter cell's
    "store.cell.committed=3",  # the last cell committed, nothing after it done
]


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_anywhere_the_resumed_grid_equals_the_uninterrupted_one(point, reference, tmp_path, one_thread):
    config_path, expected = reference
    run_dir = tmp_path / "run"
    killed = run_cli_grid(config_path, run_dir, point)
    assert killed.returncode == -9, f"{point} was not reached (rc {killed.returncode}):\n{killed.stderr[-3000:]}"

    view = grid_view(run_dir)  # the store of a killed writer reads; the status file tells the truth
    assert not view.alive and (view.interrupted or view.status.state == "running")

    resumed = run_grid(load_config(config_path), run_dir)
    assert resumed.cells_failed == []
    assert store_contents(run_dir) == expected
    assert run_grid(load_config(config_path), run_dir).cells_run == []


# -- a damaged checkpoint ------------------------------------------------------------------------
class Crash(Exception):
    pass


class RecordingBoard(Board):
    def __init__(self) -> None:
        super().__init__(enabled=False)
        self.messages: list[str] = []

    def log(self, message: str) -> None:
        self.messages.append(message)


def crash_after_step(monkeypatch, step: int) -> None:
    """Make the training loop stop dead after logging ``step`` (before its checkpoint)."""
    hits = []

    def point(name):
        if name == "train.step":
            hits.append(name)
            if len(hits) == step:
                raise Crash(f"crashed after step {step}")

    monkeypatch.setattr(loop, "fault_point", point)


def damage(checkpoint: Path, how: str) -> Path:
    state = checkpoint / "state.pt"
    if how == "truncated":
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    elif how == "flipped byte":
        data = bytearray(state.read_bytes())
        data[len(data) // 2] ^= 0xFF
        state.write_bytes(bytes(data))
    elif how == "missing state":
        state.unlink()
    elif how == "unreadable record":
        (checkpoint / "counters.json").write_text('{"counters": {"step": 3')
        return checkpoint / "counters.json"
    return state


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_model):
    from tiny import write_config

    root = tmp_path_factory.mktemp("uninterrupted")
    config = load_config(write_config(root / "config.yaml", tiny_model, train=TRAIN))
    train(TrainRequest(config, "sft", 0, {1200: root / "out"}, root / "out"))
    return config, root / "out"


def crashed_after_step_4(config, out: Path, monkeypatch) -> TrainRequest:
    """A training run stopped dead after step 4: checkpoints 2 and 3 are on disk, 3 published."""
    request = TrainRequest(config, "sft", 0, {1200: out}, out)
    crash_after_step(monkeypatch, 4)
    with pytest.raises(Crash):
        train(request)
    monkeypatch.undo()
    assert (out / "LATEST").read_text() == "checkpoint-0000003"
    assert sorted(path.name for path in out.glob("checkpoint-*")) == ["checkpoint-0000002", "checkpoint-0000003"]
    return request


@pytest.mark.parametrize("how", ["truncated", "flipped byte", "missing state", "unreadable record"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(how, uninterrupted, tmp_path, monkeypatch):
    config, expected = uninterrupted
    request = crashed_after_step_4(config, tmp_path / "out", monkeypatch)
    damaged = damage(tmp_path / "out" / "checkpoint-0000003", how)

    board = RecordingBoard()
    manifest = train(request, board=board)[1200]
    assert manifest.resumed_from_step == 2
    assert any(str(damaged) in message and "falling back to the previous checkpoint" in message for message in board.messages)
    assert_same_adapter(expected, tmp_path / "out")
    assert read_log(tmp_path / "out" / "train_log.jsonl") == read_log(expected / "train_log.jsonl")


def test_no_intact_checkpoint_is_an_error_naming_every_file(uninterrupted, tmp_path, monkeypatch):
    config, _ = uninterrupted
    request = crashed_after_step_4(config, tmp_path / "out", monkeypatch)
    first = damage(tmp_path / "out" / "checkpoint-0000003", "truncated")
    second = damage(tmp_path / "out" / "checkpoint-0000002", "unreadable record")
    with pytest.raises(StateError) as error:
        train(request)
    message = str(error.value)
    assert "no intact checkpoint to resume from" in message
    assert f"{first}: truncated or corrupted" in message and f"{second}: unreadable" in message
    assert f"Delete {tmp_path / 'out'} to train this run again from the start" in message


# -- a judge that fails, then recovers --------------------------------------------------------------
def judged_grid(root: Path, tiny_model, server) -> Path:
    from fake_judge import KEY_ENV

    path = grid_config(root, tiny_model, objectives={"sft": {}}, budgets=[600, 1200], train={**TRAIN, "learning_rate": 0.05})
    data = yaml.safe_load(path.read_text())
    data["eval"]["judge"] = {"kind": "openai", "model": "fake-judge", "base_url": server.base_url, "api_key_env": KEY_ENV,
                             "max_concurrency": 1, "max_retries": 1, "backoff_s": 0.001}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def answered(server) -> list[str]:
    """The conversations the judge answered (HTTP 200), one entry per answer."""
    return [repr(body["messages"]) for body in server.answered]


@pytest.fixture
def judge_server(monkeypatch):
    from fake_judge import KEY_ENV, SECRET, FakeOpenAI

    monkeypatch.setenv(KEY_ENV, SECRET)
    server = FakeOpenAI()
    yield server
    server.close()


@pytest.mark.slow
def test_a_judge_failing_now_and_then_loses_nothing_and_is_never_asked_twice(judge_server, tiny_model, tmp_path):
    config = load_config(judged_grid(tmp_path, tiny_model, judge_server))
    run_grid(config, tmp_path / "reference")
    expected, asked = store_contents(tmp_path / "reference"), sorted(answered(judge_server))
    assert len(asked) == len(set(asked)) > 6

    judge_server.requests.clear()
    judge_server.answered.clear()
    judge_server.failures = [503, 200, 429, 200, 200, 502, 200, 200] * 20  # each failure is followed by a success: within 1 retry
    summary = run_grid(config, tmp_path / "flaky")
    assert summary.cells_failed == []
    assert store_contents(tmp_path / "flaky") == expected
    assert sorted(answered(judge_server)) == asked  # every verdict asked once, none lost
    assert len(judge_server.requests) > len(asked)  # the failures were really there and retried


@pytest.mark.slow
def test_a_judge_down_longer_than_its_retries_fails_the_cell_and_the_rerun_asks_only_the_rest(judge_server, tiny_model, tmp_path):
    config = load_config(judged_grid(tmp_path, tiny_model, judge_server))
    run_grid(config, tmp_path / "reference")
    expected, asked = store_contents(tmp_path / "reference"), sorted(answered(judge_server))
    with ResultsStore.in_run_dir(tmp_path / "reference", read_only=True) as store:
        base_asks = _judge_calls(store, BASE_CELL)
    assert len(asked) > base_asks  # the adapter cells ask the judge too

    judge_server.requests.clear()
    judge_server.answered.clear()
    judge_server.failures = [200] * base_asks + [503] * 4  # down for the first cell's first two verdicts (2 tries each)
    first = run_grid(config, tmp_path / "outage")
    assert first.cells_failed == ["sft/seed-0/budget-600"] and "sft/seed-0/budget-1200" in first.cells_run
    with ResultsStore.in_run_dir(tmp_path / "outage", read_only=True) as store:
        (failure,) = store.failures(open_only=True)
    # two verdict requests failed; every item that needed one of them is counted (an answer the
    # same under two attacks shares its verdict, so it can be more than two items)
    assert failure.error_type == "JudgeUnavailable" and "HTTP 503" in failure.message
    assert int(failure.message.split(" of ", 1)[0]) >= 2

    again = run_grid(config, tmp_path / "outage")  # the endpoint is back
    assert again.cells_run == ["sft/seed-0/budget-600"]
    assert store_contents(tmp_path / "outage") == expected
    assert sorted(answered(judge_server)) == asked  # over both runs: every verdict asked once


def _judge_calls(store, cell_id) -> int:
    (text,) = store.db.execute("SELECT eval_manifest FROM cells WHERE cell_id = ?", [cell_id]).fetchone()
    return json.loads(text)["judge_calls"]


@pytest.mark.slow
def test_killed_after_storing_verdicts_the_resumed_grid_asks_the_judge_nothing_twice(judge_server, tiny_model, tmp_path):
    """``kill -9`` mid-evaluation, just after the first adapter cell's verdicts were stored."""
    config_path = judged_grid(tmp_path, tiny_model, judge_server)
    run_grid(load_config(config_path), tmp_path / "reference")
    expected, asked = store_contents(tmp_path / "reference"), sorted(answered(judge_server))
    judge_server.requests.clear()
    judge_server.answered.clear()

    killed = run_cli_grid(config_path, tmp_path / "run", "verdicts.stored=2")
    assert killed.returncode == -9, killed.stderr[-3000:]
    before_resume = len(judge_server.answered)
    resumed = run_grid(load_config(config_path), tmp_path / "run")
    # the resumed grid re-runs the killed cell; what it asks the judge (maybe nothing: an answer
    # the same as one already judged, here or in the stored verdicts, is not asked again) plus
    # what the killed run asked is exactly the reference's questions, each once
    assert "sft/seed-0/budget-600" in resumed.cells_run and len(judge_server.answered) >= before_resume
    assert store_contents(tmp_path / "run") == expected
    assert sorted(answered(judge_server)) == asked
