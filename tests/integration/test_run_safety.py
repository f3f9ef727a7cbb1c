"""A grid that fails well: failed cells recorded while the grid goes on, non-finite training
stopped at once, one grid per run directory, and the store readable while a grid writes it.

The objectives that fail here are plugins registered by this module (as a user's would be):
``diverge`` turns its loss into NaN at a chosen step; ``inf_grad`` has a finite loss whose
gradient is infinite."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from tiny import write_config
from typer.testing import CliRunner

from objlab.cli import app
from objlab.config import load_config
from objlab.errors import ConfigError, StateError, StoreBusy, TrainingError
from objlab.faults import parse_faults
from objlab.objectives.base import Batch, ForwardOutput, LossOutput, Objective, step_token_mean, token_nll
from objlab.objectives.registry import register
from objlab.records.run_status import read_status
from objlab.report.data import load_report_data
from objlab.report.html import write_report
from objlab.runner.execute import GridStopped, run_grid
from objlab.runner.run_lock import LOCK_FILE, RunLock, holder_of
from objlab.runner.status_view import grid_view, render_status
from objlab.store import BASE_CELL, ResultsStore
from objlab.train.loop import TrainRequest, train

TRAIN = {"batch_size": 2, "warmup_steps": 1, "checkpoint_every": 1, "max_length": 256}


class Diverge(Objective):
    name = "diverge"
    description = "SFT whose loss becomes NaN at step `nan_at_step` (0: never) -- a test plugin."
    nan_at_step = 2

    def __init__(self, params, seed: int = 0) -> None:
        super().__init__(params, seed)
        self.steps = 0

    def loss(self, batch: Batch, policy: ForwardOutput, reference: ForwardOutput | None) -> LossOutput:
        self.steps += 1
        total, _ = token_nll(batch, policy, "sft")
        loss = step_token_mean(total, batch, "sft")
        if self.steps == Diverge.nan_at_step:
            loss = loss * float("nan")
        return LossOutput(loss, {"nll": loss.item()})


class InfGrad(Objective):
    name = "inf_grad"
    description = "SFT plus sqrt(0): a finite loss with an infinite gradient -- a test plugin."

    def loss(self, batch: Batch, policy: ForwardOutput, reference: ForwardOutput | None) -> LossOutput:
        total, _ = token_nll(batch, policy, "sft")
        loss = step_token_mean(total, batch, "sft")
        return LossOutput(loss + torch.sqrt(loss - loss.detach()), {"nll": loss.item()})


@pytest.fixture(autouse=True)
def failing_objectives():
    """The two plugins, registered for this module's tests only (the registry is global)."""
    from objlab.objectives import registry

    for cls in (Diverge, InfGrad):
        register(cls)
    yield
    for cls in (Diverge, InfGrad):
        registry.OBJECTIVES.unregister(cls.name)


def small_grid(tmp_path, tiny_model, objectives, **overrides):
    from tiny import PERSONA

    evaluation = {"generation": {"max_new_tokens": 4, "backend": "hf"}, "persona": {"dir": str(PERSONA), "limit": 2}}
    sections = {"objectives": objectives, "budgets": [600], "train": TRAIN, "eval": evaluation, **overrides}
    return load_config(write_config(tmp_path / "config.yaml", tiny_model, **sections))


