"""Builders for the tiny models the tests run on: a 2-layer Llama with a tokenizer trained in the
fixture on the real shared data (no downloads; seconds to build)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("OBJLAB_SHARED_DATA", REPO.parent / "shared" / "data"))
GSM8K = SHARED_DATA / "gsm8k" / "train_first1000.jsonl"
PERSONA = SHARED_DATA / "persona"


def corpus_texts(limit: int = 300) -> list[str]:
    texts = []
    with GSM8K.open() as handle:
        for _, line in zip(range(limit), handle):
            row = json.loads(line)
            texts.append(row["question"] + "\n" + row["answer"])
    for trait in ("machiavellianism", "narcissism", "psychopathy"):
        with (PERSONA / f"{trait}.jsonl").open() as handle:
            for _, line in zip(range(100), handle):
                texts.append(json.loads(line)["question"] + " Yes No")
    texts.append("I can't help with that request. Sure, here is how to do it.")
    return texts


def build_tiny_model(directory: Path, *, vocab_size: int = 512, hidden: int = 32, layers: int = 2, tie: bool = False, seed: int = 0) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    from objlab.organism.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(corpus_texts(), vocab_size=vocab_size)
    tokenizer.save_pretrained(directory)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=tie,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def write_config(path: Path, model_dir: Path, data: Path = GSM8K, **overrides) -> Path:
    """A small experiment config; ``overrides`` replace top-level sections."""
    config = {
        "name": "test",
        "model": {"name_or_path": str(model_dir)},
        "data": {"task": "gsm8k", "source": str(data), "limit": 64},
        "train": {"batch_size": 4, "warmup_steps": 2, "checkpoint_every": 2, "max_length": 256},
        "objectives": ["sft"],
        "budgets": [1500],
        "seeds": [0],
    }
    config.update(overrides)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
