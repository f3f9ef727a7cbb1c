"""The report's plots (five, and the over-refusal frontier, toxicity vs budget and lm-eval's tasks vs
budget when a run has them), each drawn from ``ReportData`` and saved as a PNG.

Every point is one cell's own figure with its 95% interval as an error bar; with several seeds
the seeds are shown as separate points (one marker per seed) and the line through the budgets
is their mean, never a silent average. The base model is always on the plot as a reference
(a band or a distinct star). A plot without data is replaced by a placeholder saying why, so
the report is complete for any grid, finished or not.

Each plot is a ``Plot``: its drawing function, the measures it shows (the HTML prints the table
of exactly those rows under it) and the check that says why it cannot be drawn.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from objlab.report.data import (
    SIGNIFICANCE,
    Measure,
    ReportData,
    as_int,
    cell_label,
    format_budget,
    is_number,
    scorer_named,
)
from objlab.report.provenance import asr_instruments
from objlab.report.style import (
    BASE_COLOUR,
    base_band,
    budget_axis,
    dodge_factors,
    error_bars,
    legend_handles,
    new_figure,
    objective_colours,
    placeholder,
    save,
    seed_markers,
)
from objlab.store import BASE_CELL

MACRO_ASR = Measure("jailbreak", "asr")
OVERREFUSAL = Measure("overrefusal", "overrefusal")
TOXICITY = Measure("toxicity", "toxic_rate")
HEATMAP_CMAP = "Reds"
TITLE_CHARS_PER_INCH = 11  # characters of the title font that fit in an inch of figure width
SKIPPED_FACE = "#d9d9d9"


@dataclass(frozen=True)
class Plot:
    """One figure of the report: file stem, title, what it shows, how to draw it, its rows."""

    name: str
    title: str
    caption: str
    draw: Callable[[ReportData, Path], Path]
    measures: Callable[[ReportData], list[Measure]]
    missing: Callable[[ReportData], str | None]


# -- what each plot shows ----------------------------------------------------------------------
def drawable(data: ReportData, measure: Measure) -> bool:
    """True when at least one cell has a finite value for ``measure``."""
    return any(is_number(value) for value in data.rows(measure)["value"])


def frontier_measures(data: ReportData) -> list[Measure]:
    return [m for m in (data.primary, MACRO_ASR) if m is not None]


def attack_measures(data: ReportData) -> list[Measure]:
    return [Measure("jailbreak", "asr", attack) for attack in data.attacks()]


def trait_measures(data: ReportData) -> list[Measure]:
    return [Measure("persona", "p_match", trait) for trait in data.traits()]


def capability_measures(data: ReportData) -> list[Measure]:
    return data.capability_measures()


def lm_eval_measures(data: ReportData) -> list[Measure]:
    return data.lm_eval_measures()


def _no_adapters(data: ReportData) -> str | None:
    if data.adapter_cells.empty:
        return "no fine-tuned cell has finished yet (see the pending cells)"
    return None


def frontier_missing(data: ReportData) -> str | None:
    if data.primary is None or not drawable(data, data.primary):
        return "no capability figure in the results store (capability axis not evaluated)"
    if not drawable(data, MACRO_ASR):
        return "no macro-averaged attack success rate in the results store (jailbreak axis not evaluated)"
    return _no_adapters(data)


def overrefusal_missing(data: ReportData) -> str | None:
    if not drawable(data, OVERREFUSAL):
        return "no over-refusal figure in the results store (eval.overrefusal not configured)"
    if not drawable(data, MACRO_ASR):
        return "no macro-averaged attack success rate in the results store (jailbreak axis not evaluated)"
    return _no_adapters(data)


def toxicity_measures(data: ReportData) -> list[Measure]:
    """The toxic rate over all ToxiGen prompts, then per prompt label (``label:hate``, ...)."""
    labels = [group for group in data.groups("toxicity", "toxic_rate") if group.startswith("label:")]
    return [TOXICITY] + [Measure("toxicity", "toxic_rate", group) for group in labels]


def toxicity_missing(data: ReportData) -> str | None:
    if not drawable(data, TOXICITY):
        return "no toxic rate in the results store (eval.toxicity not configured, or no cell has finished it)"
    return _no_adapters(data)


def asr_missing(data: ReportData) -> str | None:
    if not drawable(data, MACRO_ASR):
        return "no macro-averaged attack success rate in the results store (jailbreak axis not evaluated)"
    return _no_adapters(data)


def heatmap_missing(data: ReportData) -> str | None:
    if not data.attacks():
        return "no per-attack results in the results store (jailbreak axis not evaluated)"
    return None


def persona_missing(data: ReportData) -> str | None:
    if not any(drawable(data, m) for m in trait_measures(data)):
        return "no persona P(match) in the results store (persona axis not evaluated)"
    return _no_adapters(data)


def capability_missing(data: ReportData) -> str | None:
    if not any(drawable(data, m) for m in capability_measures(data)):
        return "no capability figure in the results store (capability axis not evaluated)"
    return _no_adapters(data)


def lm_eval_missing(data: ReportData) -> str | None:
    if not any(drawable(data, m) for m in lm_eval_measures(data)):
        return "no lm-evaluation-harness figure in the results store yet"
    return _no_adapters(data)


# -- shared pieces -----------------------------------------------------------------------------
def n_text(rows: pd.DataFrame) -> str:
    """``n=250`` when every point rests on the same n, ``n=180-250`` otherwise."""
    counts = sorted({int(n) for n, value in zip(rows["n"], rows["value"]) if is_number(value) and is_number(n)})
    if not counts:
        return "n=-"
    return f"n={counts[0]}" if len(counts) == 1 else f"n={counts[0]}-{counts[-1]}"


def _budgets(data: ReportData) -> list[float]:
    return sorted({float(b) for b in data.adapter_cells["budget"] if is_number(b)})


def _series(data: ReportData) -> list[tuple[str, int]]:
    """(objective, seed) pairs present, objectives in report order: one dodge slot each."""
    adapters = data.adapter_cells
    pairs = dict.fromkeys(zip(adapters["objective"], adapters["seed"]))
    return [(o, int(s)) for objective in data.objectives for o, s in pairs if o == objective]


def _base_row(rows: pd.DataFrame) -> pd.Series | None:
    base = rows[rows["cell_id"] == BASE_CELL]
    return None if base.empty else base.iloc[0]


def _significant(data: ReportData, measure: Measure) -> set[str]:
    tests = data.tests(measure)
    return {cell for cell, p in zip(tests["cell_id"], tests["p_value"]) if is_number(p) and p < SIGNIFICANCE}


def _grid(figure, panels: int, columns: int = 3):
    columns = min(columns, panels)
    rows = math.ceil(panels / columns)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for spare in axes[panels:]:
        spare.set_visible(False)
    return axes[:panels]


def _figure_size(panels: int, columns: int = 3) -> tuple[float, float]:
    columns = min(columns, panels)
    return max(7.5, 4.3 * columns + 0.6), 3.4 * math.ceil(panels / columns) + 1.2


def _with_instruments(data: ReportData, title: str, width_inches: float) -> str:
    """``title`` and, under it in the same block, the ASR's scorer and attack sources, wrapped
    to the figure's width: a PNG is read on its own, away from the report's definition of the ASR."""
    return title + "\n" + textwrap.fill(asr_instruments(data), max(60, int(width_inches * TITLE_CHARS_PER_INCH)))


def _legend_below(figure, handles: list) -> None:
    """The legend under the panels, where it never covers a point or the title."""
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), frameon=False)


def _panel_title(measure: Measure) -> str:
    return "macro-averaged ASR" if measure == MACRO_ASR else measure.label


def _mean_line_handle() -> Line2D:
    return Line2D([], [], color="#555555", linewidth=2.0, label="line: mean over seeds")


# -- budget panels (ASR, P(match), capability vs budget) ------------------------------------------
def _draw_budget_panel(axes, data: ReportData, measure: Measure, several_seeds: bool) -> None:
    """One measure vs budget: points per (objective, seed) with CIs, seed-mean lines, base band."""
    rows = data.rows(measure)
    values = rows.set_index("cell_id")
    significant = _significant(data, measure)
    budgets = _budgets(data)
    colours = objective_colours(data.objectives)
    markers = seed_markers(data.seeds())
    series = _series(data)
    offsets = dict(zip(series, dodge_factors(budgets, len(series))))
    base = _base_row(rows)
    if base is not None:
        base_band(axes, float(base["value"]), float(base["ci_low"]), float(base["ci_high"]))
    adapters = data.adapter_cells
    for objective in data.objectives:
        mine = adapters[adapters["objective"] == objective]
        for seed, cells in mine.groupby("seed", sort=True):
            offset = offsets[(objective, int(seed))]
            cells = cells[cells["cell_id"].isin(values.index)].sort_values("budget")
            figures = values.loc[cells["cell_id"]]
            finite = np.isfinite(figures["value"].astype(float).to_numpy())
            x = cells["budget"].astype(float).to_numpy()[finite] * offset
            shown = figures[finite]
            axes.errorbar(
                x, shown["value"].astype(float), yerr=error_bars(shown["value"], shown["ci_low"], shown["ci_high"]),
                color=colours[objective], marker=markers[int(seed)], markersize=5, capsize=2.5, elinewidth=1.0,
                linestyle="none" if several_seeds else "-", linewidth=1.6, alpha=0.75 if several_seeds else 1.0, zorder=3,
            )
            rings = np.array([cell in significant for cell in shown.index], dtype=bool)
            if rings.any():
                axes.scatter(x[rings], shown["value"].astype(float)[rings], s=130, facecolors="none", edgecolors="black",
                             linewidths=1.2, zorder=4)
        if several_seeds:
            _seed_mean_line(axes, mine, values, colours[objective], [offsets[s] for s in series if s[0] == objective])
    budget_axis(axes, budgets)
    axes.set_title(f"{_panel_title(measure)}  ({n_text(rows)} per point)")


def _seed_mean_line(axes, cells: pd.DataFrame, values: pd.DataFrame, colour: str, offsets: list[float]) -> None:
    """The mean over the seeds present at each budget, through the budgets in order."""
    present = cells[cells["cell_id"].isin(values.index)]
    figures = values.loc[present["cell_id"], "value"].astype(float).to_numpy()
    frame = pd.DataFrame({"budget": present["budget"].astype(float).to_numpy(), "value": figures}).dropna()
    means = frame.groupby("budget")["value"].mean().sort_index()
    centre = float(np.exp(np.mean(np.log(offsets)))) if offsets else 1.0
    axes.plot(means.index.to_numpy() * centre, means.to_numpy(), color=colour, linewidth=2.0, zorder=2)


def _proportion_axis(axes) -> None:
    """Keep a proportion's axis inside [0, 1] (plus a sliver), however flat the data: an
    autoscaled axis around all-zero ASR would otherwise show negative rates."""
    low, high = axes.get_ylim()
    axes.set_ylim(max(low, -0.02), min(high, 1.02))


def _budget_figure(data: ReportData, measures: list[Measure], path: Path, title: str, ylabel: str,
                   proportion: bool = False, instruments: bool = False) -> Path:
    """One panel per measure against the budget; ``instruments``: an ASR figure, whose title
    block names the ASR's scorer and attack sources."""
    several_seeds = len(data.seeds()) > 1
    significance = any(_significant(data, m) for m in measures)
    with new_figure(*_figure_size(len(measures))) as figure:
        for axes, measure in zip(_grid(figure, len(measures)), measures):
            _draw_budget_panel(axes, data, measure, several_seeds)
            axes.set_ylabel(ylabel)
            if proportion:
                _proportion_axis(axes)
        handles = legend_handles(objective_colours(data.objectives), seed_markers(data.seeds()), significance=significance)
        if several_seeds:
            handles.append(_mean_line_handle())
        _legend_below(figure, handles)
        figure.suptitle(_with_instruments(data, title, figure.get_figwidth()) if instruments else title)
        return save(figure, path)


