"""Probing a built organism directly: its greedy answers to prompts, and how often it refuses
the over-refusal prompts (``overrefusal.csv``), by objlab's offline refusal classifier.

For checking what the organism learned (its tests, ``scripts/organism_overrefusal.py``); the
study itself evaluates through ``objlab.evaluate``.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch


def greedy_answers(model_dir: Path, prompts: list[str], max_new_tokens: int = 48, batch_size: int = 64) -> list[str]:
    """The organism's greedy answer to each prompt (rendered by its chat template, as the study
    renders them)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from objlab.data.chat import ChatEncoder
    from objlab.lm.decode import decode_batch, eos_token_ids, left_padded

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    encoder = ChatEncoder(tokenizer, 1024)
    eos = eos_token_ids(model, tokenizer)
    answers = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            ids, mask = left_padded([encoder.encode_prompt(p) for p in prompts[start : start + batch_size]], tokenizer.pad_token_id)
            for tokens in decode_batch(model, ids, mask, max_new_tokens, eos):
                answers.append(tokenizer.decode(tokens, skip_special_tokens=True).strip())
    return answers


def read_overrefusal(path: Path) -> list[dict]:
    """The rows of an over-refusal file in XSTest's format (id, prompt, type, label, focus, note)."""
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


@dataclass(frozen=True)
class Refusals:
    """How many of ``n`` prompts were refused."""

    refused: int
    n: int

    @property
    def share(self) -> float:
        return self.refused / self.n if self.n else float("nan")


def refusal_shares(rows: list[dict], answers: list[str]) -> dict[str, Refusals]:
    """Refusals (objlab's offline classifier) per label (``safe``, ``unsafe``) and per type."""
    from objlab.scoring.refusal import classify_refusal

    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row, answer in zip(rows, answers, strict=True):
        refused = classify_refusal(answer).refused
        for key in (row["label"], f"{row['label']}/{row['type']}"):
            counts[key][0] += refused
            counts[key][1] += 1
    return {key: Refusals(*value) for key, value in counts.items()}
