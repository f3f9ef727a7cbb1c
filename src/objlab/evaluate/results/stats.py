"""The statistics behind every reported number: a value, its n, an interval and the method.

Pure functions: arrays in, frozen records out, deterministic under ``seed``. An empty input
(n = 0) never raises: it returns NaN numbers and a ``method`` that says "no items", so an
evaluation with nothing to score for a group still produces a row that says so. Malformed
input (non-finite scores, mismatched pairs, successes > n) raises ``ValueError``.

Well-kept libraries do the standard parts: statsmodels the Wilson interval, Holm's adjustment
and the exact McNemar test; ``scipy.stats.bootstrap`` the BCa/percentile intervals and scipy
the paired t, Wilcoxon and permutation tests. Written here only what no library offers:
Newcombe's square-and-add interval for a paired difference of proportions
(``_newcombe_paired``), the Wilson interval on Kish's effective n for a macro-averaged
proportion (``_macro_proportion``), and the within-group (stratified) bootstrap of a macro mean.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy import stats

# scipy >= 1.15 takes `rng=`; the project allows scipy >= 1.11, where only `random_state=` exists.
_RNG_KEYWORD = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
# Cap on resampled values held at once (the resample array is resamples x n floats).
_BATCH_VALUES = 4_000_000
_TEST_NAMES = {"t": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test",
               "permutation": "sign-flip permutation test"}
NAN = math.nan


@dataclass(frozen=True)
class Estimate:
    """A value with its n and interval; ``method`` names how the interval was computed."""
    value: float
    n: int
    ci_low: float
    ci_high: float
    method: str


@dataclass(frozen=True)
class PairedTest:
    """Cell minus base on the same items: mean difference, its interval and a p-value."""
    mean_difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    method: str


def _level(confidence: float) -> str:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return f"{confidence * 100:g}%"


def _as_values(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values; score or drop them first")
    return array


def _as_outcomes(values: Sequence[bool], name: str) -> np.ndarray:
    array = _as_values(values, name)
    if not np.all((array == 0) | (array == 1)):
        raise ValueError(f"{name} must hold booleans or 0/1, got other values")
    return array.astype(bool)


def _resample_interval(samples: list[np.ndarray], statistic: Callable, confidence: float,
                       resamples: int, seed: int) -> tuple[float, float, str]:
    """Bootstrap interval of ``statistic(*samples)``, each sample resampled on its own.

    BCa first: it corrects the percentile interval for bias and skew, which matters for
    bounded, skewed scores such as attack success near 0. Where BCa is undefined (no spread in
    the jackknife: scipy returns NaN) the percentile interval is used and the method says so.
    """
    label = f"{_level(confidence)} ({resamples} resamples)"
    batch = max(1, _BATCH_VALUES // max(sample.size for sample in samples))

    def interval(how: str) -> tuple[float, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns when BCa is degenerate; checked below
            result = stats.bootstrap(
                samples, statistic, n_resamples=resamples, confidence_level=confidence,
                method=how, vectorized=True, axis=-1, batch=batch,
                **{_RNG_KEYWORD: np.random.default_rng(seed)})
        return float(result.confidence_interval.low), float(result.confidence_interval.high)

    low, high = interval("BCa")
    if math.isfinite(low) and math.isfinite(high):
        return low, high, f"bootstrap BCa {label}"
    return (*interval("percentile"), f"bootstrap percentile {label}; BCa undefined")


def _mean_of_means(groups: list[np.ndarray], label: str, confidence: float, resamples: int,
                   seed: int) -> Estimate:
    """Mean of group means with a bootstrap interval that resamples within each group.

    A group whose values are all equal (one item included) is the same in every resample, so
    it enters the statistic as a constant; with no group varying, the (percentile) interval is
    the point itself. Fewer than two items in all: nothing to resample, the interval is NaN.
    """
    total = sum(group.size for group in groups)
    if total < 2:
        why = "no items" if total == 0 else "one item, no interval"
        value = float(groups[0][0]) if total else NAN
        return Estimate(value, total, NAN, NAN, f"{label}bootstrap {_level(confidence)}; {why}")
    varying = [group for group in groups if np.ptp(group) > 0]
    fixed_total = sum(float(group[0]) for group in groups if np.ptp(group) == 0)
    value = float(fixed_total + sum(group.mean() for group in varying)) / len(groups)

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return (fixed_total + sum(sample.mean(axis=axis) for sample in samples)) / len(groups)

    if not varying:
        return Estimate(value, total, value, value, f"{label}bootstrap percentile "
                        f"{_level(confidence)} ({resamples} resamples); BCa undefined: all "
                        "values equal, the interval is the point")
    low, high, how = _resample_interval(varying, statistic, confidence, resamples, seed)
    return Estimate(value, total, low, high, label + how)


def wilson(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """Proportion ``successes / n`` with its Wilson score interval.

    Wilson rather than Wald: Wald collapses to a zero-width interval at 0/n and n/n and
    under-covers near the bounds, exactly where attack success rates live. Wilson keeps
    near-nominal coverage for small n and stays inside [0, 1] (Newcombe 1998, Stat Med 17:857).
    """
    method = f"Wilson {_level(confidence)}"
    if int(successes) != successes or int(n) != n:
        raise ValueError(f"wilson needs integer counts, got successes={successes}, n={n}")
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson needs 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return Estimate(NAN, 0, NAN, NAN, f"{method}; no items")
    low, high = _wilson_bounds(successes / n, n, confidence)
    return Estimate(successes / n, int(n), low, high, method)


def _wilson_bounds(rate: float, n: float, confidence: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``rate`` observed on ``n`` (possibly effective,
    non-integer) items, from statsmodels' ``proportion_confint``."""
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(rate * n, n, alpha=1 - confidence, method="wilson")
    low = 0.0 if rate == 0 else max(0.0, float(low))  # exact bounds, not 1e-18 from rounding
    high = 1.0 if rate == 1 else min(1.0, float(high))
    return low, high


