"""Training state: capture/restore in memory (snapshots) and save/load on disk (resume).

A resumed run must continue exactly as if it had never stopped, and a budget snapshot must
equal a separate run to that budget bit for bit. Both need the same complete state: the LoRA
parameters, the optimizer's moments, every RNG (dropout and sampling draw from them) and the
loop's counters. Checkpoints are written to a new directory and only then published by
atomically replacing the ``LATEST`` pointer, so a run killed mid-write (SIGKILL included)
resumes from the previous complete checkpoint.

A published checkpoint can still be damaged afterwards (a full disk, a copy cut short, a bad
sector): ``counters.json`` records the sha256 of ``state.pt``, the previous checkpoint is kept
beside the latest, and resuming verifies before it loads. A damaged latest checkpoint is
skipped (the loop says so) for the previous one -- replaying the steps between them gives the
same state bit for bit -- and when none is intact the error names each file and what is wrong.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from objlab.errors import StateError
from objlab.faults import fault_point

LATEST = "LATEST"
STATE_FILE = "state.pt"
COUNTERS_FILE = "counters.json"


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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _published(work_dir: Path) -> str | None:
    pointer = work_dir / LATEST
    return pointer.read_text().strip() if pointer.is_file() else None


def save_checkpoint(work_dir: Path, model, optimizer, counters: LoopCounters, identity: dict) -> Path:
    """Write a resume checkpoint and publish it atomically; the previous one is kept (a
    fallback should the new one be damaged later), older ones are removed."""
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
        partial / STATE_FILE,
    )
    record = {"counters": asdict(counters), "identity": identity, "state_sha256": file_sha256(partial / STATE_FILE)}
    (partial / COUNTERS_FILE).write_text(json.dumps(record, indent=1))
    fault_point("train.checkpoint.written")
    previous = _published(work_dir)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    pointer = work_dir / f".{LATEST}.tmp"
    pointer.write_text(target.name)
    os.replace(pointer, work_dir / LATEST)
    fault_point("train.checkpoint.published")
    for old in work_dir.glob("checkpoint-*"):
        if old.name not in (target.name, previous):
            shutil.rmtree(old, ignore_errors=True)
    return target


class DamagedCheckpoint(Exception):
    """A checkpoint file is missing, truncated or corrupted (the message names the file)."""


@dataclass
class SavedCheckpoint:
    """A checkpoint read from disk and verified, not yet applied to a model."""

    path: Path
    state: dict
    counters: LoopCounters
    identity: dict


def read_checkpoint(path: Path) -> SavedCheckpoint:
    """Read and verify ``path``; ``DamagedCheckpoint`` says which file is wrong and how."""
    record_path, state_path = path / COUNTERS_FILE, path / STATE_FILE
    try:
        record = json.loads(record_path.read_text())
        counters, identity = LoopCounters(**record["counters"]), record["identity"]
    except FileNotFoundError:
        raise DamagedCheckpoint(f"{record_path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise DamagedCheckpoint(f"{record_path}: unreadable ({type(error).__name__}: {error})") from None
    if not state_path.is_file():
        raise DamagedCheckpoint(f"{state_path}: missing")
    expected = record.get("state_sha256")  # absent in checkpoints of older objlab versions
    if expected and file_sha256(state_path) != expected:
        raise DamagedCheckpoint(f"{state_path}: truncated or corrupted (its sha256 differs from the one recorded when it was written)")
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises several types for a damaged zip archive
        raise DamagedCheckpoint(f"{state_path}: cannot be read ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or not {"parameters", "optimizer", "rng"} <= set(state):
        raise DamagedCheckpoint(f"{state_path}: not an objlab checkpoint (expected parameters, optimizer and rng)")
    return SavedCheckpoint(path, state, counters, identity)


def checkpoint_candidates(work_dir: Path) -> list[Path]:
    """The published checkpoint first, then any other complete directory, newest first."""
    published = _published(work_dir)
    first = [work_dir / published] if published else []
    others = sorted((p for p in work_dir.glob("checkpoint-*") if p.is_dir() and p.name != published), reverse=True)
    return first + others


def latest_intact(work_dir: Path, on_skip=None) -> SavedCheckpoint | None:
    """The newest checkpoint that verifies (``on_skip(message)`` for each damaged one passed
    over); None when there is none; ``StateError`` naming every file when none is intact."""
    problems = []
    for path in checkpoint_candidates(work_dir):
        try:
            return read_checkpoint(path)
        except DamagedCheckpoint as problem:
            problems.append(str(problem))
            if on_skip is not None:
                on_skip(f"{problem}; falling back to the previous checkpoint")
    if problems:
        listed = "\n  ".join(problems)
        raise StateError(f"{work_dir}: no intact checkpoint to resume from:\n  {listed}\nDelete {work_dir} to train this run again from the start.")
    return None


def apply_checkpoint(saved: SavedCheckpoint, model, optimizer) -> LoopCounters:
    """Restore parameters, optimizer and RNGs from a verified checkpoint; returns its counters."""
    parameters = trainable_parameters(model)
    missing = set(parameters) ^ set(saved.state["parameters"])
    if missing:
        raise StateError(f"checkpoint {saved.path} does not match the model's trainable parameters: {sorted(missing)[:5]}")
    with torch.no_grad():
        for name, parameter in parameters.items():
            parameter.copy_(saved.state["parameters"][name].to(parameter.device))
    optimizer.load_state_dict(saved.state["optimizer"])
    set_rng_state(saved.state["rng"])
    return copy.copy(saved.counters)


def clear_checkpoints(work_dir: Path) -> None:
    """Remove every checkpoint of a finished run; the pointer goes first, so a kill half-way
    never leaves ``LATEST`` naming a directory that is gone."""
    (work_dir / LATEST).unlink(missing_ok=True)
    for old in list(work_dir.glob("checkpoint-*")) + list(work_dir.glob(".partial-*")):
        shutil.rmtree(old, ignore_errors=True)


def checkpoint_progress(work_dir: Path) -> LoopCounters | None:
    """The counters of the published checkpoint, read without loading its state (for
    ``objlab status``: how far an interrupted run had got); None when there is none."""
    published = _published(work_dir)
    if published is None:
        return None
    try:
        return LoopCounters(**json.loads((work_dir / published / COUNTERS_FILE).read_text())["counters"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None
