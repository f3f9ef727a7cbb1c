"""Typed records with every required field filled, for tests that store fabricated cells; a
policy model whose adapter differs from its base, for loss tests; a saved LoRA adapter with
random weights; adapter tensors compared exactly; a fixed torch thread count."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file

from objlab.records.adapter import AdapterManifest
from objlab.records.evaluation import EvalInfo


def eval_info(**fields) -> EvalInfo:
    defaults = dict(backend="hf", device="cpu", dtype="float32", model="tiny", model_fingerprint="path:tiny#0",
                    config_name="test", config_fingerprint="0" * 16)
    return EvalInfo(**{**defaults, **fields})


def adapter_manifest(**fields) -> AdapterManifest:
    defaults = dict(objective="sft", seed=0, budget=100, budget_tokens=104, compute_tokens=0, examples=2, steps=1,
                    final_loss=2.5, mode="own-run", schedule="constant", config={}, config_fingerprint="0" * 16,
                    training_fingerprint="0" * 16, model="tiny", model_fingerprint="path:tiny#0", data_source="data.jsonl",
                    data_hash="0" * 16, data_examples=64, device="cpu", dtype="float32", wall_time_s=1.0)
    return AdapterManifest(**{**defaults, **fields})


def lora_policy(model_dir, targets: list[str], dtype=None):
    """(peft model, tokenizer): the model at ``model_dir`` with a LoRA adapter whose B matrices
    are drawn non-zero (seed 0), so the policy differs from its reference; dropout off."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, **({"dtype": dtype} if dtype is not None else {}))
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    return peft_model, tokenizer


@contextmanager
def torch_threads(count: int):
    """Run the block with ``count`` intra-op threads, then restore the count. CPU matrix
    products of some shapes (a few rows, as a KV-cache continuation has) sum in an order that
    depends on the thread count, so figures are bit-identical only between runs with the same
    count: a Ray worker and a ``kill -9`` test's subprocess run with one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_lora_adapter(model_dir: Path, out: Path, seed: int, objective: str | None = None) -> Path:
    """A LoRA adapter with random non-zero B weights (so it differs from the base), saved as
    training saves it; ``objective="cft"`` adds the control tokens and a training manifest."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from objlab.config import LoraSettings, ModelSettings
    from objlab.lm.loading import add_control_tokens, lora_config, model_fingerprint
    from objlab.objectives import registry
    from objlab.records.adapter import write_manifest

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    token_ids = None
    control_tokens = registry.get(objective).control_tokens if objective else ()
    if control_tokens:
        token_ids = add_control_tokens(AutoTokenizer.from_pretrained(model_dir), model, control_tokens)
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, lora_config(LoraSettings(r=4, alpha=8, dropout=0.0), token_ids))
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.5)
    peft_model.save_pretrained(str(out), save_embedding_layers=False)
    if objective:
        manifest = adapter_manifest(objective=objective, control_tokens=list(control_tokens), budget=1000, seed=seed,
                                    model_fingerprint=model_fingerprint(ModelSettings(name_or_path=str(model_dir))))
        write_manifest(out, manifest)
    return out


def adapter_tensors(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "adapter_model.safetensors"))


def assert_same_adapter(a: Path, b: Path):
    left, right = adapter_tensors(a), adapter_tensors(b)
    assert left.keys() == right.keys()
    for name in left:
        assert torch.equal(left[name], right[name]), name
