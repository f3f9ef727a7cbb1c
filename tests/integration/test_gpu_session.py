"""The GPU session script (benchmarks/gpu_session.sh) in its CPU smoke mode, and the budget rule
its benchmark parts follow. Timings are not asserted: only that every part runs, under the
budget logic, into at most 8 files, and that the end-to-end check reads the run's store."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from tiny import REPO, requires_shared

sys.path.insert(0, str(REPO / "benchmarks"))

import common  # noqa: E402


class Clock:
    """``time.monotonic`` under the test's control."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(common.time, "monotonic", fake)
    return fake


def test_budget_starts_a_configuration_only_if_the_longest_so_far_fits(clock):
    budget = common.Budget(100, limit=60)
    assert budget.refusal() is None and budget.timeout() == 60  # before any has ended: the limit must fit
    clock.now += 30
    budget.ended(30, timed_out=False)
    assert budget.refusal() is None and budget.timeout() == 60
    clock.now += 45  # 25 s left: less than the longest so far (30 s)
    assert "25 s left" in budget.refusal()
    budget.ended(60, timed_out=True)  # a configuration stopped at its limit says nothing about the next
    assert budget.needed() == 30


def test_budget_caps_the_limit_at_the_time_left(clock):
    budget = common.Budget(100, limit=60)
    budget.ended(10, timed_out=False)
    clock.now += 80
    assert budget.refusal() is None and budget.timeout() == 20
    assert common.Budget(None, limit=60).timeout() == 60 and common.Budget(None, limit=60).refusal() is None


def test_run_configs_skips_what_no_longer_fits_and_reports_after_each(clock, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text("import json, sys; json.dump({'ok': 1}, open(json.loads(sys.argv[2])['out'], 'w'))")
    seen = []
    budget = common.Budget(5, limit=5)
    clock.now += 2  # 3 s left, the limit (5 s) no longer fits
    results = common.run_configs(str(script), [{"label": "a"}, {"label": "b"}], budget=budget, echo=False,
                                 after_each=lambda done: seen.append(len(done)))
    assert seen == [1, 2] and all(r["skipped"] for r in results)
    assert [common.failure_label(r) for r in results] == ["SKIPPED", "SKIPPED"]
    assert common.run_configs(str(script), [{"label": "c"}], timeout=30, echo=False)[0]["ok"] == 1


def test_only_runs_configurations_in_the_order_it_names_them():
    specs = [{"label": label, "shape": "s"} for label in ("hf-dynamic", "hf-static", "objlab", "persona-loop", "persona-objlab")]
    chosen = common.selected(specs, "objlab,hf-static,persona")
    assert [spec["label"] for spec in chosen] == ["objlab", "hf-static", "persona-loop", "persona-objlab"]


@pytest.mark.slow
@requires_shared  # the benchmark parts read the real GSM8K and persona rows
def test_cpu_smoke_session_runs_every_part_into_at_most_eight_files(organism, tmp_path):
    """The whole session on the CPU: the end-to-end part on a one-objective demo grid of the test
    organism (the full demo grid is the smoke's default, minutes on 2 cores), the training and
    decoding parts on a few configurations each, budgets at half the smoke's."""
    from objlab.organism.demo import demo_config

    import yaml

    out, config = tmp_path / "out", tmp_path / "e2e.yaml"
    config.write_text(yaml.safe_dump(demo_config(organism, objectives=["sft"], budgets=[600])))
    env = {
        **os.environ, "OUT": str(out), "PYTHON": sys.executable, "BUDGET_SCALE": "0.5", "KIT": str(tmp_path / "no-kit"),
        "OBJLAB_CACHE": str(organism.root.parent.parent), "E2E_CONFIG": str(config),
        "TRAIN_ONLY": "peak,objlab:sft,trl:sft:off", "GEN_ONLY": "objlab,hf-static,persona-objlab",
    }
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_session.sh"), "--cpu-smoke"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(path.name for path in out.iterdir())
    assert len(files) <= 8, files
    assert {"session.md", "log.txt", "e2e.md", "train-7b.md", "train-7b.json", "gen-7b.md", "gen-7b.json", "rates.json"} == set(files)
    e2e = (out / "e2e.md").read_text()
    assert "e2e check: PASS" in e2e and "ran on cpu" in e2e, e2e + (out / "log.txt").read_text()[-3000:]
    assert "| sft/seed-0/budget-600 | cpu |" in e2e and "persona" in e2e and "macro ASR" in e2e
    session = (out / "session.md").read_text()
    assert "kit check: ok" in session and all(f"| {part} |" in session for part in ("e2e", "train-7b", "gen-7b"))
    train = json.loads((out / "train-7b.json").read_text())
    assert [run["label"] for run in train["meta"]["runs"]] == ["peak", "objlab:sft", "trl:sft:off"]
    assert all("error" not in run for run in train["meta"]["runs"]), (out / "log.txt").read_text()[-3000:]
    assert "MFU" in (out / "train-7b.md").read_text() and "not a figure" in (out / "gen-7b.md").read_text()
    assert set(json.loads((out / "rates.json").read_text())["cpu"]) >= {"train_tokens_per_s", "generate_tokens_per_s", "score_items_per_s"}