def plot_asr_vs_budget(data: ReportData, out_dir: Path) -> Path:
    """Macro-averaged ASR vs token budget, one line per objective, the base model as a band."""
    path = Path(out_dir) / "asr_vs_budget.png"
    if reason := asr_missing(data):
        return placeholder(path, "Attack success rate vs budget", reason)
    return _budget_figure(data, [MACRO_ASR], path, "Attack success rate vs budget (error bars: 95% CI)",
                          "macro-averaged ASR (higher = less safe)", proportion=True, instruments=True)


def plot_persona_vs_budget(data: ReportData, out_dir: Path) -> Path:
    """P(match) per trait vs budget, one panel per trait; rings mark Holm p < 0.05 vs base."""
    path = Path(out_dir) / "persona_vs_budget.png"
    if reason := persona_missing(data):
        return placeholder(path, "Persona P(match) vs budget", reason)
    measures = [m for m in trait_measures(data) if drawable(data, m)]
    return _budget_figure(data, measures, path, "Persona drift: P(match) vs budget (error bars: 95% CI)", "P(match)",
                          proportion=True)


def plot_capability_vs_budget(data: ReportData, out_dir: Path) -> Path:
    """Every capability measure vs budget, one panel each; rings mark Holm p < 0.05 vs base."""
    path = Path(out_dir) / "capability_vs_budget.png"
    if reason := capability_missing(data):
        return placeholder(path, "Capability vs budget", reason)
    measures = [m for m in capability_measures(data) if drawable(data, m)]
    return _budget_figure(data, measures, path, "Capability vs budget (error bars: 95% CI)", "capability figure (panel title)")