def bootstrap_mean(values: Sequence[float], confidence: float = 0.95, resamples: int = 10_000,
                   seed: int = 0) -> Estimate:
    """Mean with a bootstrap interval (BCa, percentile where BCa is undefined).

    The bootstrap makes no normality assumption, which suits bounded per-item scores such
    as P(match) or rubric scores. One item has no spread to resample: its interval is NaN.
    """
    return _mean_of_means([_as_values(values, "values")], "", confidence, resamples, seed)


def macro_average(groups: Mapping[str, Sequence[float]], confidence: float = 0.95,
                  resamples: int = 10_000, seed: int = 0) -> Estimate:
    """Unweighted mean of per-group means (e.g. ASR macro-averaged over attacks).

    Every group counts equally whatever its size, so the figure answers "how does the model
    fare across attacks" rather than being dominated by the largest group. The interval is a
    stratified bootstrap: each group is resampled within itself, keeping group sizes fixed as
    they were by design. Groups with no items have no mean; they are left out and named in
    ``method``. ``n`` is the total number of items.
    """
    arrays = {name: _as_values(values, f"group {name!r}") for name, values in groups.items()}
    filled = [array for array in arrays.values() if array.size]
    empty = ", ".join(name for name, array in arrays.items() if not array.size)
    label = f"macro-average of {len(filled)} group means; "
    if filled and all(np.isin(array, (0.0, 1.0)).all() for array in filled):
        estimate = _macro_proportion(filled, label, confidence)
    else:
        estimate = _mean_of_means(filled, label + "stratified ", confidence, resamples, seed)
    if empty:
        estimate = replace(estimate, method=f"{estimate.method}; left out, no items: {empty}")
    return estimate


