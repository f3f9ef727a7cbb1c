"""The objective's evidence as figures with n and intervals, for the results store and report.

Which figures come from which logged per-item values is defined once in
``objlab.records.evidence``; here each becomes a ``MetricRow`` on the ``training`` axis (group:
the objective): means with a bootstrap interval, shares with a Wilson interval. Totals (tokens)
are counts, not estimates: they stay in the manifest.
"""

from __future__ import annotations

from collections.abc import Iterable

from objlab.evaluate.results.stats import bootstrap_mean, wilson
from objlab.records.evidence import DESCRIPTIONS, FIGURES, evidence_values, figure_items
from objlab.records.items import MetricRow
from objlab.records.train_log import StepLog

AXIS = "training"


def evidence_metrics(log_rows: Iterable[StepLog], objective: str) -> list[MetricRow]:
    """One row per evidence figure the log supports (none for objectives that log no evidence)."""
    rows = []
    for key, items in evidence_values(log_rows).items():
        for name, kind in FIGURES.get(key, ((f"{key}_mean", "mean"),)):
            if kind == "total":
                continue
            numbers = figure_items(kind, items)
            if kind == "mean":
                estimate = bootstrap_mean(numbers)
            else:
                estimate = wilson(int(sum(numbers)), len(numbers))
            rows.append(MetricRow.from_estimate(AXIS, name, objective, estimate, note=DESCRIPTIONS.get(name, "")))
    return rows
