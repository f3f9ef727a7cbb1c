"""The grid runner end to end on the tiny model: resume after SIGKILL, extension, config guard,
the plan, and the verdict cache surviving a restart."""

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from factories import torch_threads
from grids import TRAIN, grid_config
from tiny import SHARED_STRONGREJECT, requires_shared
from typer.testing import CliRunner

from objlab.cli import app
from objlab.config import load_config
from objlab.errors import StateError
from objlab.runner.execute import run_grid
from objlab.store import BASE_CELL, ResultsStore


def stored(run_dir):
    """Every stored cell's figures, keyed by cell, plus how often each cell id occurs."""
    with ResultsStore.in_run_dir(run_dir, read_only=True) as store:
        counts = dict(store.db.execute("SELECT cell_id, count(*) FROM cells GROUP BY cell_id").fetchall())
        figures = {
            cell: sorted((m.axis, m.metric, m.group, m.comparison or "", round(m.value, 12), m.n) for m in store.cell_metrics(cell) if m.value == m.value)
            for cell in counts
        }
    return counts, figures


def wait_for(path, process, timeout=300):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (rc {process.returncode}) before {path} appeared:\n{process.stdout.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.02)


@pytest.mark.slow
def test_killed_grid_resumes_to_the_uninterrupted_result(tmp_path, tiny_model):
    config_path = grid_config(tmp_path, tiny_model)
    config = load_config(config_path)
    reference = run_grid(config, tmp_path / "reference")
    assert len(reference.cells_run) == 5

    run_dir = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "objlab.cli", "run", str(config_path), "--out", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    wait_for(run_dir / "work" / "dpo" / "seed-0" / "LATEST", process)  # the second unit has checkpointed
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    resumed = run_grid(config, run_dir)
    assert BASE_CELL not in resumed.cells_run and "sft/seed-0/budget-600" not in resumed.cells_run
    assert set(resumed.cells_run) == {"dpo/seed-0/budget-600", "dpo/seed-0/budget-1200"}
    counts, figures = stored(run_dir)
    reference_counts, reference_figures = stored(tmp_path / "reference")
    assert counts == reference_counts == {cell: 1 for cell in reference_counts}
    assert figures == reference_figures
    snapshot, end = (load_train_manifest(run_dir, f"dpo/seed-0/budget-{b}") for b in (600, 1200))
    assert end["resumed_from_step"] > 0 and (snapshot["mode"], end["mode"]) == ("snapshot", "own-run")

    again = run_grid(config, run_dir)
    assert again.cells_run == []


def load_train_manifest(run_dir, cell_id):
    import json

    with ResultsStore.in_run_dir(run_dir, read_only=True) as store:
        (text,) = store.db.execute("SELECT train_manifest FROM cells WHERE cell_id = ?", [cell_id]).fetchone()
    return json.loads(text)


def test_extension_runs_only_new_cells_and_changed_config_is_refused(tmp_path, tiny_model):
    run_dir = tmp_path / "run"
    first = run_grid(load_config(grid_config(tmp_path, tiny_model, objectives={"sft": {}}, budgets=[600])), run_dir)
    assert first.cells_run == [BASE_CELL, "sft/seed-0/budget-600"]
    _, before = stored(run_dir)

    extended = load_config(grid_config(tmp_path, tiny_model, objectives={"sft": {}, "kl": {}}, budgets=[600]))
    assert run_grid(extended, run_dir).cells_run == ["kl/seed-0/budget-600"]
    counts, after = stored(run_dir)
    assert set(counts) == {BASE_CELL, "sft/seed-0/budget-600", "kl/seed-0/budget-600"}
    assert after[BASE_CELL] == before[BASE_CELL]

    changed = load_config(grid_config(tmp_path, tiny_model, objectives={"sft": {}}, budgets=[600], train={**TRAIN, "batch_size": 3}))
    with pytest.raises(StateError, match=r"changed:\n  train.batch_size: 2 -> 3\nOnly"):
        run_grid(changed, run_dir)


