"""Learning-rate schedules as pure functions of the step.

``constant`` (the default): linear warm-up over ``warmup_steps`` then constant. The rate at a
step does not depend on the budget, which is what lets one run to the largest budget yield
every smaller budget as a bit-identical snapshot. ``linear`` and ``cosine`` decay to zero at
the cell's own last step, so they depend on the budget and each cell is its own run.
"""

from __future__ import annotations

import math


def lr_factor(step: int, schedule: str, warmup_steps: int, total_steps: int | None = None) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    if total_steps is None:
        raise ValueError(f"schedule {schedule!r} needs the total number of steps")
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}")


def budget_independent(schedule: str) -> bool:
    return schedule == "constant"