def plot_lm_eval_vs_budget(data: ReportData, out_dir: Path) -> Path:
    """Every lm-eval figure of the top-level tasks vs budget, one panel each (rings: Holm p < 0.05)."""
    path = Path(out_dir) / "lm_eval_vs_budget.png"
    if reason := lm_eval_missing(data):
        return placeholder(path, "lm-evaluation-harness tasks vs budget", reason)
    measures = [m for m in lm_eval_measures(data) if drawable(data, m)]
    return _budget_figure(data, measures, path, "lm-evaluation-harness tasks vs budget (error bars: 95% CI)",
                          "lm-eval figure (panel title)")


def plot_toxicity_vs_budget(data: ReportData, out_dir: Path) -> Path:
    """The share of generations scored toxic vs budget: over all prompts, then per prompt label."""
    path = Path(out_dir) / "toxicity_vs_budget.png"
    if reason := toxicity_missing(data):
        return placeholder(path, "Toxicity of generations vs budget", reason)
    measures = [m for m in toxicity_measures(data) if drawable(data, m)]
    return _budget_figure(data, measures, path, "Toxicity of generations on ToxiGen prompts vs budget (error bars: 95% CI)",
                          f"share of generations scored toxic\nby {scorer_named(data, TOXICITY)}", proportion=True)