def _macro_proportion(groups: list[np.ndarray], label: str, confidence: float) -> Estimate:
    """Macro-average of per-group proportions with a Wilson interval on Kish's effective n.

    A bootstrap collapses to the point when every group is all 0 (or all 1), which is exactly
    where attack success rates live (0 of 120 is not certainty of 0). Each item carries weight
    1 / (groups x its group's size); Kish's effective sample size (sum w)^2 / sum w^2 equals
    the item count when groups are the same size (the macro-average is then the pooled
    proportion and this is its Wilson interval) and shrinks as sizes diverge. A design-effect
    adjusted Wilson interval of this kind is standard for stratified proportions (Kott & Liu
    2009, J Surv Stat Methodol; Korn & Graubard 1998).
    """
    k = len(groups)
    value = float(sum(group.mean() for group in groups)) / k
    effective_n = 1.0 / sum(1.0 / (k * k * group.size) for group in groups)
    low, high = _wilson_bounds(value, effective_n, confidence)
    total = sum(group.size for group in groups)
    return Estimate(value, total, low, high, f"{label}Wilson {_level(confidence)} on Kish effective n {effective_n:.1f}")


def _paired_p_value(cell: np.ndarray, base: np.ndarray, test: str, resamples: int,
                    seed: int) -> tuple[float, str]:
    """Two-sided p-value of the chosen test on paired differences, and the test's name.

    All differences zero means no evidence of any difference: p = 1 by definition. scipy
    would return NaN here (t: 0/0; Wilcoxon drops zero differences and has nothing left).
    A constant non-zero difference has zero variance: the t statistic is infinite and
    scipy's p = 0 is kept.
    """
    name, differences = _TEST_NAMES[test], cell - base
    if differences.size == 0 or not np.any(differences):
        return (NAN if differences.size == 0 else 1.0), name
    if test == "t":
        return (NAN if differences.size < 2 else float(stats.ttest_rel(cell, base).pvalue)), name
    if test == "wilcoxon":
        return float(stats.wilcoxon(cell, base).pvalue), name
    # Sign flips: under H0 each item's difference is as likely positive as negative.
    # scipy enumerates all 2**n flips (an exact test) when that is no more than `resamples`.
    exact = 2 ** differences.size <= resamples
    result = stats.permutation_test(
        (differences,), lambda sample, axis: sample.mean(axis=axis), vectorized=True,
        permutation_type="samples", n_resamples=resamples,
        **{_RNG_KEYWORD: np.random.default_rng(seed)})
    return float(result.pvalue), f"{name} ({'exact' if exact else f'{resamples} resamples'})"


def paired_difference(cell: Sequence[float], base: Sequence[float],
                      test: Literal["t", "wilcoxon", "permutation"] = "t",
                      confidence: float = 0.95, resamples: int = 10_000,
                      seed: int = 0) -> PairedTest:
    """Mean of per-item differences cell - base on the same items, with a test against 0.

    Pairing removes the between-item variance (some persona statements are endorsed by every
    model), so it detects a shift that two independent intervals would hide. The t-test is the
    default; Wilcoxon and sign-flip permutation make no normality assumption. The interval is
    a bootstrap of the mean difference whatever the test, so it never depends on normality.
    """
    cell_values, base_values = _as_values(cell, "cell"), _as_values(base, "base")
    if cell_values.size != base_values.size:
        raise ValueError(f"paired_difference needs one base value per cell value, got "
                         f"{cell_values.size} cell and {base_values.size} base values")
    if test not in _TEST_NAMES:
        raise ValueError(f"unknown test {test!r}; choose one of {sorted(_TEST_NAMES)}")
    p_value, test_name = _paired_p_value(cell_values, base_values, test, resamples, seed)
    interval = bootstrap_mean(cell_values - base_values, confidence, resamples, seed)
    return PairedTest(interval.value, interval.ci_low, interval.ci_high, p_value, interval.n,
                      f"{test_name}; CI of mean difference: {interval.method}")


