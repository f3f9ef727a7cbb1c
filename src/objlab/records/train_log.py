"""One optimizer step of a training run, as the loop logs it and the pipeline, the store and the
report read it: ``train_log.jsonl`` holds one ``StepLog`` per line.

The fixed fields are the budget accounting every objective shares; ``components`` are the
objective's own loss terms (DPO's reward margin, aware's gate, ...), and ``evidence`` the
per-item values an objective logs to show it did what its paper says (aware's gate, alignment
scores, abstentions, sampled responses). On disk the components sit beside the fixed fields and
the evidence under ``"evidence"``, the layout earlier versions wrote, so old logs still read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIELDS = ("step", "examples", "budget_tokens", "compute_tokens", "lr", "loss", "grad_norm")
EVIDENCE = "evidence"


@dataclass(frozen=True)
class StepLog:
    step: int
    examples: int
    budget_tokens: int
    compute_tokens: int
    lr: float
    loss: float
    grad_norm: float
    components: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, list[Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {name: getattr(self, name) for name in FIELDS}
        row.update(sorted(self.components.items()))
        if self.evidence:
            row[EVIDENCE] = self.evidence
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any], source: str = "train log") -> StepLog:
        missing = [name for name in FIELDS if name not in row]
        if missing:
            raise ValueError(f"{source}: a step row without {', '.join(missing)}")
        components = {key: value for key, value in row.items() if key not in FIELDS and key != EVIDENCE}
        return cls(**{name: row[name] for name in FIELDS}, components=components, evidence=dict(row.get(EVIDENCE) or {}))


def write_log(path: Path, rows: list[StepLog]) -> None:
    path.write_text("".join(json.dumps(row.to_json(), sort_keys=True) + "\n" for row in rows))


def read_log(path: Path) -> list[StepLog]:
    """The steps of ``train_log.jsonl`` (empty when the file does not exist)."""
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    return [StepLog.from_json(json.loads(line), f"{path}:{number}") for number, line in enumerate(lines, start=1) if line.strip()]
