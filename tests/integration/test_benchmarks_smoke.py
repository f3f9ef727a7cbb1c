"""Smoke test of benchmarks/: each script's measurement code runs in-process on a very small
shape and its table is built. Nothing is timed against a threshold (benchmarks are not tests);
this only notices when a benchmark breaks."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # as the scripts' subprocesses do

import common
import generation
import grid_eval
import train_vs_trl
from tiny import requires_shared

SMALL = {"device": "cpu", "dtype": "float32", "shape": "llama-smoke"}


@pytest.fixture(scope="module")
def small_model_dir() -> str:
    return str(common.model_dir("llama-smoke"))


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on shared cores two threads stall on each other and seconds become minutes."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def run(worker, spec: dict, tmp_path: Path) -> dict:
    spec = {**spec, "tmp": str(tmp_path / spec["label"].replace(":", "-"))}
    Path(spec["tmp"]).mkdir()
    return {**spec, **worker(spec)}


@requires_shared  # the scripts measure on the real GSM8K and persona rows
def test_train_vs_trl(tmp_path, small_model_dir):
    base = {**SMALL, "batch": 2, "warmup": 1, "steps": 1, "model_dir": small_model_dir}
    specs = [
        {**base, "side": "objlab", "objective": "sft", "label": "objlab:sft"},
        {**base, "side": "objlab", "objective": "dpo", "label": "objlab:dpo"},
        {**base, "side": "trl", "objective": "dpo", "checkpointing": "off", "label": "trl:dpo:off"},
    ]
    results = [run(train_vs_trl.worker, spec, tmp_path) for spec in specs]
    assert results[2]["tokenisation_matches"]
    assert results[1]["tokens"] == results[2]["tokens"] > 0  # the same rows on both sides
    # objlab forwards a pair's shared prefix once (policy and reference pass alike), TRL each sequence whole
    assert results[1]["trained_tokens"] == results[1]["forward_only_tokens"] < results[2]["trained_tokens"]
    rows = train_vs_trl.table_rows(results, peak_flops=None)
    table = common.markdown_table(train_vs_trl.columns(gpu=False), rows)
    assert table.count("\n") == 1 + len(results) and "TRL DPOTrainer, no checkpointing" in table
    assert rows[1]["cost_predicted"] > 1 and rows[2]["speed_ratio"] > 0


@requires_shared  # the scripts measure on the real GSM8K and persona rows
def test_generation(tmp_path, small_model_dir):
    base = {**SMALL, "model_dir": small_model_dir, "prompts": 3, "new_tokens": 2, "items": 3}
    results = [run(generation.worker, {**base, "run": name, "label": name}, tmp_path) for name in generation.WORKERS]
    assert all(0 < r["count"] <= 6 for r in results[:3]) and [r["count"] for r in results[3:]] == [3, 3]
    table = common.markdown_table(generation.COLUMNS, generation.table_rows(results))
    assert "objlab default backend" in table
    assert "largest difference" in generation.notes(results, argparse.Namespace(quick=False))[-1]


@requires_shared  # the model directories are built from the real GSM8K and persona rows
def test_default_shapes_and_sizes():
    """On CPU both scripts run the tiny shape and the real Qwen2.5-0.5B shape (a few steps, fp32),
    the 0.5B rows beside the tiny ones in one table."""
    assert common.shape_list(None, "cpu") == ["llama-tiny", "qwen2.5-0.5b"]
    assert common.shape_list("qwen2.5-7b", "cuda") == ["qwen2.5-7b"]
    with pytest.raises(SystemExit, match="unknown shape"):
        common.shape_list("llama-huge", "cpu")
    args = argparse.Namespace(device="cpu", quick=False, batch=None, warmup=None, steps=None, shapes=["llama-tiny", "qwen2.5-0.5b"], rejected=None)
    specs = train_vs_trl.plan_specs(args)
    real = [spec for spec in specs if spec["shape"] == "qwen2.5-0.5b"]
    assert {spec["objective"] for spec in real} == set(train_vs_trl.CPU_REAL_OBJECTIVES)
    assert (real[0]["batch"], real[0]["warmup"], real[0]["steps"]) == (2, 1, 3)
    tiny = [spec for spec in specs if spec["shape"] == "llama-tiny"]
    assert (tiny[0]["batch"], tiny[0]["warmup"], tiny[0]["steps"]) == (4, 3, 20) and len(tiny) == 13
    assert [spec["label"] for spec in common.selected(specs, "qwen2.5-0.5b/objlab:sft")] == ["objlab:sft"]
    generation_args = argparse.Namespace(device="cpu", quick=False, prompts=None, new_tokens=None, persona_items=None, shapes=args.shapes)
    assert {(spec["shape"], spec["prompts"]) for spec in generation.plan_specs(generation_args)} == {("llama-tiny", 64), ("qwen2.5-0.5b", 16)}


@requires_shared  # the scripts measure on the real GSM8K and persona rows
def test_grid_eval(tmp_path):
    args = argparse.Namespace(organism=None, quick=True, adapters=2, shape="llama-smoke", group=16)
    config, adapters = grid_eval.prepare(args, tmp_path)
    base = {"config": str(config), "adapters": adapters, "groups": [adapters], "model": "small"}
    results = [run(grid_eval.worker, {**base, "path": path, "label": path}, tmp_path) for path in ("shared", "naive")]
    shared, naive = results
    assert (shared["base_evaluations"], naive["base_evaluations"]) == (1, 2)
    assert shared["digests"] == naive["digests"]  # the same figures either way
    common.markdown_table(grid_eval.COLUMNS, grid_eval.table_rows(results))


def test_median_runs_keeps_the_gpu_matmul_peak():
    """A GPU run starts with the matmul-peak configuration, which has no timing window: the
    median over rounds keeps its best figure instead of failing (it did on the first H200 run)."""
    peak = [{"side": "peak", "label": "peak", "bf16_matmul_flops": value} for value in (7e14, 7.4e14)]
    sft = [{"side": "objlab", "label": "objlab:sft", "window_s": w, "tokens": 100} for w in (1.0, 2.0)]
    chosen = train_vs_trl.median_runs([[peak[0], sft[0]], [peak[1], sft[1]]])
    assert chosen[0]["bf16_matmul_flops"] == 7.4e14
    assert chosen[1]["window_s"] == 1.0 and chosen[1]["tokens_per_s_runs"] == [100.0, 50.0]
