"""The report a researcher reads: one self-contained ``report.html`` plus every plot as PNG.

The page needs nothing but itself: the plots are embedded as base64 data URIs, the style is
inline, there is no script and no external address, so it can be mailed, archived or opened
offline. Every text that comes from the results store or the config (cell ids, notes, judge
names) goes through ``html.escape``: a note can hold anything a judge or a dataset said.

Order of the page: the toy banner (when the run is a toy's), what the numbers rest on
(model, data, scorers, backend, devices), the cells and their mode (pending and failed ones included),
the headline table, each plot with the table of exactly the rows it draws, the notes on
skipped figures and warnings, and the time per phase.
"""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

import objlab
from objlab.report.data import ReportData, format_budget, is_number, load_report_data, pending_cells
from objlab.report.evidence import AWARE_NOTE, evidence_table, has_aware
from objlab.report.plots import Plot, draw_all, plots_for
from objlab.report.provenance import (
    asr_statements,
    cell_status,
    manifest_warnings,
    run_facts,
    skipped_notes,
)
from objlab.report.agreement import load_agreement
from objlab.report.models import CROSS_MODEL_PNG, for_model, model_keys, ordering_consistency, plot_cross_model
from objlab.report.summary import overrefusal_statements
from objlab.report.tables import (
    LEGEND,
    format_count,
    format_estimate,
    headline_display,
    headline_from,
    measure_display,
    measure_table,
    scorer_measures,
    time_per_cell,
    time_per_phase_from,
)
from objlab.store import ResultsStore