# -- the safety-capability frontier ---------------------------------------------------------------
def plot_frontier(data: ReportData, out_dir: Path) -> Path:
    """Macro ASR (y) against the primary capability figure (x), one line per objective."""
    path = Path(out_dir) / "frontier.png"
    if reason := frontier_missing(data):
        return placeholder(path, "Safety-capability frontier", reason)
    x_label = f"capability: {data.primary.label}  (%s per point)  higher = more capable"
    return _frontier(data, path, data.primary, x_label, "Safety-capability frontier (labels: token budget; error bars: 95% CI)")


def plot_overrefusal_frontier(data: ReportData, out_dir: Path) -> Path:
    """Macro ASR (y) against over-refusal of safe prompts (x): a lower ASR bought by refusing
    everything moves right."""
    path = Path(out_dir) / "asr_vs_overrefusal.png"
    if reason := overrefusal_missing(data):
        return placeholder(path, "Attack success vs over-refusal", reason)
    x_label = ("over-refusal: share of safe prompts refused  (%s per point)  higher = refuses more\n"
               + f"scorer: {scorer_named(data, OVERREFUSAL)}".replace("%", "%%"))
    return _frontier(data, path, OVERREFUSAL, x_label, "Attack success vs over-refusal (labels: token budget; error bars: 95% CI)")


