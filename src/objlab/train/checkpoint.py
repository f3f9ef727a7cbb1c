"""Training state: capture/restore in memory (snapshots) and save/load on disk (resume).

A resumed run must continue exactly as if it had never stopped, and a budget snapshot must
equal a separate run to that budget bit for bit. Both need the same complete state: the LoRA
parameters, the optimizer's moments, every RNG (dropout and sampling draw from them) and the
loop's counters. Checkpoints are written to a new directory and only then published by
atomically replacing the ``LATEST`` pointer, so a run killed mid-write (SIGKILL included)
resumes from the previous complete checkpoint.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

LATEST = "LATEST"


@dataclass
class LoopCounters:
    """Where the loop is: optimizer steps done and tokens consumed so far."""

    step: int = 0
    examples: int = 0
    budget_tokens: int = 0
    compute_tokens: int = 0


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_parameters(model) -> dict[str, torch.nn.Parameter]:
    return {name: parameter for name, parameter in model.named_parameters() if parameter.requires_grad}


@dataclass
class StateCopy:
    """An in-memory copy of everything a step changes (for snapshot cut steps)."""

    parameters: dict[str, torch.Tensor]
    optimizer: dict
    rng: dict
    counters: LoopCounters


def capture(model, optimizer, counters: LoopCounters) -> StateCopy:
    return StateCopy(
        parameters={name: p.detach().clone() for name, p in trainable_parameters(model).items()},
        optimizer=copy.deepcopy(optimizer.state_dict()),
        rng=rng_state(),
        counters=copy.copy(counters),
    )


def restore(model, optimizer, saved: StateCopy) -> LoopCounters:
    with torch.no_grad():
        for name, parameter in trainable_parameters(model).items():
            parameter.copy_(saved.parameters[name])
    optimizer.load_state_dict(copy.deepcopy(saved.optimizer))
    set_rng_state(saved.rng)
    return copy.copy(saved.counters)


def save_checkpoint(work_dir: Path, model, optimizer, counters: LoopCounters, identity: dict) -> Path:
    """Write a resume checkpoint and publish it atomically; older checkpoints are removed."""
    work_dir.mkdir(parents=True, exist_ok=True)
    target = work_dir / f"checkpoint-{counters.step:07d}"
    partial = work_dir / f".partial-{target.name}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    torch.save(
        {
            "parameters": {name: p.detach().cpu() for name, p in trainable_parameters(model).items()},
            "optimizer": optimizer.state_dict(),
            "rng": rng_state(),
        },
        partial / "state.pt",
    )
    (partial / "counters.json").write_text(json.dumps({"counters": asdict(counters), "identity": identity}, indent=1))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    pointer = work_dir / f".{LATEST}.tmp"
    pointer.write_text(target.name)
    os.replace(pointer, work_dir / LATEST)
    for old in work_dir.glob("checkpoint-*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(work_dir: Path) -> Path | None:
    pointer = work_dir / LATEST
    if not pointer.is_file():
        return None
    target = work_dir / pointer.read_text().strip()
    return target if (target / "counters.json").is_file() else None


def checkpoint_identity(path: Path) -> dict:
    return json.loads((path / "counters.json").read_text())["identity"]


def load_checkpoint(path: Path, model, optimizer) -> LoopCounters:
    """Restore parameters, optimizer and RNGs from ``path``; returns the loop counters."""
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    parameters = trainable_parameters(model)
    missing = set(parameters) ^ set(state["parameters"])
    if missing:
        raise ValueError(f"checkpoint {path} does not match the model's trainable parameters: {sorted(missing)[:5]}")
    with torch.no_grad():
        for name, parameter in parameters.items():
            parameter.copy_(state["parameters"][name].to(parameter.device))
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"])
    return LoopCounters(**json.loads((path / "counters.json").read_text())["counters"])


def clear_checkpoints(work_dir: Path) -> None:
    for old in list(work_dir.glob("checkpoint-*")) + list(work_dir.glob(".partial-*")):
        shutil.rmtree(old, ignore_errors=True)
    (work_dir / LATEST).unlink(missing_ok=True)
