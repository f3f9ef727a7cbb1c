"""What the report reads from a results store, gathered once and in one shape.

The tables, plots and HTML all draw from one ``ReportData``: the run's config, the finished
cells in reading order (base first, then objective in config order, seed, budget), the
cells' own figures and their paired tests against the base model, and the cells whose last
attempt failed. Building it once keeps every
view consistent: a plot and the table printed below it come from the very same rows.

Metric names are treated generically (any capability metric gets its own line), except for
diagnostics such as ``judge_error_rate`` that describe the scorer rather than the model.
lm-eval figures are shown for the top-level tasks and groups a run asked for (a group's
subtasks stay in the store and the export), as the cells' evaluation info records them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pandas as pd

from objlab.records.adapter import parse_manifest
from objlab.records.evaluation import parse_eval_info
from objlab.records.failure import CellFailure
from objlab.report.agreement import Agreement, load_agreement
from objlab.store import BASE_CELL, ResultsStore

PRIMARY_PREFERENCE = ("accuracy_flexible", "accuracy_strict", "accuracy", "rubric_score")
DIAGNOSTIC_METRICS = frozenset({"judge_error_rate", "scorer_agreement", "scorer_kappa"})
SIGNIFICANCE = 0.05
LM_EVAL_AXIS = "lm_eval"
_METRIC_COLUMNS = 'cell_id, axis, metric, "group", value, n, ci_low, ci_high, method, status, note, p_value, comparison'


@dataclass(frozen=True)
class Measure:
    """One figure to show per cell: (axis, metric, group), and the comparison row testing it."""

    axis: str
    metric: str
    group: str = ""

    @property
    def label(self) -> str:
        return f"{self.metric} ({self.group})" if self.group else self.metric

    @property
    def comparison_metric(self) -> str:
        return f"{self.metric}_vs_base"


@dataclass
class ReportData:
    """Everything the report shows, read from one store (see the module docstring)."""

    config: dict
    cells: pd.DataFrame
    metrics: pd.DataFrame
    comparisons: pd.DataFrame
    train_log: pd.DataFrame
    primary: Measure | None
    objectives: list[str] = field(default_factory=list)
    failures: list[CellFailure] = field(default_factory=list)  # the latest of each cell not finished since
    agreement: Agreement = field(default_factory=Agreement)  # the jailbreak scorers' agreement over the run
    overrefusal_findings: list[str] = field(default_factory=list)  # per objective: lower ASR with more over-refusal?
    panels: dict[str, ReportData] = field(default_factory=dict)  # a grid over several models: each model's own data

    @property
    def is_toy(self) -> bool:
        return bool(self.config.get("toy")) or any(info.toy for info in self.cells["eval_manifest"] if info is not None)

    @property
    def adapter_cells(self) -> pd.DataFrame:
        return self.cells[self.cells["kind"] != "base"]

    @property
    def base_cell(self) -> pd.Series | None:
        base = self.cells[self.cells["cell_id"] == BASE_CELL]
        return None if base.empty else base.iloc[0]

    def seeds(self) -> list[int]:
        return sorted({int(seed) for seed in self.adapter_cells["seed"]})

    def rows(self, measure: Measure) -> pd.DataFrame:
        """The cells' own rows for one measure, one per cell (cell order kept)."""
        frame = self.metrics
        chosen = frame[(frame["axis"] == measure.axis) & (frame["metric"] == measure.metric) & (frame["group"] == measure.group)]
        return chosen.drop_duplicates("cell_id")

    def tests(self, measure: Measure) -> pd.DataFrame:
        """The paired-test rows (cell vs base) for one measure, one per cell."""
        frame = self.comparisons
        chosen = frame[(frame["metric"] == measure.comparison_metric) & (frame["group"] == measure.group)]
        return chosen.drop_duplicates("cell_id")

    def groups(self, axis: str, metric: str, named_only: bool = True) -> list[str]:
        """Groups (attacks, traits, tasks) of a metric in first-seen order."""
        frame = self.metrics
        groups = frame[(frame["axis"] == axis) & (frame["metric"] == metric)]["group"]
        return [group for group in dict.fromkeys(groups) if group or not named_only]

    def capability_measures(self) -> list[Measure]:
        """Every model capability figure in the store (diagnostics left out)."""
        frame = self.metrics[(self.metrics["axis"] == "capability") & ~self.metrics["metric"].isin(DIAGNOSTIC_METRICS)]
        pairs = dict.fromkeys(zip(frame["metric"], frame["group"]))
        return [Measure("capability", metric, group) for metric, group in pairs]

    def traits(self) -> list[str]:
        return self.groups("persona", "p_match")

    def lm_eval_top_level(self) -> list[str]:
        """lm-eval's top-level tasks and groups (not their subtasks), as the cells recorded them;
        every lm-eval task in the store when no cell did."""
        recorded = [info.lm_eval for info in self.cells["eval_manifest"] if info is not None and info.lm_eval is not None]
        names = dict.fromkeys(name for run in recorded for name in run.top_level)
        return list(names) if names else list(dict.fromkeys(self.metrics.loc[self.metrics["axis"] == LM_EVAL_AXIS, "group"]))

    def lm_eval_measures(self) -> list[Measure]:
        """Every lm-eval figure of the top-level tasks and groups, in store order."""
        frame = self.metrics[self.metrics["axis"] == LM_EVAL_AXIS]
        top = set(self.lm_eval_top_level())
        pairs = dict.fromkeys((metric, group) for metric, group in zip(frame["metric"], frame["group"]) if group in top)
        return [Measure(LM_EVAL_AXIS, metric, group) for metric, group in pairs]

    def lm_eval_headline(self) -> list[Measure]:
        """The first figure of each top-level lm-eval task or group (lm-eval's own metric order)."""
        first: dict[str, Measure] = {}
        for measure in self.lm_eval_measures():
            first.setdefault(measure.group, measure)
        return list(first.values())

    def attacks(self) -> list[str]:
        return self.groups("jailbreak", "asr")