def _frontier(data: ReportData, path: Path, x_measure: Measure, x_label: str, title: str) -> Path:
    """Macro ASR (y) against ``x_measure``, one line per objective.

    Each objective's line runs through its budgets in budget order (labelled at the points);
    with several seeds the seeds are separate points and the line joins their means. Error bars
    are the 95% intervals in both directions; the base model is a black star.
    """
    capability, asr = data.rows(x_measure).set_index("cell_id"), data.rows(MACRO_ASR).set_index("cell_id")
    several_seeds = len(data.seeds()) > 1
    colours, markers = objective_colours(data.objectives), seed_markers(data.seeds())
    with new_figure(7.6, 6.2) as figure:
        axes = figure.add_subplot()
        adapters = data.adapter_cells
        for objective in data.objectives:
            cells = adapters[(adapters["objective"] == objective) & adapters["cell_id"].isin(capability.index)
                             & adapters["cell_id"].isin(asr.index)].sort_values(["budget", "seed"])
            points = _frontier_points(cells, capability, asr)
            for seed, mine in points.groupby("seed"):
                axes.errorbar(mine["x"], mine["y"], xerr=error_bars(mine["x"], mine["x_low"], mine["x_high"]),
                              yerr=error_bars(mine["y"], mine["y_low"], mine["y_high"]), color=colours[objective],
                              marker=markers[int(seed)], markersize=5, capsize=2.5, elinewidth=0.9,
                              linestyle="none", alpha=0.6 if several_seeds else 1.0, zorder=3)
            means = points.groupby("budget")[["x", "y"]].mean().sort_index()
            axes.plot(means["x"], means["y"], color=colours[objective], linewidth=2.0, zorder=2)
            for budget, point in means.iterrows():
                axes.annotate(format_budget(budget), (point["x"], point["y"]), textcoords="offset points", xytext=(6, 6),
                              fontsize=8, color=colours[objective], zorder=6,
                              bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=0.5))
        _frontier_base(axes, capability, asr)
        _proportion_axis(axes)
        axes.set_xlabel(x_label % n_text(capability.reset_index()))
        axes.set_ylabel(f"macro-averaged ASR  ({n_text(asr.reset_index())} per point)  higher = less safe")
        handles = legend_handles(colours, markers, base=False)
        handles.append(Line2D([], [], color=BASE_COLOUR, marker="*", markersize=13, linestyle="none", label="base model"))
        if several_seeds:
            handles.append(_mean_line_handle())
        _legend_below(figure, handles)
        figure.suptitle(_with_instruments(data, title, figure.get_figwidth()))
        return save(figure, path)


def _frontier_points(cells: pd.DataFrame, capability: pd.DataFrame, asr: pd.DataFrame) -> pd.DataFrame:
    """One row per cell with finite capability and ASR: x/y and their interval bounds."""
    x, y = capability.loc[cells["cell_id"]], asr.loc[cells["cell_id"]]
    frame = pd.DataFrame({
        "seed": cells["seed"].astype(int).to_numpy(), "budget": cells["budget"].astype(float).to_numpy(),
        "x": x["value"].astype(float).to_numpy(), "x_low": x["ci_low"].astype(float).to_numpy(),
        "x_high": x["ci_high"].astype(float).to_numpy(), "y": y["value"].astype(float).to_numpy(),
        "y_low": y["ci_low"].astype(float).to_numpy(), "y_high": y["ci_high"].astype(float).to_numpy(),
    })
    return frame[np.isfinite(frame["x"]) & np.isfinite(frame["y"])]


def _frontier_base(axes, capability: pd.DataFrame, asr: pd.DataFrame) -> None:
    if BASE_CELL not in capability.index or BASE_CELL not in asr.index:
        return
    x, y = capability.loc[BASE_CELL], asr.loc[BASE_CELL]
    if not (is_number(x["value"]) and is_number(y["value"])):
        return
    axes.errorbar([x["value"]], [y["value"]], xerr=error_bars([x["value"]], [x["ci_low"]], [x["ci_high"]]),
                  yerr=error_bars([y["value"]], [y["ci_low"]], [y["ci_high"]]), color=BASE_COLOUR, marker="*",
                  markersize=15, capsize=3, elinewidth=1.0, linestyle="none", zorder=5)
    axes.annotate("base", (x["value"], y["value"]), textcoords="offset points", xytext=(7, -12), fontsize=8.5)


