"""The plots' shared look: one colour per objective, one marker per seed, budget axes, bands.

Colours are fixed per known objective (not assigned by position), so SFT is the same blue in
every plot of every run and two reports can be compared side by side. Figures are built with
``matplotlib.figure.Figure`` on the Agg canvas, never through pyplot: no global backend is
switched in the caller's process and nothing is left open.
"""

from __future__ import annotations

import math
import textwrap
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from objlab.report.data import format_budget

OBJECTIVE_COLOURS = {
    "sft": "#1f77b4", "dpo": "#d62728", "orpo": "#2ca02c", "kl": "#9467bd",
    "cft": "#8c564b", "ip": "#ff7f0e", "aware": "#17becf",
}
EXTRA_COLOURS = ["#e377c2", "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39"]
SEED_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
BASE_COLOUR = "#222222"
BAND_COLOUR = "#9e9e9e"
DPI = 110
RC = {
    "text.parse_math": False,  # labels come from data: a '$' must not start mathtext
    "font.size": 9.5, "axes.titlesize": 11, "axes.labelsize": 9.5, "legend.fontsize": 8.5,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.color": "#e6e6e6", "grid.linewidth": 0.8, "axes.axisbelow": True,
}


def objective_colours(objectives: list[str]) -> dict[str, str]:
    """Known objectives keep their colour; others take the extra colours in order."""
    extras = iter(EXTRA_COLOURS * (1 + len(objectives) // len(EXTRA_COLOURS)))
    return {name: OBJECTIVE_COLOURS.get(name) or next(extras) for name in objectives}


def seed_markers(seeds: list[int]) -> dict[int, str]:
    return {seed: SEED_MARKERS[index % len(SEED_MARKERS)] for index, seed in enumerate(seeds)}


@contextmanager
def new_figure(width: float, height: float):
    """A detached Agg figure under the report's style."""
    with matplotlib.rc_context(RC):
        figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
        FigureCanvasAgg(figure)
        yield figure


def save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(RC):
        figure.savefig(path, dpi=DPI, facecolor="white")
    return path


def placeholder(path: Path, title: str, message: str) -> Path:
    """A small figure that says why there is nothing to plot (the report never lacks a figure)."""
    with new_figure(6.5, 2.2) as figure:
        axes = figure.add_subplot()
        axes.axis("off")
        axes.set_title(title)
        axes.text(0.5, 0.5, textwrap.fill(message, 80), ha="center", va="center", color="#555555", transform=axes.transAxes)
        return save(figure, path)


def dodge_factors(budgets: list[float], slots: int) -> list[float]:
    """Multiplicative x offsets for ``slots`` series at the same budget on a log axis.

    Series sharing a budget are spread over a quarter of the smallest gap between budgets, so
    their intervals do not hide each other and never cross into the next budget.
    """
    if slots <= 1:
        return [1.0] * max(slots, 1)
    logs = sorted({math.log10(b) for b in budgets if b and b > 0})
    gap = min((b - a for a, b in zip(logs, logs[1:])), default=0.4)
    span = 0.25 * gap
    return [10 ** (span * (index / (slots - 1) - 0.5)) for index in range(slots)]


def budget_axis(axes, budgets: list[float], label: str = "token budget (log scale)") -> None:
    """Log x axis with a tick (25k, 100k, ...) at every budget of the grid."""
    budgets = sorted({b for b in budgets if b and b > 0})
    axes.set_xscale("log")
    axes.set_xlabel(label)
    if budgets:
        axes.set_xticks(budgets, [format_budget(b) for b in budgets])
        axes.minorticks_off()
        axes.set_xlim(budgets[0] / 1.6, budgets[-1] * 1.6)


def base_band(axes, value: float, low: float, high: float) -> None:
    """The base model as a horizontal reference: its value (dashed) and 95% interval (band)."""
    if not np.isfinite(value):
        return
    if np.isfinite(low) and np.isfinite(high):
        axes.axhspan(low, high, color=BAND_COLOUR, alpha=0.22, linewidth=0, zorder=0)
    axes.axhline(value, color=BASE_COLOUR, linestyle="--", linewidth=1.0, zorder=1)


def error_bars(values, lows, highs) -> np.ndarray:
    """Asymmetric error bar lengths; missing bounds draw no bar."""
    values, lows, highs = (np.asarray(x, dtype=float) for x in (values, lows, highs))
    below = np.where(np.isfinite(lows), values - lows, 0.0)
    above = np.where(np.isfinite(highs), highs - values, 0.0)
    return np.vstack([np.clip(below, 0, None), np.clip(above, 0, None)])


def legend_handles(colours: dict[str, str], markers: dict[int, str], base: bool = True, significance: bool = False) -> list:
    """Objectives by colour, seeds by marker (only when there are several), base, significance."""
    handles = [Line2D([], [], color=colour, marker="o", label=name) for name, colour in colours.items()]
    if len(markers) > 1:
        handles += [Line2D([], [], color="#777777", marker=m, linestyle="none", label=f"seed {s}") for s, m in markers.items()]
    if base:
        handles.append(Patch(facecolor=BAND_COLOUR, alpha=0.35, edgecolor=BASE_COLOUR, linestyle="--", label="base model (95% CI)"))
    if significance:
        handles.append(Line2D([], [], marker="o", markersize=11, markerfacecolor="none", markeredgecolor="black",
                              linestyle="none", label="differs from base (Holm p < 0.05)"))
    return handles


def short(text: str, width: int = 90) -> str:
    return textwrap.shorten(text, width, placeholder="...") if text else ""