def test_plan_prints_units_tokens_and_evaluation(tmp_path, tiny_model):
    config_path = grid_config(tmp_path, tiny_model)
    result = CliRunner().invoke(app, ["run", str(config_path), "--out", str(tmp_path / "run"), "--plan"])
    assert result.exit_code == 0, result.output
    for text in ("sft/seed-0", "dpo/seed-0", "snapshots", "5 checkpoints", "generations", "scored persona answers"):
        assert text in result.output
    assert not (tmp_path / "run").exists()


def test_ray_local_grid_matches_sequential(tmp_path, tiny_model):
    pytest.importorskip("ray")
    config = load_config(grid_config(tmp_path, tiny_model, objectives={"sft": {}}, budgets=[600]))
    with torch_threads(1):  # as Ray's one-CPU workers run (OMP_NUM_THREADS=1)
        run_grid(config, tmp_path / "sequential")
    summary = run_grid(config, tmp_path / "ray", ray="local")
    assert sorted(summary.cells_run) == [BASE_CELL, "sft/seed-0/budget-600"]
    assert stored(tmp_path / "ray") == stored(tmp_path / "sequential")


def test_rerun_after_crash_asks_the_judge_nothing_already_judged(tmp_path, tiny_model, monkeypatch):
    """Verdicts are stored as they come: a cell lost to a crash before it was recorded is
    evaluated again with zero new judge calls (counted by a fake endpoint)."""
    from fake_judge import KEY_ENV, SECRET, FakeOpenAI

    monkeypatch.setenv(KEY_ENV, SECRET)
    server = FakeOpenAI()
    try:
        endpoint = {"kind": "openai", "model": "fake-judge", "base_url": server.base_url, "api_key_env": KEY_ENV, "backoff_s": 0.01}
        path = grid_config(tmp_path, tiny_model, objectives={"sft": {}}, budgets=[600])
        data = yaml.safe_load(path.read_text())
        data["eval"]["judge"] = endpoint
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        config = load_config(path)
        run_dir = tmp_path / "run"
        run_grid(config, run_dir)
        asked = len(server.requests)
        assert asked > 0
        _, before = stored(run_dir)
        with ResultsStore.in_run_dir(run_dir) as store:  # the crash: the cell's rows never written
            for table in ("cells", "metrics", "items", "train_log"):
                store.db.execute(f"DELETE FROM {table} WHERE cell_id = ?", ["sft/seed-0/budget-600"])
        assert run_grid(config, run_dir).cells_run == ["sft/seed-0/budget-600"]
        assert len(server.requests) == asked
        assert stored(run_dir)[1] == before
    finally:
        server.close()
    assert SECRET not in (run_dir / "results.duckdb").read_bytes().decode("latin-1")