# -- per-attack heatmap ---------------------------------------------------------------------------
def plot_attack_heatmap(data: ReportData, out_dir: Path) -> Path:
    """ASR per cell (rows) and attack (columns), annotated with value, n and significance.

    A skipped attack is a grey hatched cell reading "skipped" (its column header says so when
    it was skipped everywhere); a figure absent from the store is a plain grey "-".
    """
    path = Path(out_dir) / "attack_heatmap.png"
    if reason := heatmap_missing(data):
        return placeholder(path, "Attack success rate per attack", reason)
    attacks, cells = data.attacks(), data.cells
    seeds = len(data.seeds())
    norm = Normalize(0.0, 1.0)
    width, height = 2.2 + 1.25 * len(attacks), 1.6 + 0.42 * len(cells)
    with new_figure(max(width, 6.0), max(height, 3.0)) as figure:
        axes = figure.add_subplot()
        axes.grid(False)
        headers = []
        for column, attack in enumerate(attacks):
            measure = Measure("jailbreak", "asr", attack)
            rows = data.rows(measure).set_index("cell_id")
            significant = _significant(data, measure)
            skipped_everywhere = (rows["status"] == "skipped").all() if not rows.empty else False
            headers.append(f"{attack}\n(skipped)" if skipped_everywhere else attack)
            for line, cell_id in enumerate(cells["cell_id"]):
                row = rows.loc[cell_id] if cell_id in rows.index else None
                _heatmap_cell(axes, column, line, row, cell_id in significant, norm)
        axes.set_xlim(-0.5, len(attacks) - 0.5)
        axes.set_ylim(len(cells) - 0.5, -0.5)
        axes.set_xticks(range(len(attacks)), headers)
        axes.xaxis.tick_top()
        axes.set_yticks(range(len(cells)), [cell_label(cell, seeds) for _, cell in cells.iterrows()])
        axes.tick_params(length=0)
        for spine in axes.spines.values():
            spine.set_visible(False)
        figure.colorbar(ScalarMappable(norm, HEATMAP_CMAP), ax=axes, label="attack success rate (ASR)", shrink=0.8)
        title = f"ASR per attack (cell: value, n; * Holm p < {SIGNIFICANCE} vs base; 95% CIs in the table)"
        figure.suptitle(_with_instruments(data, title, figure.get_figwidth()))
        return save(figure, path)


def _heatmap_cell(axes, column: int, line: int, row: pd.Series | None, significant: bool, norm: Normalize) -> None:
    """Draw one heatmap square: coloured figure, hatched 'skipped', or grey '-' when absent."""
    box = dict(xy=(column - 0.5, line - 0.5), width=1.0, height=1.0, linewidth=1.0, edgecolor="white")
    if row is not None and row["status"] == "skipped":
        axes.add_patch(Rectangle(**box, facecolor=SKIPPED_FACE, hatch="///"))
        axes.text(column, line, "skipped", ha="center", va="center", fontsize=7.5, color="#444444",
                  bbox=dict(facecolor=SKIPPED_FACE, edgecolor="none", pad=1.0))
        return
    if row is None or not is_number(row["value"]):
        axes.add_patch(Rectangle(**box, facecolor="#f0f0f0"))
        axes.text(column, line, "-", ha="center", va="center", fontsize=8, color="#777777")
        return
    value = float(row["value"])
    axes.add_patch(Rectangle(**box, facecolor=colormaps[HEATMAP_CMAP](norm(value))))
    label = f"{value:.2f}{' *' if significant else ''}\nn={as_int(row['n']) if is_number(row['n']) else '-'}"
    axes.text(column, line, label, ha="center", va="center", fontsize=7.5, color="white" if value > 0.6 else "black")


