"""Evidence that an objective did what its paper says, from the per-item values it logged.

An objective names per-item values in ``evidence_keys`` (aware: its gate, mean alignment score,
abstention and the reference tokens it trained); the training loop writes them into every
row of the training log under ``evidence``. This module defines, once, which figures are drawn
from them: plain numbers for the adapter manifest (``summarize``) and, with intervals, for the
results store and the report (``objlab.evaluate.results.evidence``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

from objlab.records.train_log import StepLog

Kind = Literal["mean", "rate", "strictly_between", "total"]

# per logged key: (figure name, how it is drawn from the per-item values)
FIGURES: dict[str, tuple[tuple[str, Kind], ...]] = {
    "gate": (("gate_mean", "mean"), ("gate_partial_share", "strictly_between")),
    "alignment_score": (("alignment_score_mean", "mean"),),
    "abstain": (("abstention_rate", "rate"),),
    "reference_tokens": (("reference_tokens_trained", "total"),),
    # kept in the log and the store beside the figures they explain, not averaged
    "samples": (),
    "sample_scores": (),
    "sample_finished": (),
}
DESCRIPTIONS = {
    "gate_mean": "mean gate g over items (0 = plain SFT, 1 = policy gradient only)",
    "gate_partial_share": "share of items with 0 < g < 1 (the gate really mixes both terms)",
    "abstention_rate": "share of items whose samples were all misaligned (trained to abstain)",
    "alignment_score_mean": "mean alignment score of the sampled responses",
    "reference_tokens_trained": "task tokens of the items whose reference was trained (weight 1 - g above 0: not abstained, gate below 1)",
}


def evidence_values(log_rows: Iterable[StepLog]) -> dict[str, list]:
    """Per-item values by key, over every step of ``log_rows`` in order."""
    values: dict[str, list] = {}
    for row in log_rows:
        for key, items in row.evidence.items():
            values.setdefault(key, []).extend(items)
    return values


def figure_items(kind: Kind, items: list) -> list[float]:
    """The per-item 0/1 or numeric values a figure of ``kind`` averages."""
    if kind == "rate":
        return [float(bool(value)) for value in items]
    if kind == "strictly_between":
        return [float(0.0 < float(value) < 1.0) for value in items]
    return [float(value) for value in items]


def summarize(log_rows: Iterable[StepLog]) -> dict[str, float]:
    """Plain figures (means, shares, totals) and the item count, for a manifest."""
    values = evidence_values(log_rows)
    summary: dict[str, float] = {}
    for key, items in values.items():
        for name, kind in FIGURES.get(key, ((f"{key}_mean", "mean"),)):
            numbers = figure_items(kind, items)
            summary[name] = math.fsum(numbers) if kind == "total" else (math.fsum(numbers) / len(numbers) if numbers else math.nan)
        summary["items"] = float(len(items))
    return summary