def test_cli_run_prints_headline_writes_report_and_exports(tmp_path, tiny_model):
    config_path = grid_config(tmp_path, tiny_model, objectives={"sft": {}}, budgets=[600])
    run_dir = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(config_path), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert (run_dir / "report" / "report.html").is_file() and "sft" in result.output
    result = runner.invoke(app, ["results", str(run_dir), "--export", "parquet"])
    assert result.exit_code == 0, result.output
    assert {"metrics.parquet", "items.parquet", "cells.parquet"} <= {p.name for p in (run_dir / "export").iterdir()}
    result = runner.invoke(app, ["results", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no results.duckdb" in result.output


@requires_shared
def test_grid_with_strongreject_instruments_states_them_in_every_table(tmp_path, tiny_model, monkeypatch):
    """seed5 from StrongREJECT's files and its rubric through a scripted judge: the plan counts the
    attacks and the skipped translation, and the report and `results` state the ASR definition,
    the rubric and every attack's source."""
    from fake_judge import KEY_ENV, SECRET, FakeOpenAI

    monkeypatch.setenv(KEY_ENV, SECRET)
    server = FakeOpenAI()
    wrapping = SHARED_STRONGREJECT / "wrapping_jailbreaks.json"
    try:
        path = grid_config(tmp_path, tiny_model, objectives={"sft": {}}, budgets=[600])
        data = yaml.safe_load(path.read_text())
        data["eval"]["jailbreak"] = {"prompts": str(SHARED_STRONGREJECT / "strongreject_small_dataset.csv"), "limit": 6,
                                     "attacks": ["none", "seed5"], "strongreject": str(wrapping)}
        data["eval"]["judge"] = {"kind": "openai", "model": "fake-judge", "base_url": server.base_url, "api_key_env": KEY_ENV,
                                 "backoff_s": 0.01, "rubric": str(SHARED_STRONGREJECT / "judge_templates.json")}
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        runner, run_dir = CliRunner(), tmp_path / "run"
        plan = runner.invoke(app, ["run", str(path), "--out", str(run_dir), "--plan"], env={"COLUMNS": "250"})
        assert plan.exit_code == 0, plan.output
        ran = ["none", "strongreject/dev_mode_v2", "strongreject/prefix_injection", "strongreject/aim", "strongreject/wikipedia"]
        assert f"jailbreak attacks (5): {', '.join(ran)}" in plan.output
        assert "skipped: jailbreak strongreject/translation_zulu: needs a translator" in plan.output
        assert "33 generations" in plan.output and "30 judge calls" in plan.output  # 3 problems + 5 attacks x 6 prompts
        result = runner.invoke(app, ["run", str(path), "--out", str(run_dir)], env={"COLUMNS": "250"})
        assert result.exit_code == 0, result.output
    finally:
        server.close()
    assert len([r for r in server.requests if r["messages"][0]["content"].startswith("You are a helpful red teaming")]) > 0
    page = (run_dir / "report" / "report.html").read_text()
    for attack in ran[1:]:
        assert f"{attack} (strongreject: {wrapping})" in page, attack
    assert "none (objlab: objlab/evaluate/axes/attack_templates/none.yaml)" in page
    assert "StrongREJECT&#x27;s rubric (strongreject_rubric from" in page and "ASR per attack = the share of forbidden prompts" in page
    assert "strongreject/translation_zulu" in page and "skipped, not in the macro" in page
    headline = runner.invoke(app, ["results", str(run_dir)], env={"COLUMNS": "250"})
    assert headline.exit_code == 0, headline.output
    assert "macro ASR = the mean over strongreject/dev_mode_v2" in headline.output and "success: the judge answers" in headline.output


def test_plan_estimate_prices_each_phase_at_its_measured_rate():
    """The estimate by hand: rates measured on a model of P matmul parameters, scaled to one
    twice as large (a smaller one is priced at the measured rates); a persona statement (the
    benchmark's unit) is two scored answers."""
    from objlab.runner.plan import EvalPlan, GridPlan, UnitPlan, estimate_seconds

    unit = UnitPlan("dpo/seed-0", "dpo", steps=10, task_tokens=3000, compute_tokens=1500, generated_tokens=0,
                    cells=["a"], pending=["a"])
    done = UnitPlan("sft/seed-0", "sft", steps=10, task_tokens=3000, compute_tokens=0, generated_tokens=0, cells=["b"], pending=[])
    evaluation = EvalPlan(checkpoints=2, generations_per_checkpoint=10, generated_tokens_per_checkpoint=400,
                          scored_items_per_checkpoint=60, judge_calls_per_checkpoint=0,
                          lm_eval_requests_per_checkpoint={"loglikelihood": 40, "generate_until": 5},
                          lm_eval_generated_tokens_per_checkpoint=100)
    rates = {"matmul_parameters": 1000, "train_tokens_per_s": 100.0, "generate_tokens_per_s": 50.0,
             "score_items_per_s": 20.0, "measured": "today"}
    estimate = estimate_seconds(GridPlan("snapshots", [unit, done], evaluation, True, None), 2000, rates)
    assert estimate["train_s"] == pytest.approx((3000 + 1500 / 3) / 50.0)  # the finished unit costs nothing
    # per checkpoint: (400 + 100) tokens at 25/s; (60 answers + 40 log-likelihoods) at 2 x 10 statements/s
    assert estimate["eval_s"] == pytest.approx(2 * (500 / 25.0 + 100 / 20.0))
    assert estimate["rates_from"] == "today"
    smaller = estimate_seconds(GridPlan("snapshots", [unit, done], evaluation, True, None), 200, rates)
    assert smaller["train_s"] == pytest.approx((3000 + 1500 / 3) / 100.0)  # not 5x faster: priced at the measured rate