def _parsed(text, parse, what: str):
    """A stored manifest column as its typed record (None where the cell has none)."""
    if not isinstance(text, str) or not text:
        return None
    value = json.loads(text)
    return None if value in (None, {}) else parse(value, what)


def objective_order(config: dict, cells: pd.DataFrame) -> list[str]:
    """Objectives in the config's order, then any others found in the store, alphabetically."""
    configured = list(config.get("objectives") or [])
    found = sorted({str(o) for o in cells["objective"].dropna()} - set(configured))
    present = set(cells["objective"].dropna())
    return [o for o in configured if o in present] + found


def _ordered_cells(store: ResultsStore, config: dict) -> tuple[pd.DataFrame, list[str]]:
    cells = store.frame("SELECT * FROM cells")
    if "model" not in cells:  # a store written before grids over several models
        cells["model"] = None
    cells["train_manifest"] = [_parsed(text, parse_manifest, f"{store.path}: train manifest of {cell}") for text, cell in zip(cells["train_manifest"], cells["cell_id"])]
    cells["eval_manifest"] = [_parsed(text, parse_eval_info, f"{store.path}: evaluation info of {cell}") for text, cell in zip(cells["eval_manifest"], cells["cell_id"])]
    objectives = objective_order(config, cells)
    rank = {name: index for index, name in enumerate(objectives)}
    cells["_base"] = cells["kind"] != "base"
    cells["_objective"] = [rank.get(o, len(rank)) if isinstance(o, str) else -1 for o in cells["objective"]]
    cells = cells.sort_values(["_base", "_objective", "seed", "budget", "cell_id"], na_position="first")
    return cells.drop(columns=["_base", "_objective"]).reset_index(drop=True), objectives


