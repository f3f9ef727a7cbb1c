"""Typed records with every required field filled, for tests that store fabricated cells."""

from __future__ import annotations

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
