"""Agreement between two binary scorers on the same items (judge vs refusal classifier).

Raw agreement is easy to read but high whenever both scorers say "refused" to nearly every item;
Cohen's kappa discounts the agreement expected by chance from each scorer's base rate. Both
are reported. Kappa's interval is a percentile bootstrap over items (seeded); kappa is
undefined (NaN) when both scorers give one and the same label to every item (chance agreement
is then 1), and the method says so.
"""

from __future__ import annotations

import math

import numpy as np

from objlab.evaluate.results.stats import Estimate, wilson

KAPPA_RESAMPLES = 2000


def cohen_kappa(first: np.ndarray, second: np.ndarray) -> float:
    """Cohen's kappa of two boolean label arrays; NaN when chance agreement is 1."""
    observed = float(np.mean(first == second))
    rate_first, rate_second = float(np.mean(first)), float(np.mean(second))
    expected = rate_first * rate_second + (1 - rate_first) * (1 - rate_second)
    return math.nan if expected >= 1.0 else (observed - expected) / (1 - expected)


def percent_agreement(first: list[bool], second: list[bool]) -> Estimate:
    """Share of items on which both scorers give the same label, with a Wilson interval."""
    agree = sum(a == b for a, b in zip(first, second))
    return wilson(agree, len(first))


def kappa_estimate(first: list[bool], second: list[bool], seed: int = 0) -> Estimate:
    """Cohen's kappa with a 95% percentile bootstrap interval over items."""
    a, b = np.asarray(first, dtype=bool), np.asarray(second, dtype=bool)
    if a.size == 0:
        return Estimate(math.nan, 0, math.nan, math.nan, "Cohen's kappa; no items")
    value = cohen_kappa(a, b)
    if math.isnan(value):
        return Estimate(value, int(a.size), math.nan, math.nan, "Cohen's kappa; undefined: both scorers gave every item one label")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, a.size, size=(KAPPA_RESAMPLES, a.size))
    resampled = np.array([cohen_kappa(a[row], b[row]) for row in draws])
    resampled = resampled[~np.isnan(resampled)]
    if resampled.size == 0:
        return Estimate(value, int(a.size), math.nan, math.nan, "Cohen's kappa; bootstrap interval undefined")
    low, high = np.percentile(resampled, [2.5, 97.5])
    method = f"Cohen's kappa; bootstrap percentile 95% ({KAPPA_RESAMPLES} resamples, {resampled.size} defined)"
    return Estimate(value, int(a.size), float(low), float(high), method)
