"""The training loop: exact budgets, determinism, resume, snapshots, micro-batching, outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from factories import adapter_tensors, assert_same_adapter

from objlab.cli import app
from objlab.data.chat import ChatEncoder
from objlab.data.tasks import load_examples
from objlab.lm.loading import load_tokenizer
from objlab.train import loop
from objlab.train.loop import TrainRequest, train
from objlab.train.outputs import read_log, read_manifest

OBJECTIVES = ["sft", "dpo", "orpo", "kl", "cft", "ip", "aware"]


def run(config, objective, out: Path, budgets, seed=0):
    outputs = {budgets[0]: out} if len(budgets) == 1 else {b: out / f"budget-{b}" for b in budgets}
    return train(TrainRequest(config, objective, seed, outputs, out)), outputs


def expected_examples(config, seed, budget):
    """Independent count: tokenise the stream in order and find where the budget is reached."""
    import numpy as np

    examples = load_examples(config.data)
    encoder = ChatEncoder(load_tokenizer(config.model), config.train.max_length)
    order = list(np.random.default_rng([seed, 0]).permutation(len(examples)))
    total = 0
    for count, index in enumerate(order, start=1):
        total += encoder.encode_pair(examples[index].prompt, examples[index].response).length
        if total >= budget:
            return count, total
    raise AssertionError("budget beyond one epoch")


@pytest.mark.parametrize("batch_size", [1, 3, 4, 7])
def test_budget_is_hit_exactly_across_batch_sizes(make_config, tmp_path, batch_size):
    config = make_config(train={"batch_size": batch_size, "warmup_steps": 0, "max_length": 256})
    count, tokens = expected_examples(config, 0, 1500)
    manifests, _ = run(config, "sft", tmp_path / "out", [1500])
    manifest = manifests[1500]
    assert manifest.examples == count
    assert manifest.budget_tokens == tokens >= 1500
    assert manifest.steps == math.ceil(count / batch_size)
    rows = read_log(tmp_path / "out" / "train_log.jsonl")
    assert rows[-1].budget_tokens == tokens
    last_example = tokens - rows[-2].budget_tokens if len(rows) > 1 else tokens
    assert tokens - 1500 < last_example  # never more than one example over


def test_every_objective_consumes_the_same_examples(make_config, tmp_path):
    config = make_config(objectives=OBJECTIVES)
    seen = {}
    for objective in OBJECTIVES:
        manifests, _ = run(config, objective, tmp_path / objective, [600])
        manifest = manifests[600]
        seen[objective] = (manifest.examples, manifest.budget_tokens)
        if objective == "sft":
            assert manifest.compute_tokens == 0
        elif objective != "ip":  # ip adds tokens only for the prompts it happens to inoculate
            assert manifest.compute_tokens > 0, objective
    assert len(set(seen.values())) == 1, seen


def test_same_seed_same_log_different_seed_different_log(make_config, tmp_path):
    config = make_config(objectives=["dpo"])
    run(config, "dpo", tmp_path / "a", [800])
    run(config, "dpo", tmp_path / "b", [800])
    run(config, "dpo", tmp_path / "c", [800], seed=1)
    log_a, log_b = read_log(tmp_path / "a" / "train_log.jsonl"), read_log(tmp_path / "b" / "train_log.jsonl")
    assert log_a == log_b
    assert_same_adapter(tmp_path / "a", tmp_path / "b")
    assert read_log(tmp_path / "c" / "train_log.jsonl") != log_a


def test_first_step_dpo_is_log2_and_kl_equals_sft(make_config, tmp_path):
    config = make_config(objectives=["sft", "dpo", "kl"])
    first = {}
    for objective in ("sft", "dpo", "kl"):
        run(config, objective, tmp_path / objective, [300])
        first[objective] = read_log(tmp_path / objective / "train_log.jsonl")[0]
    assert first["dpo"].loss == pytest.approx(math.log(2), abs=1e-6)
    assert first["kl"].components["kl"] == pytest.approx(0.0, abs=1e-7)
    assert first["kl"].loss == pytest.approx(first["sft"].loss, abs=1e-6)


class Crash(Exception):
    pass


@pytest.mark.parametrize("objective", ["sft", "dpo", "aware"])
def test_resume_equals_uninterrupted(make_config, tmp_path, monkeypatch, objective):
    config = make_config(objectives=[objective], train={"batch_size": 2, "warmup_steps": 1, "checkpoint_every": 2, "max_length": 256})
    run(config, objective, tmp_path / "whole", [2500])
    original = loop.Trainer._step
    calls = {"n": 0}

    def crash_after_five(self, *args):
        calls["n"] += 1
        if calls["n"] == 6:
            raise Crash()
        return original(self, *args)

    monkeypatch.setattr(loop.Trainer, "_step", crash_after_five)
    with pytest.raises(Crash):
        run(config, objective, tmp_path / "resumed", [2500])
    assert (tmp_path / "resumed" / "LATEST").is_file()
    assert not (tmp_path / "resumed" / "manifest.json").exists()
    monkeypatch.setattr(loop.Trainer, "_step", original)
    run(config, objective, tmp_path / "resumed", [2500])
    assert_same_adapter(tmp_path / "whole", tmp_path / "resumed")
    assert read_log(tmp_path / "whole" / "train_log.jsonl") == read_log(tmp_path / "resumed" / "train_log.jsonl")
    assert not list((tmp_path / "resumed").glob("checkpoint-*"))


def test_resume_refuses_a_different_run(make_config, tmp_path, monkeypatch):
    from objlab.errors import StateError

    config = make_config(train={"batch_size": 2, "checkpoint_every": 1, "max_length": 256})
    monkeypatch.setattr(loop.Trainer, "_write_output", lambda *a: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        run(config, "sft", tmp_path / "out", [1500])
    monkeypatch.undo()
    with pytest.raises(StateError, match="differs in: seed"):
        run(config, "sft", tmp_path / "out", [1500], seed=5)


def mid_step_budget(config, near: int) -> int:
    """The first budget from ``near`` up whose examples end part-way through an optimizer step
    (the project's data changes with the organism's world, so fixed budgets would drift)."""
    from objlab.data.chat import ChatEncoder
    from objlab.data.stream import TaskStream
    from objlab.data.tasks import load_examples
    from objlab.lm.loading import load_tokenizer

    stream = TaskStream(load_examples(config.data), ChatEncoder(load_tokenizer(config.model), config.train.max_length), 0)
    budget = near
    while stream.examples_for(budget) % config.train.batch_size == 0:
        budget += 25
    return budget


@pytest.mark.parametrize("objective", ["sft", "dpo", "aware"])
def test_snapshots_equal_separate_runs_bit_for_bit(make_config, tmp_path, objective):
    config = make_config(objectives=[objective], train={"batch_size": 4, "warmup_steps": 2, "checkpoint_every": 3, "max_length": 256})
    budgets = [mid_step_budget(config, 700), mid_step_budget(config, 1300), 2000]
    manifests, outputs = run(config, objective, tmp_path / "snap", budgets)
    assert [manifests[b].mode for b in budgets] == ["snapshot", "snapshot", "own-run"]
    for budget in budgets[:2]:
        separate, _ = run(config, objective, tmp_path / f"sep-{budget}", [budget])
        assert separate[budget].examples == manifests[budget].examples
        assert separate[budget].examples % 4 != 0  # the cut step really is cut
        assert_same_adapter(outputs[budget], tmp_path / f"sep-{budget}")
        assert read_log(outputs[budget] / "train_log.jsonl") == read_log(tmp_path / f"sep-{budget}" / "train_log.jsonl")
    full, _ = run(config, objective, tmp_path / "full", [2000])
    assert_same_adapter(outputs[2000], tmp_path / "full")


def test_decaying_schedule_needs_one_budget_per_run(make_config, tmp_path):
    config = make_config(train={"schedule": "cosine", "batch_size": 2, "warmup_steps": 1, "max_length": 256})
    with pytest.raises(ValueError, match="depends on the budget"):
        run(config, "sft", tmp_path / "out", [300, 600])
    manifests, _ = run(config, "sft", tmp_path / "one", [1500])
    rows = read_log(tmp_path / "one" / "train_log.jsonl")
    assert rows[-1].lr < rows[len(rows) // 2].lr


@pytest.mark.parametrize("objective", ["sft", "dpo", "kl"])
def test_micro_batches_give_the_full_batch_loss(make_config, tmp_path, objective):
    base = {"batch_size": 4, "max_length": 256}
    full = make_config(objectives=[objective], train=base)
    micro = make_config(objectives=[objective], train={**base, "micro_batch_size": 1})
    run(full, objective, tmp_path / "full", [500])
    run(micro, objective, tmp_path / "micro", [500])
    rows_full = read_log(tmp_path / "full" / "train_log.jsonl")
    rows_micro = read_log(tmp_path / "micro" / "train_log.jsonl")
    for a, b in zip(rows_full, rows_micro):
        assert a.loss == pytest.approx(b.loss, rel=1e-4)
        assert a.budget_tokens == b.budget_tokens


def test_outputs_are_standard_peft_and_manifest_is_complete(make_config, tmp_path, tiny_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from objlab.lm.loading import add_control_tokens

    config = make_config(objectives=["cft"])
    manifests, _ = run(config, "cft", tmp_path / "cft", [400])
    manifest = read_manifest(tmp_path / "cft")
    written = json.loads((tmp_path / "cft" / "manifest.json").read_text())
    for key in ("config", "objective", "seed", "model_fingerprint", "data_hash", "wall_time_s", "peak_memory_bytes", "budget_tokens", "compute_tokens", "environment"):
        assert written[key] not in (None, "", {}), key
    assert manifest.control_tokens == ["<SAFE>", "<UNSAFE>"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = load_tokenizer(config.model)
    add_control_tokens(tokenizer, base, ("<SAFE>", "<UNSAFE>"))
    model = PeftModel.from_pretrained(base, str(tmp_path / "cft"))
    assert any("lora_A" in name for name, _ in model.named_parameters())
    saved = adapter_tensors(tmp_path / "cft")
    vocab_rows = base.get_input_embeddings().weight.shape[0]
    # Only the two control-token rows are saved, never the whole (resized) embedding matrix.
    assert not [name for name, tensor in saved.items() if tensor.shape[0] == vocab_rows]
    assert [tuple(t.shape) for n, t in saved.items() if "trainable_tokens" in n] == [(2, 32)]


@pytest.mark.slow
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_cli_train_runs_every_objective(tmp_path, tiny_model, objective):
    from tiny import write_config

    config = write_config(tmp_path / "c.yaml", tiny_model, objectives=[objective])
    result = CliRunner().invoke(app, ["train", str(config), "--objective", objective, "--budget", "400", "--budget", "800", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "budget 400" in result.output and "budget 800" in result.output
    for budget in (400, 800):
        assert (tmp_path / "o" / f"budget-{budget}" / "adapter_model.safetensors").is_file()
        rows = read_log(tmp_path / "o" / f"budget-{budget}" / "train_log.jsonl")
        assert rows[-1].budget_tokens >= budget and math.isfinite(rows[-1].loss)


def test_cli_reports_malformed_data_with_file_and_line(tmp_path, tiny_model):
    from tiny import write_config

    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"question": "q", "answer": "1\n#### 1"}) + "\n{oops\n")
    config = write_config(tmp_path / "c.yaml", tiny_model, data=data)
    result = CliRunner().invoke(app, ["train", str(config), "--objective", "sft", "--budget", "100", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert f"{data}:2: not valid JSON" in result.output


PLUGIN = '''
from objlab.objectives.base import Batch, ForwardOutput, LossOutput, Objective, step_token_mean, token_nll
from objlab.objectives.registry import register


@register
class HalfSFT(Objective):
    name = "half_sft"
    description = "Half the SFT loss (a user plugin in a test)."

    def loss(self, batch: Batch, policy: ForwardOutput, reference: ForwardOutput | None) -> LossOutput:
        total, _ = token_nll(batch, policy, "sft")
        loss = 0.5 * step_token_mean(total, batch, "sft")
        return LossOutput(loss, {"nll": 2 * loss.item()})
'''


def test_a_plugin_objective_trains_through_the_cli(tmp_path, tiny_model, monkeypatch, request):
    """The README's recipe for a user's own objective: one registered class, loaded by --plugin."""
    from tiny import write_config

    from objlab.objectives import registry

    (tmp_path / "my_objectives.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    request.addfinalizer(lambda: registry.OBJECTIVES.unregister("half_sft"))  # later tests see the built-ins only
    config = write_config(tmp_path / "c.yaml", tiny_model, objectives=["sft", "half_sft"])
    runner = CliRunner()
    listed = runner.invoke(app, ["--plugin", "my_objectives", "objectives"])
    assert "half_sft" in listed.output and "Half the SFT loss" in listed.output
    logs = {}
    for name in ("sft", "half_sft"):
        result = runner.invoke(app, ["--plugin", "my_objectives", "train", str(config), "--objective", name, "--budget", "300", "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        logs[name] = read_log(tmp_path / name / "train_log.jsonl")
    assert logs["half_sft"][0].loss == pytest.approx(logs["sft"][0].loss / 2, rel=1e-5)
    assert [row.budget_tokens for row in logs["half_sft"]] == [row.budget_tokens for row in logs["sft"]]


def test_cft_trains_on_a_model_with_tied_embeddings(tmp_path, tiny_tied_model):
    """Tied embeddings put peft's trainable-token wrapper on the output layer too (as on Qwen
    and Gemma); the control-token rows lie past the scored vocabulary, so training proceeds."""
    from tiny import write_config

    config = write_config(tmp_path / "c.yaml", tiny_tied_model, objectives=["cft"])
    result = CliRunner().invoke(app, ["train", str(config), "--objective", "cft", "--budget", "300", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    rows = read_log(tmp_path / "o" / "train_log.jsonl")
    assert rows and all(math.isfinite(row.loss) for row in rows)
