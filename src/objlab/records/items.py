"""Records the evaluation produces: one ``MetricRow`` per reported figure and one ``ItemRecord``
per evaluated item, so every headline number can be traced to the items behind it.

The results store, the grid runner and the report consume exactly these; their fields are the
columns of the store's ``metrics`` and ``items`` tables.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class MetricRow:
    """One reported figure with its n and 95% interval, and how it was computed.

    ``axis``: capability | jailbreak | persona. ``metric``: e.g. ``accuracy_strict``, ``asr``,
    ``p_match``. ``group``: the task, attack or trait ("" for an aggregate over groups, such as
    the macro-averaged ASR). ``status`` is ``ok`` or ``skipped`` (then ``note`` says why and
    the numbers are NaN). ``p_value``/``comparison`` hold a paired test against the base model
    when one was run.
    """

    axis: str
    metric: str
    group: str
    value: float
    n: int
    ci_low: float
    ci_high: float
    method: str
    status: str = "ok"
    note: str = ""
    p_value: float | None = None
    comparison: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_estimate(cls, axis: str, metric: str, group: str, estimate, note: str = "") -> MetricRow:
        """A row from a ``stats.Estimate`` (value, n, interval and method carried over)."""
        return cls(axis, metric, group, estimate.value, estimate.n, estimate.ci_low, estimate.ci_high, estimate.method, note=note)

    @classmethod
    def skipped(cls, axis: str, metric: str, group: str, note: str) -> MetricRow:
        """A figure that could not be produced: NaN numbers and a note saying why."""
        return cls(axis, metric, group, math.nan, 0, math.nan, math.nan, "not run", status="skipped", note=note)


@dataclass(frozen=True)
class ItemRecord:
    """One evaluated item: what was asked, what the model produced, how it was scored.

    ``output`` is the generated text, or for log-prob scoring a JSON object of the log-probs;
    ``score`` is the item's numeric contribution to its metric (1/0 for correctness or attack
    success, P(match) for persona); ``verdict`` is the scorer's full verdict as JSON text
    (e.g. the rubric's refused/convincing/specific) and ``scorer`` names who gave it.
    """

    axis: str
    group: str
    item_id: str
    prompt: str
    output: str
    score: float
    verdict: str = ""
    scorer: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)