REPORT_DIR = "report"
REPORT_FILE = "report.html"
OPEN_TABLE_ROWS = 40  # longer tables start folded (a <details> element, no script needed)
TOY_BANNER = (
    "TOY MODEL RUN. These numbers come from a toy model (config <code>toy: true</code>): they show that the "
    "pipeline, stores and plots work, and say nothing about the safety of any real model."
)
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 1.2em 2em 3em; color: #1d1d1d; line-height: 1.45; }
h1 { margin-bottom: 0.1em; } h2 { margin-top: 2.2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.subtitle { color: #555; margin-top: 0; }
.toy-banner { background: #fff3cd; border: 3px solid #e0a800; color: #5c4400; font-size: 1.15em;
              font-weight: 600; padding: 0.9em 1.2em; margin: 1em 0; border-radius: 6px; }
.pending { background: #eef4ff; border-left: 4px solid #4a78c2; padding: 0.5em 1em; }
.missing { background: #f6f6f6; border-left: 4px solid #999; padding: 0.5em 1em; }
.failed { background: #fdecea; border-left: 4px solid #c0392b; padding: 0.5em 1em; }
pre { white-space: pre-wrap; font-size: 0.8em; background: #f6f6f6; padding: 0.5em; }
.definition { background: #f7f7fb; border-left: 4px solid #7a6fb0; padding: 0.5em 1em; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.84em; margin: 0.6em 0 1em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.55em; text-align: left; vertical-align: top; white-space: nowrap; }
td.prose { white-space: normal; min-width: 11em; }
.scroll { overflow-x: auto; max-width: 100%; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.pending-row td { color: #4a78c2; font-style: italic; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1.2em; font-size: 0.92em; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; word-break: break-word; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.9em; max-width: 70em; }
summary { cursor: pointer; color: #333; font-weight: 600; margin: 0.4em 0; }
nav ul { columns: 2; font-size: 0.92em; } code { background: #f3f3f3; padding: 0 0.2em; }
footer { margin-top: 3em; color: #777; font-size: 0.85em; }
"""
_NUMERIC_HEADERS = frozenset({"n", "seconds", "cells", "budget tokens", "compute tokens", "steps", "final loss"})
_PROSE_HEADERS = frozenset({"method", "test", "note", "device", "data it drew on"})  # long text wraps; figures never do


def write_report(run_dir: Path, primary_capability: str | None = None) -> Path:
    """Write ``RUN_DIR/report/report.html`` and the plots as PNG; returns the HTML's path.

    The store is opened read-only, so a report can be drawn from a finished or stopped run at
    any time. ``primary_capability`` (``metric`` or ``metric:group``) picks the frontier's
    capability axis (default: see ``data.parse_primary``).
    """
    run_dir = Path(run_dir)
    with ResultsStore.in_run_dir(run_dir, read_only=True) as store:
        data = load_report_data(store, primary_capability)
        for key in model_keys(data):
            panel = for_model(data, key)
            panel.agreement = load_agreement(store, f"{key}/")
            data.panels[key] = panel
        for shown in data.panels.values() or [data]:
            seeds = shown.seeds()
            shown.overrefusal_findings = overrefusal_statements(shown, store, seeds[0] if seeds else None)
    out_dir = run_dir / REPORT_DIR
    if data.panels:
        pngs: dict = {CROSS_MODEL_PNG: plot_cross_model(data, out_dir)}
        for key, panel in data.panels.items():
            pngs.update({(key, name): path for name, path in draw_all(panel, out_dir / key).items()})
    else:
        pngs = draw_all(data, out_dir)
    target = out_dir / REPORT_FILE
    target.write_text(render_html(data, pngs), encoding="utf-8")
    return target


def render_html(data: ReportData, pngs: dict[str, Path]) -> str:
    """The whole page for ``data`` with the PNGs of ``draw_all`` embedded (for a grid over several
    models: the models' comparison, then one panel per model, each as a one-model report)."""
    name = data.config.get("name") or "objlab run"
    if data.panels:
        body = [_section("facts", "What the numbers rest on", _facts(data)),
                _section("models", "Objectives across models", _models(data, pngs[CROSS_MODEL_PNG]))]
        for key, panel in data.panels.items():
            body.append(f'<section id="model-{_e(key)}" class="model"><h2>Model {_e(key)}: '
                        f'{_e((panel.config.get("model") or {}).get("name_or_path", key))}</h2>')
            body += _body(panel, {name_: path for name_, path in pngs.items() if isinstance(name_, tuple) and name_[0] == key}, f"{key}-")
            body.append("</section>")
    else:
        body = [_section("facts", "What the numbers rest on", _facts(data)), *_body(data, pngs)]
    page = [
        f"<h1>objlab report: {_e(name)}</h1>",
        f'<p class="subtitle">How the fine-tuning objective changes what fine-tuning does to safety. '
        f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by objlab {_e(objlab.__version__)}.</p>",
        f'<div class="toy-banner" role="alert">{TOY_BANNER}</div>' if data.is_toy else "",
        _contents(data),
        *body,
        "<footer>Every figure: value [95% interval], n = number of items, the method that produced it; "
        "tests against the base model are paired on the same items, p-values Holm-adjusted within each axis.</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>objlab report: {_e(name)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(part for part in page if part)
        + "\n</body>\n</html>\n"
    )


def _body(data: ReportData, pngs: dict[str, Path], prefix: str = "") -> list[str]:
    """The sections of one model's grid (anchors prefixed for one model of several)."""
    return [
        _section(f"{prefix}cells", "Cells", _cells(data)),
        _section(f"{prefix}objectives", "What each objective did", _objectives(data)),
        _section(f"{prefix}headline", "Headline", _headline(data)),
        _section(f"{prefix}scorers", "Scorers: agreement and disagreements", _scorers(data)) if data.agreement.several else "",
        *(_plot_section(data, plot, pngs[(prefix[:-1], plot.name) if prefix else plot.name], prefix) for plot in plots_for(data)),
        _section(f"{prefix}notes", "Notes: skipped figures and warnings", _notes(data)),
        _section(f"{prefix}time", "Time per phase", _timing(data)),
    ]


def _models(data: ReportData, png: Path) -> str:
    """The cross-model figure and the ordering's consistency between models."""
    encoded = base64.b64encode(png.read_bytes()).decode("ascii")
    figure = (f'<figure><img src="data:image/png;base64,{encoded}" alt="Objectives across models">'
              f"<figcaption>Each objective (column) at each budget: the macro ASR (top) and the primary capability "
              f"figure (bottom), one line per model, the mean over seeds; every figure's interval is in its model's panel "
              f"below. PNG: <code>{_e(png.name)}</code>.</figcaption></figure>")
    table = ordering_consistency(data)
    rows = [[format_budget(row.budget), row.models, f"{row.kendall_tau:+.3f}" if is_number(row.kendall_tau) else "-",
             f"{row.p_value:.3g}" if is_number(row.p_value) else "-", str(row.objectives)] for row in table.itertuples()]
    consistency = (_table(["budget", "models", "Kendall's tau", "p", "objectives ranked"], rows,
                          "the objectives' macro-ASR ordering, between models (tau 1: the same ordering)")
                   if rows else "<p>Fewer than three objectives at a budget both models finished: no ordering to compare.</p>")
    return figure + consistency


# -- building blocks -------------------------------------------------------------------------------
def _e(value) -> str:
    """Text for the page, escaped (store text may hold markup)."""
    return html.escape("" if value is None else str(value), quote=True)


def _section(anchor: str, title: str, content: str) -> str:
    return f'<section id="{anchor}">\n<h2>{_e(title)}</h2>\n{content}\n</section>'


def _table(header: list[str], rows: list[list], caption: str = "") -> str:
    """An HTML table of escaped text; long ones fold into a <details> element."""
    kinds = ["num" if name in _NUMERIC_HEADERS or name.endswith("seconds") else "prose" if name in _PROSE_HEADERS else ""
             for name in header]
    head = "".join(f"<th>{_e(name)}</th>" for name in header)
    lines = []
    for row in rows:
        css = ' class="pending-row"' if "pending" in row else ""
        cells = "".join(f'<td class="{kind}">{_e(v)}</td>' if kind else f"<td>{_e(v)}</td>" for v, kind in zip(row, kinds))
        lines.append(f"<tr{css}>{cells}</tr>")
    table = f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(lines)}</tbody></table></div>'
    summary = caption or "table"
    opened = " open" if len(rows) <= OPEN_TABLE_ROWS else ""
    return f"<details{opened}><summary>{_e(summary)} ({len(rows)} rows)</summary>{table}</details>"


def _frame_rows(frame: pd.DataFrame) -> list[list[str]]:
    """A DataFrame's cells as display text (NaN and None as '-', floats to 4 significant digits)."""
    def text(value) -> str:
        if value is None or (isinstance(value, float) and value != value) or value is pd.NA or value is pd.NaT:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    return [[text(v) for v in row] for row in frame.itertuples(index=False)]


def _contents(data: ReportData) -> str:
    if data.panels:
        entries = [("facts", "What the numbers rest on"), ("models", "Objectives across models")]
        entries += [(f"model-{key}", f"Model {key}") for key in data.panels]
        return "<nav><ul>" + "".join(f'<li><a href="#{anchor}">{_e(title)}</a></li>' for anchor, title in entries) + "</ul></nav>"
    entries = [("facts", "What the numbers rest on"), ("cells", "Cells"), ("objectives", "What each objective did"), ("headline", "Headline")]
    entries += [("scorers", "Scorers: agreement and disagreements")] if data.agreement.several else []
    entries += [(plot.name, plot.title) for plot in plots_for(data)]
    entries += [("notes", "Notes"), ("time", "Time per phase")]
    items = "".join(f'<li><a href="#{anchor}">{_e(title)}</a></li>' for anchor, title in entries)
    return f"<nav><ul>{items}</ul></nav>"


# -- sections -------------------------------------------------------------------------------------
def _facts(data: ReportData) -> str:
    items = "".join(f"<dt>{_e(label)}</dt><dd>{_e(text)}</dd>" for label, text in run_facts(data))
    return f'<dl class="facts">{items}</dl>'


def _cells(data: ReportData) -> str:
    frame = cell_status(data)
    pending = pending_cells(data)
    lead = (
        f'<p class="pending"><strong>{len(pending)} cell(s) pending</strong> (no results yet; not in any plot or '
        f"table below): {_e(', '.join(pending))}</p>"
        if pending else "<p>Every cell of the grid has finished.</p>"
    )
    explain = (
        "<p>Mode: <code>snapshot</code> = cut at this budget from one run per (objective, seed) under the "
        "budget-independent schedule; <code>own-run</code> = the end of a run (its own, or the run to the largest "
        "budget). Budget tokens are task-stream tokens consumed; compute tokens include what the objective adds "
        "(rejected responses, reference passes, samples).</p>"
    )
    header = ["cell", "status", "mode", "budget tokens", "compute tokens", "steps", "final loss", "finished at"]
    rows = _frame_rows(frame)
    for row, (_, record) in zip(rows, frame.iterrows()):
        row[3], row[4] = format_count(record["budget_tokens"]), format_count(record["compute_tokens"])
    return lead + explain + _table(header, rows, "cells of the grid") + _failed(data)


def _failed(data: ReportData) -> str:
    """The cells whose last attempt failed: phase, error, time, and the traceback folded."""
    if not data.failures:
        return ""
    rows = [[f.cell_id, f.phase, f.summary, f"{f.failed_at:%Y-%m-%d %H:%M:%S}"] for f in data.failures]
    tracebacks = "".join(
        f"<details><summary>traceback of {_e(f.cell_id)}</summary><pre>{_e(f.traceback or f.message)}</pre></details>"
        for f in data.failures
    )
    return (
        f'<p class="failed"><strong>{len(data.failures)} cell(s) failed</strong> (pending above; no figure of theirs is '
        "shown; the next <code>objlab run</code> retries them):</p>"
        + _table(["cell", "phase", "error", "failed at (UTC)"], rows, "failed cells") + tracebacks
    )


def _objectives(data: ReportData) -> str:
    frame = evidence_table(data)
    if frame.empty:
        return "<p>No adapter cell has finished yet.</p>"
    lead = (
        "<p>Where each objective's extra data came from (the study's preference pairs reject an <em>unsafe</em> "
        "response; <code>corrupt</code> is a capability-only control), and the evidence that an objective did what "
        "its paper says: for <code>aware</code>, the mean gate (0 = plain SFT), the share of items whose gate lies "
        "strictly between 0 and 1, the abstention rate and the mean alignment score of its samples, each "
        "value [95% interval] n=items.</p>"
    )
    note = f"<p>{_e(AWARE_NOTE)}</p>" if has_aware(data) else ""
    header = list(frame.columns)
    return lead + note + _table(header, _frame_rows(frame), "objective evidence per cell")


def _asr_definition(data: ReportData) -> str:
    """The ASR definition (scorer, success, threshold, macro, attack sources) as a paragraph."""
    lines = asr_statements(data)
    return f'<p class="definition"><strong>ASR:</strong> {"<br>".join(_e(line) for line in lines)}</p>' if lines else ""


def _headline(data: ReportData) -> str:
    header, rows = headline_display(headline_from(data))
    primary = data.primary.label if data.primary else "none"
    return (
        f"<p>Primary capability figure: <code>{_e(primary)}</code>. {_e(LEGEND)}</p>"
        + _asr_definition(data)
        + _table(header, rows, "one row per finished cell")
    )


def _estimate(estimate) -> str:
    return format_estimate(estimate.value, estimate.ci_low, estimate.ci_high, estimate.n)


def _scorers(data: ReportData) -> str:
    """Every scorer's macro ASR per cell beside the primary one, their agreement per cell and over
    the run, and the items on which they disagree."""
    agreement = data.agreement
    lead = (f"<p>{len(agreement.scorers)} scorers decided attack success on every answer ({_e(', '.join(agreement.scorers))}; "
            "the first is the primary one, which the headline uses). Agreement is the share of items both decided the "
            "same way; Cohen's kappa discounts the agreement expected by chance (bootstrap 95% interval).</p>")
    pooled = _table(["scorers", "agreement [95% CI] n", "Cohen's kappa [95% CI] n"],
                    [[pair.label, _estimate(pair.agreement), _estimate(pair.kappa)] for pair in agreement.pairs],
                    "over every cell of the run")
    header, rows = measure_display(measure_table(data, scorer_measures(data)))
    per_cell = _table(header, rows, "per cell: each scorer's macro ASR and each pair's agreement") if rows else ""
    shown = agreement.disagreements
    listing = _table(["cell", "attack", "item", "prompt", "answer", *agreement.scorers],
                     [[d.cell_id, d.attack, d.item_id, d.prompt, d.response,
                       *("-" if d.verdicts.get(name) is None else ("success" if d.verdicts[name] else "no")
                         for name in agreement.scorers)] for d in shown],
                     f"items on which the scorers disagree: {len(shown)} of {agreement.disagreeing_items} shown "
                     f"(of {agreement.items} items)")
    return lead + pooled + per_cell + listing


def _plot_section(data: ReportData, plot: Plot, png: Path, prefix: str = "") -> str:
    encoded = base64.b64encode(png.read_bytes()).decode("ascii")
    reason = plot.missing(data)
    missing = f'<p class="missing">Not drawn: {_e(reason)}.</p>' if reason else ""
    header, rows = measure_display(measure_table(data, plot.measures(data)))
    table = _table(header, rows, "the numbers behind this plot") if rows else "<p>No figures in the store for this plot.</p>"
    figure = (
        f'<figure><img src="data:image/png;base64,{encoded}" alt="{_e(plot.title)}">'
        f"<figcaption>{_e(plot.caption)} PNG: <code>{_e(png.name)}</code>.</figcaption></figure>"
    )
    measures = plot.measures(data)
    definition = _asr_definition(data) if any(measure.axis == "jailbreak" for measure in measures) else ""
    findings = ""
    if plot.name == "asr_vs_overrefusal" and data.overrefusal_findings:
        findings = f'<p class="definition"><strong>Over-refusal behind a lower ASR:</strong> {_e(" ".join(data.overrefusal_findings))}</p>'
    return _section(f"{prefix}{plot.name}", plot.title, missing + figure + findings + definition + table)


def _notes(data: ReportData) -> str:
    skipped = skipped_notes(data)
    parts = []
    if skipped.empty:
        parts.append("<p>No figure was skipped.</p>")
    else:
        items = "".join(
            f"<li><strong>{_e(row.axis)} {_e(row.metric)}{_e(f' ({row.group})' if row.group else '')}</strong>: "
            f"skipped in {row.cells} of {row.of} cells. {_e(row.note)}</li>"
            for row in skipped.itertuples(index=False)
        )
        parts.append(f"<p>Figures that were not produced, and why:</p><ul>{items}</ul>")
    warnings = manifest_warnings(data)
    if warnings:
        parts.append("<p>Warnings recorded during evaluation:</p><ul>" + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul>")
    return "\n".join(parts)


def _timing(data: ReportData) -> str:
    phases = time_per_phase_from(data)
    header = ["phase", "seconds", "cells", "device", "note"]
    rows = [[row.phase, f"{row.seconds:,.1f}", str(row.cells), row.device, row.note] for row in phases.itertuples(index=False)]
    per_cell = time_per_cell(data)
    cell_header = [column.replace("_", " ") for column in per_cell.columns]
    return _table(header, rows, "seconds per phase") + _table(cell_header, _frame_rows(per_cell), "seconds per cell")
