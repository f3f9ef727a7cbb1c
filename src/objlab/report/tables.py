"""Tables of a run: the headline (one row per cell), time per phase, and the tables behind plots.

``headline`` is the table a researcher reads first and the one ``objlab results`` prints: per
cell the primary capability figure, the macro-averaged attack success rate, P(match) per
trait and the first figure of each lm-eval task the run asked for, each with its 95%
interval, n and (where one was run) the Holm-adjusted p-value of the paired test against the
base model. Numbers stay numbers in the DataFrame; formatting is the
renderers' job.
"""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table

from objlab.report.data import (
    SIGNIFICANCE,
    Measure,
    ReportData,
    as_int,
    is_number,
    load_report_data,
)
from objlab.report.provenance import asr_statements
from objlab.store import ResultsStore

CELL_COLUMNS = ["cell", "kind", "objective", "seed", "budget", "budget_tokens", "compute_tokens", "mode"]
FIGURE_FIELDS = ("value", "ci_low", "ci_high", "n", "p_value", "status")
MEASURE_COLUMNS = [
    "cell", "measure", "value", "ci_low", "ci_high", "n", "method", "status", "note",
    "difference", "difference_ci_low", "difference_ci_high", "p_value", "test",
]
LEGEND = (
    f"value [95% CI] n=items; * paired test vs base significant at {SIGNIFICANCE} (Holm-adjusted p): exact McNemar "
    "per attack, capability metric and over-refusal figure, a sign-flip permutation test on the per-prompt share of "
    "attacks that succeeded for the macro ASR, a paired t-test for P(match)."
)


def headline_measures(data: ReportData) -> dict[str, Measure]:
    """Column prefix -> measure: primary capability, macro ASR, P(match) per trait, lm-eval tasks."""
    measures = {}
    if data.primary is not None:
        measures["capability"] = data.primary
    if not data.rows(Measure("jailbreak", "asr")).empty:
        measures["asr"] = Measure("jailbreak", "asr")
    for trait in data.traits():
        measures[f"p_match_{trait}"] = Measure("persona", "p_match", trait)
    for measure in data.lm_eval_headline():
        measures[f"lm_eval_{measure.group}"] = measure
    return measures


def _figures(data: ReportData, prefix: str, measure: Measure, cell_ids: pd.Series) -> pd.DataFrame:
    own = data.rows(measure).set_index("cell_id")
    tests = data.tests(measure).set_index("cell_id")["p_value"]
    columns = {
        f"{prefix}_{name}": cell_ids.map(own[name]) for name in ("value", "ci_low", "ci_high", "n", "status")
    }
    columns[f"{prefix}_p_value"] = cell_ids.map(tests).astype(float)
    return pd.DataFrame(columns)[[f"{prefix}_{name}" for name in FIGURE_FIELDS]]


def headline_from(data: ReportData) -> pd.DataFrame:
    """``headline`` for already loaded data (the HTML report reuses its ``ReportData``)."""
    cells = data.cells.rename(columns={"cell_id": "cell"})
    frame = cells[CELL_COLUMNS].copy()
    measures = headline_measures(data)
    parts = [frame] + [_figures(data, prefix, measure, cells["cell"]) for prefix, measure in measures.items()]
    result = pd.concat(parts, axis=1)
    result.attrs["measures"] = {prefix: measure.label for prefix, measure in measures.items()}
    result.attrs["primary_capability"] = data.primary.label if data.primary else None
    return result


def headline(store: ResultsStore, primary_capability: str | None = None) -> pd.DataFrame:
    """One row per finished cell (base first, then objective, seed, budget).

    Columns: the cell's identity and token counts, then for each figure (``capability``,
    ``asr``, ``p_match_<trait>``, ``lm_eval_<task>``) its ``_value``, ``_ci_low``,
    ``_ci_high``, ``_n``, ``_p_value`` (paired test vs base, NaN where none) and ``_status``. ``attrs`` names the
    measure behind each prefix (e.g. ``capability`` -> ``accuracy_flexible (gsm8k)``).
    """
    return headline_from(load_report_data(store, primary_capability))


def fixed(number: float, digits: int) -> str:
    """``number`` with ``digits`` decimals; a rounded zero never shows as ``-0.00``."""
    text = f"{number:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text


def format_estimate(value, ci_low, ci_high, n=None, p_value=None, status="ok", digits: int = 2) -> str:
    """``0.42 [0.35, 0.50] n=200`` (``*`` appended when p < 0.05); ``skipped`` / ``-``."""
    if status == "skipped":
        return "skipped"
    if not is_number(value):
        return "-"
    text = fixed(value, digits)
    if is_number(ci_low) and is_number(ci_high):
        text += f" [{fixed(ci_low, digits)}, {fixed(ci_high, digits)}]"
    if as_int(n) is not None:
        text += f" n={as_int(n)}"
    if is_number(p_value) and p_value < SIGNIFICANCE:
        text += " *"
    return text