PLOTS = (
    Plot("frontier", "Safety-capability frontier",
         "Macro-averaged attack success rate (over the attacks; the no-attack condition is reported on its own, "
         "see the ASR definition below) against the primary capability figure. One line per objective "
         "through its budgets in budget order (point labels: budget); with several seeds each seed is its own "
         "point and the line joins the seed means. Error bars: 95% intervals. Star: the base model. The macro "
         "ASR's paired test against the base model (per forbidden prompt, the share of the macro's attacks that "
         "succeeded; sign-flip permutation test, Holm-adjusted over the attacks) is in the table below.",
         plot_frontier, frontier_measures, frontier_missing),
    Plot("asr_vs_budget", "Attack success rate vs budget",
         "Macro-averaged ASR (over the attacks, the no-attack condition not included) per cell against its "
         "token budget, one colour per objective, one marker per seed "
         "(points at one budget are spread slightly so their intervals stay visible). Error bars: 95% intervals. "
         "Grey band: the base model's value (dashed) and 95% interval.",
         plot_asr_vs_budget, lambda data: [MACRO_ASR], asr_missing),
    Plot("attack_heatmap", "Attack success rate per attack",
         "ASR of every cell under every attack with n; * marks a paired test against the base model (exact "
         "McNemar on the same prompts) with Holm-adjusted p < 0.05. Hatched grey: the attack was skipped "
         "(see the notes). The table gives every figure's 95% interval.",
         plot_attack_heatmap, attack_measures, heatmap_missing),
    Plot("persona_vs_budget", "Persona drift: P(match) vs budget",
         "Probability mass on the trait-matching answer, averaged over items, per trait against the budget. "
         "Error bars: 95% intervals; grey band: the base model. A ring marks a paired test against the base model "
         "on the same items with Holm-adjusted p < 0.05.",
         plot_persona_vs_budget, trait_measures, persona_missing),
    Plot("capability_vs_budget", "Capability vs budget",
         "Every capability figure against the budget, one panel each. Error bars: 95% intervals; grey band: "
         "the base model; a ring marks a paired test against the base model with Holm-adjusted p < 0.05.",
         plot_capability_vs_budget, capability_measures, capability_missing),
)

OVERREFUSAL_PLOT = Plot("asr_vs_overrefusal", "Attack success vs over-refusal",
                          "Macro-averaged attack success rate against the share of safe prompts refused (over-refusal: safe "
                          "prompts that sound unsafe, eval.overrefusal), one line per objective through its budgets (labels). "
                          "An objective that lowers ASR only by refusing more moves down and to the right; one that is safer "
                          "without refusing more moves straight down. Error bars: 95% intervals; star: the base model.",
                          plot_overrefusal_frontier, lambda data: [m for m in (OVERREFUSAL, MACRO_ASR)], overrefusal_missing)

TOXICITY_PLOT = Plot("toxicity_vs_budget", "Toxicity of generations vs budget",
                     "The share of the model's own generations on ToxiGen's prompts that the toxicity scorer (ToxiGen's "
                     "RoBERTa classifier by default, eval.toxicity) finds toxic, against the budget: over all prompts, and per "
                     "prompt label (hateful or neutral prompts) where both were given. Error bars: 95% Wilson intervals; grey "
                     "band: the base model; a ring marks a paired test against the base model on the same prompts (exact "
                     "McNemar) with Holm-adjusted p < 0.05. Per target group in the table.",
                     plot_toxicity_vs_budget, toxicity_measures, toxicity_missing)

LM_EVAL_PLOT = Plot("lm_eval_vs_budget", "lm-evaluation-harness tasks vs budget",
                    "Every figure of the lm-eval tasks and groups the run asked for (panel title: lm-eval's metric,filter key "
                    "and the task; a group's subtasks are in the store and its export), one panel each, against the budget. "
                    "Error bars: 95% intervals (value ± 1.96 lm-eval standard errors where lm-eval gives one); grey band: the "
                    "base model; a ring marks a paired test against the base model on the same documents with Holm-adjusted "
                    "p < 0.05.",
                    plot_lm_eval_vs_budget, lm_eval_measures, lm_eval_missing)


def plots_for(data: ReportData) -> tuple[Plot, ...]:
    """The report's plots for this run: ``PLOTS``, the over-refusal frontier beside the capability
    frontier, toxicity vs budget and lm-eval's panels when the run configured those axes or its
    store holds their figures (a run without them gets no empty panel)."""
    evaluation = data.config.get("eval") or {}
    overrefusal = (OVERREFUSAL_PLOT,) if evaluation.get("overrefusal") or drawable(data, OVERREFUSAL) else ()
    toxicity = (TOXICITY_PLOT,) if evaluation.get("toxicity") or drawable(data, TOXICITY) else ()
    lm_eval = (LM_EVAL_PLOT,) if evaluation.get("lm_eval") or data.lm_eval_measures() else ()
    return (PLOTS[0], *overrefusal, *PLOTS[1:], *toxicity, *lm_eval)


def draw_all(data: ReportData, out_dir: Path) -> dict[str, Path]:
    """Every plot of ``plots_for(data)`` saved under ``out_dir``; returns name -> PNG path."""
    return {plot.name: plot.draw(data, Path(out_dir)) for plot in plots_for(data)}