def _metric_frames(store: ResultsStore, cell_ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = store.frame(f"SELECT {_METRIC_COLUMNS} FROM metrics ORDER BY rowid")
    frame = frame[frame["cell_id"].isin(cell_ids)]  # rows of unfinished cells never show
    frame["group"] = frame["group"].fillna("").astype(str)
    frame["note"] = frame["note"].fillna("").astype(str)
    frame["status"] = frame["status"].fillna("ok").astype(str)
    order = {cell_id: index for index, cell_id in enumerate(cell_ids)}
    frame = frame.assign(_order=frame["cell_id"].map(order)).sort_values("_order", kind="stable").drop(columns="_order")
    own = frame[frame["comparison"].isna()].reset_index(drop=True)
    tests = frame[frame["comparison"].notna()].reset_index(drop=True)
    return own, tests


def parse_primary(text: str | None, measures: list[Measure]) -> Measure | None:
    """The frontier's capability measure: ``metric`` or ``metric:group``, else the default.

    The default is the first of ``PRIMARY_PREFERENCE`` present (then any capability measure);
    a metric with several groups (tasks) uses its first group.
    """
    if text:
        metric, _, group = text.partition(":")
        for measure in measures:
            if measure.metric == metric and (not group or measure.group == group):
                return measure
        known = ", ".join(f"{m.metric}:{m.group}" if m.group else m.metric for m in measures) or "none"
        raise ValueError(f"primary capability {text!r} is not in the results store (present: {known})")
    for metric in PRIMARY_PREFERENCE:
        for measure in measures:
            if measure.metric == metric:
                return measure
    return measures[0] if measures else None


def train_log_summary(store: ResultsStore) -> pd.DataFrame:
    """Per cell: optimizer steps, examples, final and first loss, last lr, mean grad norm."""
    return store.frame(
        """SELECT cell_id, max(step) AS steps, max(examples) AS examples,
                  arg_min(loss, step) AS first_loss, arg_max(loss, step) AS final_loss,
                  arg_max(lr, step) AS final_lr, avg(grad_norm) AS mean_grad_norm
           FROM train_log GROUP BY cell_id"""
    )


def load_report_data(store: ResultsStore, primary_capability: str | None = None) -> ReportData:
    """Read everything the report needs from ``store`` (see ``ReportData``)."""
    text = store.meta("config")
    config = json.loads(text) if text else {}
    cells, objectives = _ordered_cells(store, config)
    own, tests = _metric_frames(store, list(cells["cell_id"]))
    data = ReportData(config, cells, own, tests, train_log_summary(store), None, objectives, store.failures(open_only=True),
                      load_agreement(store))
    data.primary = parse_primary(primary_capability, data.capability_measures())
    return data


def pending_cells(data: ReportData) -> list[str]:
    """Cells the config's grid names that have no results yet, as labels (``dpo seed 1 25k``).

    A grid still running, or stopped, must show what is missing rather than let a plot look
    complete; the store holds only finished cells, so the config says what was planned.
    """
    finished = {
        (str(cell["objective"]), as_int(cell["seed"]), as_int(cell["budget"])) for _, cell in data.adapter_cells.iterrows()
    }
    planned = [
        (str(objective), as_int(seed), as_int(budget))
        for objective in data.config.get("objectives") or []
        for seed in data.config.get("seeds") or []
        for budget in data.config.get("budgets") or []
    ]
    pending = [] if data.base_cell is not None else ["base model"]
    pending += [f"{o} seed {s} {format_budget(b)}" for o, s, b in planned if (o, s, b) not in finished]
    return pending


def is_number(value) -> bool:
    """True for a finite number (None, NaN and pandas' NA are not)."""
    if value is None or value is pd.NA:
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def as_int(value) -> int | None:
    return int(value) if is_number(value) else None


def format_budget(tokens) -> str:
    """25000 -> 25k, 1200000 -> 1.2M: budgets read at a glance."""
    if not is_number(tokens):
        return "-"
    tokens = float(tokens)
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(tokens) >= size:
            return f"{tokens / size:.3g}{suffix}"
    return f"{tokens:.0f}"


def cell_label(cell: pd.Series, seeds: int = 1) -> str:
    """A short human label: ``base``, ``sft 25k``, or with several seeds ``sft s1 25k``; in a grid
    over several models the model's key first (``llama sft 25k``)."""
    model = cell.get("model")
    prefix = f"{model} " if isinstance(model, str) else ""
    if cell["kind"] == "base":
        return f"{prefix}base model"
    seed = f" s{as_int(cell['seed'])}" if seeds > 1 else ""
    return f"{prefix}{cell['objective']}{seed} {format_budget(cell['budget'])}"


def scorer_named(data: ReportData, measure: Measure) -> str:
    """The scorer behind ``measure``'s figures and whose instrument it is, as their rows' notes
    name them ("scorer: <identity>, <whose>")."""
    rows = data.rows(measure)
    notes = [str(note) for note in rows["note"] if isinstance(note, str) and "scorer: " in note]
    return notes[0].split("scorer: ", 1)[1].split(";")[0] if notes else "scorer not recorded"
