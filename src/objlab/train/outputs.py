"""What a finished training cell leaves on disk, written atomically.

An adapter directory holds the adapter in standard peft format (``adapter_config.json``,
``adapter_model.safetensors``: loadable by ``PeftModel.from_pretrained``), ``train_log.jsonl``
(one row per optimizer step) and ``manifest.json``. The manifest is written last, inside a
temporary directory that is then renamed into place: a directory with a manifest is complete,
one without is debris of a killed run and is replaced.
"""

from __future__ import annotations

import os
import resource
import shutil
from pathlib import Path

import torch

from objlab.faults import fault_point
from objlab.records.adapter import (
    AdapterManifest,
    is_complete,
    read_manifest,
    write_manifest,
)
from objlab.records.train_log import StepLog, read_log, write_log

__all__ = ["TRAIN_LOG", "is_complete", "peak_memory_bytes", "read_log", "read_manifest", "write_adapter_output", "write_log"]

TRAIN_LOG = "train_log.jsonl"


def write_adapter_output(directory: Path, model, log_rows: list[StepLog], manifest: AdapterManifest) -> None:
    """Save adapter + log + manifest into ``directory`` atomically (replacing any partial one)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    partial = directory.parent / f".partial-{directory.name}"
    shutil.rmtree(partial, ignore_errors=True)
    # The control tokens' rows are saved by peft's trainable_token_indices; the rest of a
    # resized embedding matrix is the base model's and is rebuilt when the adapter is loaded.
    model.save_pretrained(str(partial), save_embedding_layers=False)
    write_log(partial / TRAIN_LOG, log_rows)
    write_manifest(partial, manifest)
    fault_point("train.output.written")
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(partial, directory)


def peak_memory_bytes(device: torch.device) -> int:
    """Peak accelerator memory on GPU; peak resident memory of the process on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