# -- non-finite training -------------------------------------------------------------------------
def test_nan_loss_stops_training_at_once_naming_step_and_objective(make_config, tmp_path):
    config = make_config(objectives=["diverge"], train=TRAIN)
    request = TrainRequest(config, "diverge", 0, {600: tmp_path / "out"}, tmp_path / "out")
    with pytest.raises(TrainingError, match=r"objective 'diverge' \(seed 0\): the loss is nan at step 2; training stopped before that update"):
        train(request)
    assert not (tmp_path / "out" / "manifest.json").exists()
    checkpoints = sorted(path.name for path in (tmp_path / "out").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-0000001"]  # the last good step; nothing after it was saved


def test_infinite_gradient_norm_stops_training(make_config, tmp_path):
    config = make_config(objectives=["inf_grad"], train=TRAIN)
    request = TrainRequest(config, "inf_grad", 0, {600: tmp_path / "out"}, tmp_path / "out")
    with pytest.raises(TrainingError, match=r"objective 'inf_grad' \(seed 0\): the gradient norm is (nan|inf) at step 1"):
        train(request)


# -- failures recorded, the grid goes on -----------------------------------------------------------
def test_a_failing_cell_is_recorded_the_grid_goes_on_and_a_rerun_retries_it(tmp_path, tiny_model, monkeypatch):
    config = small_grid(tmp_path, tiny_model, {"diverge": {}, "sft": {}})
    run_dir = tmp_path / "run"
    monkeypatch.setattr(Diverge, "nan_at_step", 2)
    summary = run_grid(config, run_dir)
    assert summary.cells_failed == ["diverge/seed-0/budget-600"]
    assert summary.cells_run == [BASE_CELL, "sft/seed-0/budget-600"]
    with ResultsStore.in_run_dir(run_dir, read_only=True) as store:
        assert store.finished_cells() == {BASE_CELL, "sft/seed-0/budget-600"}
        (failure,) = store.failures(open_only=True)
    assert (failure.cell_id, failure.unit, failure.phase, failure.error_type) == ("diverge/seed-0/budget-600", "diverge/seed-0/budget-600", "train", "TrainingError")
    assert "the loss is nan at step 2" in failure.message and "Traceback" in failure.traceback and "_require_finite" in failure.traceback

    html = write_report(run_dir).read_text()
    assert "1 cell(s) failed" in html and "diverge/seed-0/budget-600" in html and "the loss is nan at step 2" in html
    view = grid_view(run_dir)
    assert view.cells == {BASE_CELL: "finished", "diverge/seed-0/budget-600": "failed", "sft/seed-0/budget-600": "finished"}
    assert view.failures[-1].cell_id == "diverge/seed-0/budget-600"
    result = CliRunner().invoke(app, ["results", str(run_dir)])
    assert result.exit_code == 0 and "1 cell(s) failed" in result.output and "TrainingError" in result.output

    monkeypatch.setattr(Diverge, "nan_at_step", 0)  # the cause is fixed: the re-run retries only that cell
    again = run_grid(config, run_dir)
    assert again.cells_run == ["diverge/seed-0/budget-600"] and again.cells_failed == []
    with ResultsStore.in_run_dir(run_dir, read_only=True) as store:
        assert store.failures(open_only=True) == []
        assert [f.cell_id for f in store.failures()] == ["diverge/seed-0/budget-600"]  # kept as history
    assert load_report_data(ResultsStore.in_run_dir(run_dir, read_only=True)).failures == []


def test_fail_fast_stops_at_the_first_failure(tmp_path, tiny_model, monkeypatch):
    config = small_grid(tmp_path, tiny_model, {"diverge": {}, "sft": {}})
    monkeypatch.setattr(Diverge, "nan_at_step", 1)
    with pytest.raises(GridStopped, match=r"--fail-fast: stopped at the first failure.*\ndiverge/seed-0/budget-600 failed in train: TrainingError"):
        run_grid(config, tmp_path / "run", fail_fast=True)
    with ResultsStore.in_run_dir(tmp_path / "run", read_only=True) as store:
        assert store.finished_cells() == {BASE_CELL}  # sft never started
        assert [f.cell_id for f in store.failures()] == ["diverge/seed-0/budget-600"]
    status = read_status(tmp_path / "run")
    assert status.state == "stopped" and "--fail-fast" in status.message and status.running == []


def test_cli_run_exits_1_when_a_cell_failed(tmp_path, tiny_model, monkeypatch):
    small_grid(tmp_path, tiny_model, {"diverge": {}})
    monkeypatch.setattr(Diverge, "nan_at_step", 1)
    result = CliRunner().invoke(app, ["run", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert "1 cell(s) failed: diverge/seed-0/budget-600" in result.output


def test_a_failed_base_evaluation_stops_the_grid_naming_the_bad_file(tmp_path, tiny_model):
    persona = tmp_path / "persona"
    persona.mkdir()
    (persona / "narcissism.jsonl").write_text('{"question": "Is this you?"}\n')
    evaluation = {"generation": {"max_new_tokens": 4, "backend": "hf"}, "persona": {"traits": {"narcissism": str(persona / "narcissism.jsonl")}}}
    config = load_config(write_config(tmp_path / "config.yaml", tiny_model, budgets=[600], train=TRAIN, eval=evaluation))
    with pytest.raises(GridStopped, match=r"(?s)base model's evaluation failed.*\nDataError: .*narcissism\.jsonl:1: missing field 'answer_matching_behavior'"):
        run_grid(config, tmp_path / "run")
    with ResultsStore.in_run_dir(tmp_path / "run", read_only=True) as store:
        ((cell, phase),) = [(f.cell_id, f.phase) for f in store.failures()]
    assert (cell, phase) == (BASE_CELL, "evaluate base")


# -- one grid per run directory ---------------------------------------------------------------------
def test_a_second_grid_on_the_same_run_directory_is_refused(tmp_path, tiny_model):
    config = small_grid(tmp_path, tiny_model, {"sft": {}})
    run_dir = tmp_path / "run"
    with RunLock(run_dir):
        assert holder_of(run_dir)[1] is True
        with pytest.raises(StateError, match=rf"{run_dir} is in use by another `objlab run` \(pid {os.getpid()} on .*, since .*\)"):
            run_grid(config, run_dir)
        result = CliRunner().invoke(app, ["run", str(tmp_path / "config.yaml"), "--out", str(run_dir)])
        assert result.exit_code == 2 and "is in use by another `objlab run`" in result.output and "Traceback" not in result.output
    assert holder_of(run_dir) == (None, False)  # released: the file is emptied


def test_the_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": "h", "started_at": "then", "command": "objlab run"}))
    holder, alive = holder_of(run_dir)
    assert holder.pid == pid and alive is False
    with RunLock(run_dir) as lock:
        assert lock.took_over.pid == pid
        assert holder_of(run_dir)[0].pid == os.getpid()


def test_an_unreadable_lock_record_still_refuses_clearly(tmp_path):
    run_dir = tmp_path / "run"
    with RunLock(run_dir):
        (run_dir / LOCK_FILE).write_text("{garbage")
        with pytest.raises(StateError, match="a process that left no readable record in it"):
            with RunLock(run_dir, wait_s=0.1):
                pass


# -- the store while a grid writes it ----------------------------------------------------------------
HOLD = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(float(sys.argv[2]))"


def hold_store(path, seconds):
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_reader_waits_for_a_write_to_finish(tmp_path):
    with ResultsStore(tmp_path / "results.duckdb") as store:
        store.set_meta("probe", "written")
    writer = hold_store(tmp_path / "results.duckdb", 1.5)
    try:
        with ResultsStore.in_run_dir(tmp_path, read_only=True, wait_s=30) as store:
            assert store.meta("probe") == "written"
    finally:
        writer.wait()


def test_a_store_busy_past_the_wait_is_one_line_naming_the_holder(tmp_path, monkeypatch):
    with ResultsStore(tmp_path / "results.duckdb"):
        pass
    writer = hold_store(tmp_path / "results.duckdb", 60)
    try:
        with pytest.raises(StoreBusy, match=rf"results\.duckdb is busy: pid {writer.pid} \(.*\) has held it for more than 0\.3 s; try again"):
            ResultsStore.in_run_dir(tmp_path, read_only=True, wait_s=0.3)
        monkeypatch.setattr("objlab.store.READ_WAIT_S", 0.3)
        for command in (["results", str(tmp_path)], ["report", str(tmp_path)], ["status", str(tmp_path)]):
            result = CliRunner().invoke(app, command)
            assert result.exit_code == 2, (command, result.output)
            assert "is busy" in result.output and "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3
    finally:
        writer.kill()
        writer.wait()


def test_a_file_that_is_not_a_store_is_a_named_error(tmp_path):
    (tmp_path / "results.duckdb").write_text("not a database")
    with pytest.raises(StateError, match=r"results\.duckdb: cannot open the results store"):
        ResultsStore.in_run_dir(tmp_path, read_only=True)


def test_a_schema_1_store_is_read_and_upgraded(tmp_path):
    from objlab.store import SCHEMA_VERSION

    with ResultsStore(tmp_path / "results.duckdb") as store:  # schema 1: no failures table, no cells.model
        store.db.execute("DROP TABLE failures")
        store.db.execute("ALTER TABLE cells DROP COLUMN model")
        store.set_meta("schema_version", "1")
    with ResultsStore.in_run_dir(tmp_path, read_only=True) as store:
        assert store.failures() == [] and store.meta("schema_version") == "1"
    with ResultsStore.in_run_dir(tmp_path) as store:
        assert store.meta("schema_version") == SCHEMA_VERSION == "3" and store.failures() == []
        assert store._has_column("cells", "model")


# -- bad input to the new machinery -------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "message"), [
    ("train.stp=1", "unknown point 'train.stp'"),
    ("train.step=0", "expected train.step=N with N a positive hit count"),
    ("train.step=x", "expected train.step=N"),
    ("train.step=1:sleep=soon", "expected nothing or ':sleep=SECONDS'"),
])
def test_malformed_fault_spec_is_a_named_error(spec, message):
    with pytest.raises(ConfigError, match=rf"OBJLAB_FAULTS: {message}"):
        parse_faults(spec)


def test_malformed_status_file_is_named_and_status_still_answers(tmp_path, tiny_model):
    config = small_grid(tmp_path, tiny_model, {"sft": {}})
    run_grid(config, tmp_path / "run")
    status_file = tmp_path / "run" / "status.json"
    status_file.write_text('{"version": 1, "state": "running"')
    view = grid_view(tmp_path / "run")
    assert view.problems and f"{status_file}:1: not valid JSON" in view.problems[0]
    assert view.count("finished") == 2
    status_file.write_text(json.dumps({"version": 1, "state": "exploded", "pid": 1}))
    from objlab.errors import DataError

    with pytest.raises(DataError, match=rf"{status_file}: not an objlab status file \(state: Input should be"):
        read_status(tmp_path / "run")
    status_file.write_text(json.dumps({"version": 7}))
    with pytest.raises(DataError, match="status file version 7, this objlab reads 1"):
        read_status(tmp_path / "run")
    assert CliRunner().invoke(app, ["status", str(tmp_path / "nowhere")]).output.count("not a run directory") == 1


def test_status_of_a_finished_grid(tmp_path, tiny_model):
    from rich.console import Console

    config = small_grid(tmp_path, tiny_model, {"sft": {}})
    run_grid(config, tmp_path / "run")
    console = Console(record=True, width=160)
    render_status(grid_view(tmp_path / "run"), console, all_cells=True)
    text = console.export_text()
    assert "not running; the last grid finished" in text
    assert "cells: 2 in the grid: 2 finished, 0 running, 0 failed, 0 pending" in text
    assert "time left: none" in text
    for phase in ("evaluate base", "train", "evaluate", "record"):
        assert f"│ {phase} " in text


def test_a_cell_the_store_refuses_is_a_failure_and_the_grid_goes_on(tmp_path, tiny_model, monkeypatch):
    import objlab.runner.execute as execute

    config = small_grid(tmp_path, tiny_model, {"sft": {}, "kl": {}})
    real = execute.record_outcome

    def refuse_sft(store, outcome, base, run_dir):
        if outcome.cell.objective == "sft":
            raise ValueError("a value the store cannot hold")
        real(store, outcome, base, run_dir)

    monkeypatch.setattr(execute, "record_outcome", refuse_sft)
    summary = run_grid(config, tmp_path / "run")
    assert summary.cells_failed == ["sft/seed-0/budget-600"] and summary.cells_run == [BASE_CELL, "kl/seed-0/budget-600"]
    with ResultsStore.in_run_dir(tmp_path / "run", read_only=True) as store:
        (failure,) = store.failures()
    assert (failure.phase, failure.error_type, failure.message) == ("record", "ValueError", "a value the store cannot hold")


@pytest.mark.slow
def test_status_results_and_report_answer_while_a_grid_runs(tmp_path, tiny_model):
    """The issue's acceptance check: a grid runs in another process (paused inside its second
    unit's training); status, results and report print what is done with exit status 0, and a
    second `objlab run` on the directory is refused."""
    import time

    small_grid(tmp_path, tiny_model, {"sft": {}, "kl": {}}, budgets=[600, 1200])
    run_dir = tmp_path / "run"
    from tiny import REPO as repo
    env = {**os.environ, "OBJLAB_FAULTS": "train.step=13:sleep=120", "PYTHONPATH": str(repo / "src"), "OMP_NUM_THREADS": "1"}
    grid = subprocess.Popen([sys.executable, "-m", "objlab.cli", "run", str(tmp_path / "config.yaml"), "--out", str(run_dir)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            status = read_status(run_dir) if (run_dir / "status.json").is_file() else None
            if status and any(p.phase == "train" and p.unit == "kl/seed-0" for p in status.running):
                break
            assert grid.poll() is None, grid.stdout.read()
            assert time.monotonic() < deadline, "the grid did not reach its second unit"
            time.sleep(0.2)
        runner = CliRunner()
        shown = runner.invoke(app, ["status", str(run_dir)], terminal_width=200)
        assert shown.exit_code == 0, shown.output
        assert f"pid {grid.pid}" in shown.output and "3 finished, 2 running, 0 failed, 0 pending" in shown.output
        assert "running: kl/seed-0/budget-600, kl/seed-0/budget-1200: train for" in shown.output
        assert "estimated time left: about" in shown.output and "training sft" in shown.output
        results = runner.invoke(app, ["results", str(run_dir)], terminal_width=200)
        assert results.exit_code == 0, results.output
        rows = [line for line in results.output.splitlines() if line.startswith("│ sft ")]  # headline rows (the evidence table's start with the cell id)
        assert len(rows) == 2 and "│ kl " not in results.output
        report = runner.invoke(app, ["report", str(run_dir)])
        assert report.exit_code == 0 and "2 cell(s) pending" in (run_dir / "report" / "report.html").read_text()
        second = runner.invoke(app, ["run", str(tmp_path / "config.yaml"), "--out", str(run_dir)])
        assert second.exit_code == 2 and f"is in use by another `objlab run` (pid {grid.pid}" in second.output
        assert grid.poll() is None  # none of this disturbed the grid
    finally:
        grid.kill()
        grid.wait()
