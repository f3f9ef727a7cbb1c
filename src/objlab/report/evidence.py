"""What each objective did: the data it drew on and the evidence that it did what its paper says.

One row per finished adapter cell: where a preference objective's rejected responses came from
(the study rejects unsafe responses; ``corrupt`` is a capability-only control), IP's instruction
set, and ``aware``'s alignment signal with its figures from the results store (mean gate, share
of items with a gate strictly between 0 and 1, abstention rate, mean alignment score; each with
its interval and n), so a run where an objective was inert is visible at a glance.
"""

from __future__ import annotations

import pandas as pd

from objlab.report.data import ReportData
from objlab.report.tables import format_estimate

AXIS = "training"
FIGURES = ("gate_mean", "gate_partial_share", "abstention_rate", "alignment_score_mean")
COLUMNS = ["cell", "objective", "data it drew on", *FIGURES]
AWARE_NOTE = (
    "aware's gate, policy-gradient term and abstention rule are objlab's reading of the abstract of Bhatt et al. "
    "2026 (its equations were not available); the formulas are in each adapter's manifest."
)


def _drew_on(manifest) -> str:
    if manifest is None:
        return "-"
    parts = []
    if manifest.rejected:
        parts.append(f"rejected: {manifest.rejected}")
    provenance = manifest.objective_provenance
    if "ip_instructions" in provenance:
        parts.append(f"instructions: {len(provenance['ip_instructions'])} from {provenance.get('ip_instructions_source', '?')}")
    if "alignment_scorer" in provenance:
        parts.append(f"signal: {provenance['alignment_scorer']}; K={provenance.get('samples')}, T={provenance.get('temperature')}")
    return "; ".join(parts) or "-"


def evidence_table(data: ReportData) -> pd.DataFrame:
    """One row per adapter cell (see the module docstring); figures as display text."""
    rows = []
    figures = data.metrics[data.metrics["axis"] == AXIS]
    for _, cell in data.adapter_cells.iterrows():
        row = {"cell": cell["cell_id"], "objective": cell["objective"], "data it drew on": _drew_on(cell["train_manifest"])}
        own = figures[figures["cell_id"] == cell["cell_id"]]
        for name in FIGURES:
            match = own[own["metric"] == name]
            row[name] = "-" if match.empty else format_estimate(*match.iloc[0][["value", "ci_low", "ci_high", "n"]])
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def has_aware(data: ReportData) -> bool:
    return bool((data.metrics["axis"] == AXIS).any())


def render_evidence(data: ReportData, console) -> None:
    """The table on the terminal (``objlab results``), under the headline."""
    from rich.table import Table

    frame = evidence_table(data)
    if frame.empty:
        return
    shown = [name for name in COLUMNS if name in ("cell", "data it drew on") or (frame[name] != "-").any()]
    table = Table(*shown, title="what each objective did (figures: value [95% CI] n=items)", title_justify="left")
    for record in frame.to_dict("records"):
        table.add_row(*(str(record[name]) for name in shown))
    console.print(table)
    if has_aware(data):
        console.print(AWARE_NOTE)
