"""A grid over several models (``models:``): one panel per model, and how far the models agree.

Each model's cells form a grid of their own with their own base cell (``<key>/base``);
``for_model`` gives the report data of one model in the layout of a one-model run (its base
cell named ``base``), so every table, plot and summary of the report serves it unchanged. Across
models the report adds:

- a cross-model figure: each objective's macro ASR and primary capability figure at each budget,
  one line per model (small multiples, one column per objective);
- the consistency of the objectives' ordering between models: per budget and pair of models,
  Kendall's tau between the objectives' macro ASRs (with its p-value and the number of
  objectives it ranks), so "DPO erodes safety more than ORPO" can be checked across models.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from objlab.report.data import Measure, ReportData, as_int, format_budget, is_number
from objlab.report.style import budget_axis, new_figure, objective_colours, placeholder, save
from objlab.store import BASE_CELL

MACRO_ASR = Measure("jailbreak", "asr", "")
CROSS_MODEL_PNG = "models.png"


def model_keys(data: ReportData) -> list[str]:
    """The models of a grid over several models, in the config's order (none for one model)."""
    if "model" not in data.cells:
        return []
    present = [key for key in dict.fromkeys(data.cells["model"]) if isinstance(key, str)]
    configured = [_key(entry) for entry in data.config.get("models") or []]
    return [key for key in configured if key in present] + [key for key in present if key not in configured]


def _key(entry: dict) -> str:
    from objlab.config import ModelEntry

    return ModelEntry.model_validate(entry).cell_key


def for_model(data: ReportData, key: str) -> ReportData:
    """One model's report data, laid out as a one-model run's (its base cell is ``base``)."""
    base_id = f"{key}/{BASE_CELL}"
    mine = data.cells[data.cells["model"] == key].copy()
    ids = set(mine["cell_id"])

    def renamed(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[frame["cell_id"].isin(ids)].copy()
        frame["cell_id"] = frame["cell_id"].replace({base_id: BASE_CELL})
        return frame.reset_index(drop=True)

    entry = next((entry for entry in data.config.get("models") or [] if _key(entry) == key), None)
    config = {**data.config, "model": entry, "models": None, "name": f"{data.config.get('name', 'objlab run')} / {key}"}
    return replace(
        data, config=config, cells=renamed(mine), metrics=renamed(data.metrics), comparisons=renamed(data.comparisons),
        train_log=renamed(data.train_log) if "cell_id" in data.train_log else data.train_log,
        failures=[failure for failure in data.failures if failure.cell_id.startswith(f"{key}/")],
        overrefusal_findings=[],
    )


def _values(data: ReportData, measure: Measure) -> dict[tuple[str, int], float]:
    """(objective, budget) -> the mean over seeds of the measure's value."""
    rows = data.rows(measure).set_index("cell_id")
    values: dict[tuple[str, int], list[float]] = {}
    for _, cell in data.adapter_cells.iterrows():
        if cell["cell_id"] in rows.index and is_number(rows.loc[cell["cell_id"], "value"]):
            values.setdefault((str(cell["objective"]), as_int(cell["budget"])), []).append(float(rows.loc[cell["cell_id"], "value"]))
    return {key: float(np.mean(found)) for key, found in values.items()}


def ordering_consistency(data: ReportData) -> pd.DataFrame:
    """Per budget and pair of models: Kendall's tau between the objectives' macro ASRs."""
    keys = model_keys(data)
    per_model = {key: _values(for_model(data, key), MACRO_ASR) for key in keys}
    budgets = sorted({budget for values in per_model.values() for _, budget in values})
    records = []
    for budget in budgets:
        for first, second in combinations(keys, 2):
            objectives = sorted({o for o, b in per_model[first] if b == budget} & {o for o, b in per_model[second] if b == budget})
            if len(objectives) < 3:
                continue
            left = [per_model[first][(o, budget)] for o in objectives]
            right = [per_model[second][(o, budget)] for o in objectives]
            tau, p_value = stats.kendalltau(left, right)
            records.append({"budget": budget, "models": f"{first} ~ {second}", "kendall_tau": tau, "p_value": p_value,
                            "objectives": len(objectives), "method": "Kendall's tau-b of the objectives' macro ASR (mean over seeds)"})
    return pd.DataFrame(records, columns=["budget", "models", "kendall_tau", "p_value", "objectives", "method"])


def consistency_lines(data: ReportData, width: int = 100) -> list[str]:
    """The compact summary's line: the models' agreement on the objectives' ASR ordering."""
    import textwrap

    table = ordering_consistency(data)
    if table.empty:
        return []
    parts = [f"{format_budget(row.budget)} {row.models}: tau {row.kendall_tau:+.2f} (p {row.p_value:.2g}, {row.objectives} objectives)"
             for row in table.itertuples() if is_number(row.kendall_tau)]
    text = "objectives' ASR ordering across models (Kendall's tau): " + ("; ".join(parts) or "undefined (ties everywhere)")
    return textwrap.wrap(text, width)


def plot_cross_model(data: ReportData, out_dir: Path) -> Path:
    """Each objective's macro ASR and primary capability at each budget, one line per model."""
    path = Path(out_dir) / CROSS_MODEL_PNG
    keys = model_keys(data)
    measures = [(MACRO_ASR, "macro ASR")] + ([(data.primary, f"capability: {data.primary.label}")] if data.primary else [])
    if len(keys) < 2 or data.adapter_cells.empty:
        return placeholder(path, "Objectives across models", "fewer than two models have finished cells")
    per_model = {key: for_model(data, key) for key in keys}
    objectives = data.objectives
    colours = objective_colours(keys)  # one colour per model (the palette's order)
    budgets = sorted({float(b) for b in data.adapter_cells["budget"] if is_number(b)})
    with new_figure(2.6 * len(objectives) + 1.0, 2.6 * len(measures) + 0.9) as figure:
        grid = figure.subplots(len(measures), len(objectives), squeeze=False, sharey="row")
        for row, (measure, label) in enumerate(measures):
            for column, objective in enumerate(objectives):
                axes = grid[row][column]
                for key in keys:
                    values = _values(per_model[key], measure)
                    points = sorted((budget, value) for (o, budget), value in values.items() if o == objective)
                    if points:
                        axes.plot([b for b, _ in points], [v for _, v in points], marker="o", markersize=3.5, color=colours[key], label=key)
                budget_axis(axes, budgets, "token budget" if row == len(measures) - 1 else "")
                if measure.axis == "jailbreak" or measure.metric.startswith("accuracy"):
                    axes.set_ylim(-0.02, 1.02)  # proportions: the whole scale, so models compare at a glance
                axes.set_title(objective if row == 0 else "", fontsize=9)
                if column == 0:
                    axes.set_ylabel(label, fontsize=8)
                axes.tick_params(labelsize=7)
        handles, labels = grid[0][0].get_legend_handles_labels()
        if handles:
            figure.legend(handles, labels, loc="outside lower center", ncols=min(len(keys), 5), fontsize=8)
        figure.suptitle("Objectives across models: macro ASR and capability vs token budget (mean over seeds)")
        return save(figure, path)