def _newcombe_paired(both: int, cell_only: int, base_only: int, neither: int,
                     confidence: float) -> tuple[float, float]:
    """Newcombe's square-and-add interval for a paired difference of proportions.

    Method 10 of Newcombe (1998, Stat Med 17:2635), as given by Fagerland, Lydersen & Laake
    (2017, ch. 8): the two Wilson intervals combined through phi, the correlation of the paired
    outcomes with Newcombe's continuity adjustment (phi = 0 where a margin is empty).
    """
    n = both + cell_only + base_only + neither
    cell_rate = wilson(both + cell_only, n, confidence)
    base_rate = wilson(both + base_only, n, confidence)
    rows = (both + cell_only) * (base_only + neither)
    columns = (both + base_only) * (cell_only + neither)
    cross = both * neither - cell_only * base_only
    adjusted = cross - n / 2 if cross > n / 2 else min(cross, 0)  # 0 where 0 <= cross <= n/2
    phi = adjusted / math.sqrt(rows * columns) if rows * columns else 0.0
    below_1, above_1 = cell_rate.value - cell_rate.ci_low, cell_rate.ci_high - cell_rate.value
    below_2, above_2 = base_rate.value - base_rate.ci_low, base_rate.ci_high - base_rate.value
    difference = cell_rate.value - base_rate.value
    return (difference - math.sqrt(below_1**2 - 2 * phi * below_1 * above_2 + above_2**2),
            difference + math.sqrt(below_2**2 - 2 * phi * below_2 * above_1 + above_1**2))


def _exact_mcnemar_p(both: int, cell_only: int, base_only: int, neither: int) -> float:
    """statsmodels' exact McNemar test on the 2x2 table of paired outcomes."""
    from statsmodels.stats.contingency_tables import mcnemar as mcnemar_test

    return float(mcnemar_test([[both, cell_only], [base_only, neither]], exact=True).pvalue)


def mcnemar(cell: Sequence[bool], base: Sequence[bool], confidence: float = 0.95) -> PairedTest:
    """Exact McNemar test for paired binary outcomes, with Newcombe's interval.

    Only discordant pairs carry information on a change; under H0 each is equally likely to
    go either way, so the exact test is a two-sided binomial test (p = 1/2) on them: valid for
    the few discordant pairs a jailbreak comparison often has, where the chi-square form is not.
    No discordant pairs: p = 1. The interval for rate(cell) - rate(base) is Newcombe's paired
    square-and-add (``_newcombe_paired``): good coverage at small n and rates near 0 or 1,
    deterministic, and cheap enough for every cell of a grid.
    """
    cell_outcomes, base_outcomes = _as_outcomes(cell, "cell"), _as_outcomes(base, "base")
    if cell_outcomes.size != base_outcomes.size:
        raise ValueError(f"mcnemar needs one base outcome per cell outcome, got "
                         f"{cell_outcomes.size} cell and {base_outcomes.size} base outcomes")
    n = int(cell_outcomes.size)
    interval_name = f"Newcombe square-and-add {_level(confidence)} CI of paired difference"
    if n == 0:
        return PairedTest(NAN, NAN, NAN, NAN, 0, f"exact McNemar; {interval_name}; no items")
    both = int(np.sum(cell_outcomes & base_outcomes))
    cell_only = int(np.sum(cell_outcomes & ~base_outcomes))
    base_only = int(np.sum(~cell_outcomes & base_outcomes))
    discordant = cell_only + base_only
    p_value = 1.0 if discordant == 0 else _exact_mcnemar_p(both, cell_only, base_only, n - both - discordant)
    low, high = _newcombe_paired(both, cell_only, base_only, n - both - discordant, confidence)
    test_name = f"exact McNemar (two-sided binomial on {cell_only} vs {base_only} discordant pairs)"
    return PairedTest((cell_only - base_only) / n, low, high, p_value, n,
                      f"{test_name}; {interval_name}")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in input order.

    Holm controls the family-wise error rate under any dependence between tests (cells share
    a base model, so tests are dependent) and is uniformly more powerful than Bonferroni.
    NaN p-values (tests that could not run, e.g. no items) stay NaN and do not count as tests.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"holm needs a flat sequence of p-values, got shape {p.shape}")
    tested = np.flatnonzero(~np.isnan(p))
    if np.any((p[tested] < 0) | (p[tested] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    adjusted = np.full(p.shape, NAN)
    if tested.size:
        from statsmodels.stats.multitest import multipletests

        adjusted[tested] = multipletests(p[tested], method="holm")[1]
    return adjusted.tolist()