def format_count(value) -> str:
    number = as_int(value)
    return "-" if number is None else f"{number:,}"


def mode_text(row: pd.Series) -> str:
    """How a cell's adapter was produced (snapshot / own run), ``base model`` for the base."""
    return row["mode"] if isinstance(row["mode"], str) else ("base model" if row["kind"] == "base" else "-")


def headline_display(frame: pd.DataFrame, digits: int = 2) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows of a headline frame (shared by the terminal and the HTML)."""
    prefixes = list(frame.attrs.get("measures", {}))
    header = ["cell", "mode", "budget tokens", "compute tokens"] + [frame.attrs["measures"][p] for p in prefixes]
    rows = []
    for _, row in frame.iterrows():
        figures = [format_estimate(*(row[f"{p}_{name}"] for name in FIGURE_FIELDS), digits=digits) for p in prefixes]
        rows.append([row["cell"], mode_text(row), format_count(row["budget_tokens"]), format_count(row["compute_tokens"])] + figures)
    return header, rows


def terminal_estimate(value, ci_low, ci_high, n=None, p_value=None, status="ok", digits: int = 2) -> str:
    """``format_estimate`` on three short lines (value, interval, n) so the table fits a terminal."""
    if status == "skipped" or not is_number(value):
        return format_estimate(value, ci_low, ci_high, n, p_value, status, digits)
    lines = [fixed(value, digits) + (" *" if is_number(p_value) and p_value < SIGNIFICANCE else "")]
    if is_number(ci_low) and is_number(ci_high):
        lines.append(f"[{fixed(ci_low, digits)}, {fixed(ci_high, digits)}]")
    if as_int(n) is not None:
        lines.append(f"n={as_int(n)}")
    return "\n".join(lines)


WIDE_TERMINAL = 140  # below this the terminal table leaves out mode and compute tokens (the HTML has them)


def render_headline(store: ResultsStore, console: Console, primary_capability: str | None = None) -> None:
    """Print the headline as a rich table, with the legend and the ASR definition below it.

    Same figures as ``headline_display`` (the HTML's table), laid out for a terminal: each
    figure on three lines, the cell as objective / seed / budget columns, and the mode and
    compute-token columns only on a wide terminal.
    """
    data = load_report_data(store, primary_capability)
    frame = headline_from(data)
    measures = frame.attrs.get("measures", {})
    wide = console.width >= WIDE_TERMINAL
    table = Table(title="objlab results: one row per cell", show_lines=True)
    table.add_column("objective", no_wrap=True)
    table.add_column("seed", justify="right")
    table.add_column("budget tokens", justify="right")
    if wide:
        table.add_column("mode")
        table.add_column("compute tokens", justify="right")
    for prefix in measures:
        table.add_column(measures[prefix].replace(" (", "\n("), justify="right", overflow="fold")
    for _, row in frame.iterrows():
        base = row["kind"] == "base"
        cells = ["base model" if base else str(row["objective"]), "-" if base else str(as_int(row["seed"])),
                 format_count(row["budget_tokens"])]
        if wide:
            cells += [mode_text(row), format_count(row["compute_tokens"])]
        cells += [terminal_estimate(*(row[f"{p}_{name}"] for name in FIGURE_FIELDS)) for p in measures]
        table.add_row(*cells)
    console.print(table)
    console.print(LEGEND, style="dim")
    failures = store.failures(open_only=True)
    if failures:
        console.print(f"{len(failures)} cell(s) failed, without figures; the next `objlab run` retries them:", style="bold red")
        for failure in failures:
            console.print(f"  {failure.cell_id} in {failure.phase}: {failure.summary}", highlight=False, soft_wrap=True)
    for line in asr_statements(data) if "asr" in measures else []:
        console.print(line, style="dim", markup=False, highlight=False)


def measure_table(data: ReportData, measures: list[Measure]) -> pd.DataFrame:
    """The table behind a plot: per measure and cell, the figure and its paired test vs base.

    Built from the very ``ReportData.rows`` / ``tests`` a plot draws, one block per measure
    (panel, attack, trait) in cell order. ``difference*`` and ``p_value`` come from the cell's
    comparison row (NaN for the base model and for figures without a paired test).
    """
    records = []
    for measure in measures:
        own = data.rows(measure).set_index("cell_id")
        tests = data.tests(measure).set_index("cell_id")
        for cell_id in data.cells["cell_id"]:
            if cell_id not in own.index:
                continue
            row = own.loc[cell_id]
            test = tests.loc[cell_id] if cell_id in tests.index else None
            records.append({
                "cell": cell_id, "measure": measure.label,
                **{name: row[name] for name in ("value", "ci_low", "ci_high", "n", "method", "status", "note")},
                "difference": test["value"] if test is not None else float("nan"),
                "difference_ci_low": test["ci_low"] if test is not None else float("nan"),
                "difference_ci_high": test["ci_high"] if test is not None else float("nan"),
                "p_value": test["p_value"] if test is not None else float("nan"),
                "test": f"{test['method']}; {test['comparison']}" if test is not None else "",
            })
    return pd.DataFrame(records, columns=MEASURE_COLUMNS)


def format_p(p_value) -> str:
    """``0.004 *`` below the significance level, ``0.41`` above it, ``-`` without a test."""
    if not is_number(p_value):
        return "-"
    text = f"{p_value:.3g}"
    return f"{text} *" if p_value < SIGNIFICANCE else text


def measure_display(frame: pd.DataFrame, digits: int = 3) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows of a ``measure_table`` (every number with its interval and n)."""
    header = ["cell", "measure", "value [95% CI]", "n", "method", "cell - base [95% CI]", "p vs base (Holm)", "test", "note"]
    rows = []
    for _, row in frame.iterrows():
        rows.append([
            row["cell"], row["measure"],
            format_estimate(row["value"], row["ci_low"], row["ci_high"], status=row["status"], digits=digits),
            format_count(row["n"]), row["method"],
            format_estimate(row["difference"], row["difference_ci_low"], row["difference_ci_high"], digits=digits),
            format_p(row["p_value"]), row["test"], row["note"],
        ])
    return header, rows


def _training_seconds(adapters: pd.DataFrame) -> float:
    """Training time of the grid: a snapshot run's time once (its cells share it), own runs summed.

    A snapshot cell's ``train_seconds`` is the time its run had taken when the snapshot was
    cut, so the run's time is the largest of its cells'; summing them would count it twice.
    """
    total = 0.0
    for _, run in adapters.groupby(["objective", "seed"], dropna=False):
        seconds = run["train_seconds"].astype(float).fillna(0.0)
        total += seconds.max() if (run["mode"] == "snapshot").any() else seconds.sum()
    return total


def _devices(cells: pd.DataFrame, manifest: str) -> str:
    names = set()
    for info in cells[manifest]:
        if info is None:
            continue
        device, gpu = info.device, info.environment.get("gpu")
        if device:
            names.add(f"{device} ({gpu})" if gpu and str(device).startswith("cuda") else str(device))
    return ", ".join(sorted(names)) or "-"


def time_per_phase_from(data: ReportData) -> pd.DataFrame:
    """Rows: training, adapter evaluation, base evaluation, total; seconds, cells, device."""
    adapters, base = data.adapter_cells, data.cells[data.cells["kind"] == "base"]
    training = _training_seconds(adapters)
    adapter_eval = float(adapters["eval_seconds"].astype(float).fillna(0.0).sum())
    base_eval = float(base["eval_seconds"].astype(float).fillna(0.0).sum())
    rows = [
        ("training", training, len(adapters), _devices(adapters, "train_manifest"),
         "snapshot runs counted once (their cells share one run)"),
        ("evaluation (adapters)", adapter_eval, len(adapters), _devices(adapters, "eval_manifest"), ""),
        ("evaluation (base model)", base_eval, len(base), _devices(base, "eval_manifest"), "once per grid"),
    ]
    rows.append(("total", training + adapter_eval + base_eval, len(data.cells), _devices(data.cells, "eval_manifest"), ""))
    return pd.DataFrame(rows, columns=["phase", "seconds", "cells", "device", "note"])


def time_per_phase(store: ResultsStore) -> pd.DataFrame:
    """Training and evaluation seconds of the run, the base evaluation, totals, and devices."""
    return time_per_phase_from(load_report_data(store))


def time_per_cell(data: ReportData) -> pd.DataFrame:
    """Per cell: training and evaluation seconds, seconds per evaluation axis, device."""
    rows = []
    for _, cell in data.cells.iterrows():
        seconds = cell["eval_manifest"].seconds if cell["eval_manifest"] is not None else {}
        rows.append({
            "cell": cell["cell_id"], "mode": cell["mode"] if isinstance(cell["mode"], str) else "base model",
            "train_seconds": cell["train_seconds"], "eval_seconds": cell["eval_seconds"],
            **{f"{axis}_seconds": value for axis, value in seconds.items()},
            "device": cell["device"] if isinstance(cell["device"], str) else "-",
        })
    return pd.DataFrame(rows)


def scorer_measures(data: ReportData) -> list[Measure]:
    """The macro ASR of the primary scorer and of every scorer beside it, and each pair's
    agreement and kappa on attack success, as stored per cell."""
    metrics = data.metrics
    jailbreak = metrics[metrics["axis"] == "jailbreak"]
    beside = sorted({m for m in jailbreak.loc[jailbreak["group"] == "", "metric"] if str(m).startswith("asr_")})
    pairs = sorted({g for g in jailbreak.loc[jailbreak["metric"] == "success_kappa", "group"]})
    return ([Measure("jailbreak", "asr", "")] + [Measure("jailbreak", metric, "") for metric in beside]
            + [Measure("jailbreak", metric, pair) for pair in pairs for metric in ("success_agreement", "success_kappa")])
