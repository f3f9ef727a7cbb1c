"""`run --plan` for the reference study, offline: the five models priced from their shapes (each
shape rebuilt in transformers and counted), GPU-hours on a named GPU from measured or derived
rates, training priced from the budgets when the data cannot be read, lm-eval from the preset's
published sizes, and the preset's plan printed per model with what was not counted."""

import pytest
import torch
import yaml
from paper_preset import PAPER_MODELS, preset_text, with_one_model
from rich.console import Console
from typer.testing import CliRunner

from objlab.cli import app
from objlab.config import parse_config
from objlab.config.evaluation import LmEvalSettings
from objlab.errors import ConfigError
from objlab.lm.loading import matmul_parameters as count_matmul_parameters
from objlab.runner.architectures import KNOWN, known_architecture
from objlab.runner.grid import expand
from objlab.runner.plan import build_study, measured_rates, render_study
from objlab.runner.plan_estimates import estimate_unit, preset_requests
from objlab.runner.plan_inputs import PlanInputs
from objlab.runner.pricing import rates_for_gpu

H200 = "NVIDIA H200"


@pytest.mark.parametrize("name", list(KNOWN))
def test_each_known_shape_counts_as_transformers_builds_it(name):
    """The table's count equals the linear weights of the model transformers builds from the
    same numbers (on the meta device: no weights, no download)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    shape = KNOWN[name]
    config = AutoConfig.for_model(
        shape.family, hidden_size=shape.hidden, num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads, head_dim=shape.head_dim, intermediate_size=shape.intermediate,
        vocab_size=shape.vocab, tie_word_embeddings=shape.tied_embeddings,
    )
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    assert count_matmul_parameters(model) == shape.matmul_parameters()
    assert known_architecture(name.upper()) is shape


def test_the_qwen_shape_is_the_one_the_h200_benchmark_measured():
    assert KNOWN["Qwen/Qwen2.5-7B-Instruct"].matmul_parameters() == measured_rates()[H200]["matmul_parameters"]
    assert list(KNOWN) == PAPER_MODELS


def test_h200_is_measured_and_h100_derived_and_labelled():
    measured = measured_rates()
    h200 = rates_for_gpu("H200", measured)
    assert not h200.derived and h200.rates == measured[H200] and "measured on one NVIDIA H200 2026-11-30" in h200.label
    h100 = rates_for_gpu("h100", measured)
    assert h100.derived and h100.label.startswith("DERIVED from the H200's rates measured 2026-11-30")
    assert h100.rates["train_tokens_per_s"] == pytest.approx(measured[H200]["train_tokens_per_s"])  # same bf16 peak
    assert h100.rates["score_items_per_s"] == pytest.approx(measured[H200]["score_items_per_s"])
    assert h100.rates["generate_tokens_per_s"] == pytest.approx(measured[H200]["generate_tokens_per_s"] * 3.35 / 4.8)
    with pytest.raises(ConfigError, match=r"--gpu: unknown GPU 'A100' \(known: H100, H200\)"):
        rates_for_gpu("A100", measured)
    with pytest.raises(ConfigError, match=r"no measured GPU rates"):
        rates_for_gpu("H100", {"cpu": measured["cpu"]})


def test_units_from_the_budget_by_what_each_objective_forwards():
    config = parse_config(yaml.safe_load(with_one_model(preset_text())))
    extra = {unit.objective: estimate_unit(config, unit).compute_tokens // 800_000 for unit in expand(config)}
    assert extra == {"sft": 0, "ip": 0, "kl": 1, "orpo": 1, "cft": 1, "dpo": 3}
    assert {estimate_unit(config, unit).task_tokens for unit in expand(config)} == {800_000}


def test_lm_eval_counted_from_the_presets_published_sizes():
    requests, generated, left_out = preset_requests(LmEvalSettings(preset="normative", tasks=["arc_easy"]))
    assert requests == {"generate_until": 817 + 171, "loglikelihood": 817 * 2 * 2 + 720 * 2}
    assert generated == 817 * 256 + 171 * 80 and left_out == ["arc_easy"]
    assert preset_requests(LmEvalSettings(preset="normative", limit=100))[0] == {"generate_until": 200, "loglikelihood": 600}


@pytest.fixture
def paper_config(tmp_path):
    path = tmp_path / "paper.yaml"
    path.write_text(with_one_model(preset_text()))
    return path


def test_the_papers_plan_runs_offline_with_no_data_and_no_weights(paper_config, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(app, ["run", str(paper_config), "--plan", "--gpu", "H100"], env={"COLUMNS": "250", "HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "meta-llama/Llama-3.1-8B-Instruct: training, snapshots" in out and out.count("800,000*") == 18
    assert "evaluation: 109 checkpoints to evaluate (base model included)" in out
    assert "counted 1,319 (GSM8K's published test split)" in out and "counted 313 (StrongREJECT's published forbidden prompts)" in out
    assert "lm-eval per checkpoint: 988 generate_until, 4,708 loglikelihood requests" in out
    assert "tokenizer of meta-llama/Llama-3.1-8B-Instruct: not read" in out and "task data hf:openai/gsm8k: not read" in out
    assert "training priced from the budgets (*)" in out
    assert "time ESTIMATE on one H100, meta-llama/Llama-3.1-8B-Instruct priced from its shape in objlab's table" in out
    assert "GPU-hours" in out and "DERIVED from the H200's rates" in out
    result = CliRunner().invoke(app, ["run", str(paper_config), "--gpu", "H100"], env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 2 and "--gpu prices a plan: use it with --plan" in result.output


def test_a_study_of_several_models_is_planned_per_model(tmp_path, monkeypatch):
    """The preset as written, its five models in models:: one plan per model, the evaluation
    counted once, and the study's GPU-hours their sum."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = tmp_path / "paper.yaml"
    path.write_text(preset_text())
    config = parse_config(yaml.safe_load(path.read_text()), base_dir=tmp_path)
    assert [entry.name_or_path for entry in config.models] == PAPER_MODELS
    study = build_study(config, gpu="H200", inputs=PlanInputs(strict=False, offline=True))
    assert [plan.model for plan in study.plans] == PAPER_MODELS
    assert all(plan.cells == 108 and plan.evaluation.checkpoints == 109 for plan in study.plans)
    hours = {plan.model: plan.gpu_hours for plan in study.plans}
    assert hours["google/gemma-2-9b-it"] > hours["meta-llama/Llama-3.1-8B-Instruct"] > hours["Qwen/Qwen2.5-7B-Instruct"]
    assert study.gpu_hours == pytest.approx(sum(hours.values()))
    console = Console(width=250, record=True)
    render_study(study, console)
    text = console.export_text()
    assert text.count("108 cells (108 to run), 109 checkpoints to evaluate") == 5
    assert f"all 5 models: 540 cells, ESTIMATE {study.gpu_hours:,.0f} GPU-hours on one H200" in text
