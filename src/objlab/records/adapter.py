"""The adapter manifest: what a trained adapter directory says about how it was made.

``objlab train`` (and the grid) writes ``manifest.json`` next to the peft adapter files; the
evaluation session, the grid runner, the results store and the report read it. This module is
the only one that writes or parses it: everyone else handles an ``AdapterManifest``.

A directory whose manifest is present is complete (it is written last, atomically; see
``objlab.train.outputs``). A plain peft adapter directory has no manifest (``read_manifest``
returns None) and is evaluated as it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from objlab.errors import DataError

MANIFEST_FILE = "manifest.json"


class AdapterManifest(BaseModel):
    """One trained adapter: objective, budget, counters, provenance of model, data and code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["adapter"] = "adapter"
    objective: str
    objective_description: str = ""
    objective_params: dict[str, Any] = {}
    control_tokens: list[str] = []
    seed: int
    budget: int
    budget_tokens: int
    compute_tokens: int
    examples: int
    steps: int
    final_loss: float | None = None
    mode: Literal["snapshot", "own-run"]  # a cut of a longer run at this budget, or the end of its own run
    schedule: str
    config: dict[str, Any]
    config_fingerprint: str
    training_fingerprint: str
    model: str
    model_fingerprint: str
    data_source: str
    data_hash: str
    data_examples: int
    truncated_examples: int = 0
    device: str
    dtype: str
    wall_time_s: float  # this process's share when resumed
    resumed_from_step: int = 0
    peak_memory_bytes: int | None = None
    environment: dict[str, Any] = {}
    counters: dict[str, int] = {}
    # What the objective drew on and whether it did what its paper says (see records.evidence):
    rejected: str | None = None  # preference objectives: where the rejected responses came from
    objective_provenance: dict[str, Any] = {}  # e.g. IP's instruction set, aware's alignment scorer
    evidence: dict[str, float] = {}  # e.g. aware's mean gate, abstention rate, mean alignment score


def adapter_manifest_json(manifest: AdapterManifest) -> dict[str, Any]:
    """The JSON value stored for ``manifest`` (in ``manifest.json`` and the results store)."""
    return manifest.model_dump(mode="json")


def write_manifest(directory: Path, manifest: AdapterManifest) -> None:
    """Write ``manifest.json`` into ``directory`` (callers make the directory's publication atomic)."""
    Path(directory, MANIFEST_FILE).write_text(json.dumps(adapter_manifest_json(manifest), indent=1, sort_keys=True))


def is_complete(directory: Path) -> bool:
    """A directory with a manifest is a finished adapter (the manifest is written last)."""
    return Path(directory, MANIFEST_FILE).is_file()


def parse_manifest(data: Any, source: str) -> AdapterManifest:
    """A manifest from its JSON value; errors name ``source`` and the fields."""
    try:
        return AdapterManifest.model_validate(data)
    except ValidationError as error:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in error.errors())
        raise DataError(f"{source}: not an objlab adapter manifest ({fields})") from None


def read_manifest(directory: Path) -> AdapterManifest | None:
    """The manifest of an adapter directory, or None for a plain peft directory without one."""
    path = Path(directory, MANIFEST_FILE)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    return parse_manifest(data, str(path))
