"""Statistics checked against independent values: published tables, closed forms, scipy."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from objlab.evaluate.results.stats import (
    Estimate,
    PairedTest,
    bootstrap_mean,
    holm,
    macro_average,
    mcnemar,
    paired_difference,
    wilson,
)

FAST = 2_000  # resamples in tests: enough for the tolerances used, keeps the file fast


# --- wilson -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),  # Newcombe (1998) Stat Med 17:857, Table I
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (5, 10, 0.2366, 0.7634),  # closed form: 0.5 -+ 1.96 sqrt(0.025 + 1.96^2/400) / 1.38416
        (10, 10, 0.7225, 1.0),  # closed form: 1 / (1 + 1.96^2 / 10)
    ],
)
def test_wilson_matches_published_values(successes, n, low, high):
    estimate = wilson(successes, n)
    assert estimate == Estimate(successes / n, n, estimate.ci_low, estimate.ci_high, "Wilson 95%")
    assert estimate.ci_low == pytest.approx(low, abs=5e-5)
    assert estimate.ci_high == pytest.approx(high, abs=5e-5)


def test_wilson_other_confidence_is_named():
    narrow, wide = wilson(30, 100, confidence=0.9), wilson(30, 100)
    assert narrow.method == "Wilson 90%"
    assert wide.ci_low < narrow.ci_low < 0.3 < narrow.ci_high < wide.ci_high


@pytest.mark.parametrize(("successes", "n"), [(-1, 10), (11, 10), (0, -1), (1.5, 10)])
def test_wilson_rejects_impossible_counts(successes, n):
    with pytest.raises(ValueError, match="successes"):
        wilson(successes, n)


def test_wilson_with_no_items_is_nan_and_says_so():
    estimate = wilson(0, 0)
    assert estimate.n == 0 and "no items" in estimate.method
    assert all(math.isnan(x) for x in (estimate.value, estimate.ci_low, estimate.ci_high))


# --- bootstrap_mean -----------------------------------------------------------------------


def test_bootstrap_mean_agrees_with_t_interval_on_large_normal_sample():
    values = np.random.default_rng(1).normal(0.3, 1.0, size=2_000)
    estimate = bootstrap_mean(values, resamples=4_000)
    t_low, t_high = scipy_stats.t.interval(
        0.95, df=values.size - 1, loc=values.mean(), scale=scipy_stats.sem(values))
    assert estimate.value == pytest.approx(values.mean())
    assert estimate.n == 2_000
    assert estimate.ci_low == pytest.approx(t_low, abs=4e-3)
    assert estimate.ci_high == pytest.approx(t_high, abs=4e-3)
    assert estimate.method == "bootstrap BCa 95% (4000 resamples)"


def test_bootstrap_mean_is_deterministic_under_seed():
    values = np.random.default_rng(2).uniform(size=50)
    first, again = bootstrap_mean(values, resamples=FAST, seed=7), bootstrap_mean(
        values, resamples=FAST, seed=7)
    other = bootstrap_mean(values, resamples=FAST, seed=8)
    assert first == again
    assert (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)


def test_bootstrap_mean_of_constant_values_is_a_degenerate_interval():
    estimate = bootstrap_mean([0.7] * 12, resamples=FAST)
    assert (estimate.value, estimate.ci_low, estimate.ci_high) == (0.7, 0.7, 0.7)
    assert "percentile" in estimate.method and "all values equal" in estimate.method


def test_bootstrap_mean_of_rare_binary_outcomes_stays_in_bounds():
    estimate = bootstrap_mean([1.0] + [0.0] * 39, resamples=FAST)
    assert 0.0 <= estimate.ci_low <= estimate.value <= estimate.ci_high <= 1.0
    assert estimate.ci_high > estimate.ci_low


def test_bootstrap_mean_of_nothing_or_one_item_has_no_interval():
    empty, single = bootstrap_mean([]), bootstrap_mean([0.4])
    assert empty.n == 0 and math.isnan(empty.value) and "no items" in empty.method
    assert single.n == 1 and single.value == 0.4 and "one item" in single.method
    for estimate in (empty, single):
        assert math.isnan(estimate.ci_low) and math.isnan(estimate.ci_high)


def test_bootstrap_mean_rejects_non_finite_scores():
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_mean([0.1, float("nan")])


# --- macro_average ------------------------------------------------------------------------


def test_macro_average_is_the_mean_of_group_means_not_the_pooled_mean():
    groups = {"dan": [1.0, 1.0, 1.0, 0.0], "roleplay": [0.0] * 9 + [1.0]}  # 0.75 and 0.10
    estimate = macro_average(groups, resamples=FAST)
    assert estimate.value == pytest.approx(0.425)  # pooled would be 4/14 = 0.2857
    assert estimate.n == 14
    assert estimate.ci_low < 0.425 < estimate.ci_high
    assert estimate.method.startswith("macro-average of 2 group means; Wilson 95% on Kish effective n")


def test_macro_average_of_proportions_never_collapses_at_zero():
    # Five attacks, 0 of 24 each: the interval is Wilson's for 0 of 120 (equal sizes: pooled).
    estimate = macro_average({f"attack{i}": [0.0] * 24 for i in range(5)})
    assert (estimate.value, estimate.n, estimate.ci_low) == (0.0, 120, 0.0)
    assert estimate.ci_high == pytest.approx(wilson(0, 120).ci_high) and estimate.ci_high > 0.03


def test_macro_average_of_proportions_uses_kish_effective_n():
    # Groups of 4 and 10: weights 1/8 and 1/20, n_eff = 1 / (4/64 + 10/400) = 11.43; the
    # Wilson interval of 0.425 on that n, computed by hand.
    estimate = macro_average({"dan": [1.0, 1.0, 1.0, 0.0], "roleplay": [0.0] * 9 + [1.0]})
    n_eff, z, p = 1 / (4 / 64 + 10 / 400), 1.959963984540054, 0.425
    centre = (p + z * z / (2 * n_eff)) / (1 + z * z / n_eff)
    half = z * math.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff**2)) / (1 + z * z / n_eff)
    assert (estimate.ci_low, estimate.ci_high) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert "11.4" in estimate.method


def test_macro_average_interval_matches_stratified_normal_approximation():
    rng = np.random.default_rng(3)
    small, large = rng.normal(0, 1, size=400), rng.normal(0, 3, size=1_600)
    estimate = macro_average({"small": small, "large": large}, resamples=4_000)
    # Resampling within groups: Var = (s1^2 / n1 + s2^2 / n2) / k^2.
    standard_error = math.sqrt(small.var() / 400 + large.var() / 1_600) / 2
    half_width = 1.959964 * standard_error
    assert estimate.ci_high - estimate.value == pytest.approx(half_width, abs=0.01)
    assert estimate.value - estimate.ci_low == pytest.approx(half_width, abs=0.01)


def test_macro_average_leaves_out_and_names_empty_groups():
    estimate = macro_average({"none": [0.0, 1.0, 1.0], "translation": []}, resamples=FAST)
    assert estimate.value == pytest.approx(2 / 3) and estimate.n == 3
    assert "translation" in estimate.method


def test_macro_average_of_no_items_is_nan():
    for groups in ({}, {"translation": []}):
        estimate = macro_average(groups)
        assert estimate.n == 0 and math.isnan(estimate.value) and "no items" in estimate.method


# --- paired_difference --------------------------------------------------------------------


def test_paired_t_p_value_equals_scipy_ttest_rel():
    rng = np.random.default_rng(4)
    base = rng.uniform(size=60)
    cell = np.clip(base + rng.normal(0.05, 0.1, size=60), 0, 1)
    result = paired_difference(cell, base, resamples=FAST)
    assert isinstance(result, PairedTest)
    assert result.p_value == pytest.approx(scipy_stats.ttest_rel(cell, base).pvalue, rel=1e-12)
    assert result.mean_difference == pytest.approx(np.mean(cell - base))
    assert result.ci_low < result.mean_difference < result.ci_high
    assert result.n == 60 and result.method.startswith("paired t-test; CI of mean difference")


def test_paired_t_hand_computed_example():
    # differences 0.1, 0.2, 0.2, 0.3: mean 0.2, sd sqrt(0.02 / 3), t = 0.2 / (sd / 2) = sqrt(24)
    result = paired_difference([0.6, 0.7, 0.8, 0.9], [0.5, 0.5, 0.6, 0.6], resamples=FAST)
    t, df = math.sqrt(24), 3
    # closed-form Student t CDF for 3 degrees of freedom
    x = t / math.sqrt(df)
    cdf = 0.5 + (x / (1 + x * x) + math.atan(x)) / math.pi
    assert result.mean_difference == pytest.approx(0.2)
    assert result.p_value == pytest.approx(2 * (1 - cdf), rel=1e-9)  # 0.01628


@pytest.mark.parametrize("test", ["wilcoxon", "permutation"])
def test_exact_rank_and_sign_flip_tests_on_all_positive_differences(test):
    # Five positive differences: only "all +" and "all -" of 2^5 sign patterns are as extreme.
    result = paired_difference([1.1, 2.2, 3.3, 4.4, 5.5], [1, 2, 3, 4, 5], test=test,
                               resamples=FAST)
    assert result.p_value == pytest.approx(2 / 32)
    assert result.mean_difference == pytest.approx(0.3)


def test_permutation_test_is_deterministic_under_seed():
    rng = np.random.default_rng(5)
    base = rng.uniform(size=40)
    cell = base + rng.normal(0.02, 0.1, size=40)
    first = paired_difference(cell, base, test="permutation", resamples=FAST, seed=3)
    assert first == paired_difference(cell, base, test="permutation", resamples=FAST, seed=3)
    assert "2000 resamples" in first.method


@pytest.mark.parametrize("test", ["t", "wilcoxon", "permutation"])
def test_identical_inputs_give_zero_difference_and_p_one(test):
    values = [0.2, 0.5, 0.9, 0.4]
    result = paired_difference(values, values, test=test, resamples=FAST)
    assert (result.mean_difference, result.ci_low, result.ci_high, result.p_value) == (
        0.0, 0.0, 0.0, 1.0)


def test_paired_difference_rejects_mismatched_lengths_and_unknown_tests():
    with pytest.raises(ValueError, match="one base value per cell value"):
        paired_difference([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="unknown test"):
        paired_difference([0.1], [0.2], test="z")


def test_paired_difference_of_no_items_is_nan():
    result = paired_difference([], [])
    assert result.n == 0 and "no items" in result.method
    assert all(math.isnan(x) for x in (result.mean_difference, result.ci_low, result.p_value))


# --- mcnemar ------------------------------------------------------------------------------


def _paired_outcomes(both, cell_only, base_only, neither):
    cell = [True] * both + [True] * cell_only + [False] * base_only + [False] * neither
    base = [True] * both + [False] * cell_only + [True] * base_only + [False] * neither
    return cell, base


def test_mcnemar_exact_hand_computed_example():
    cell, base = _paired_outcomes(both=5, cell_only=10, base_only=2, neither=13)
    result = mcnemar(cell, base)
    # P(X <= 2 | Bin(12, 1/2)) = (1 + 12 + 66) / 4096, doubled for two sides
    assert result.p_value == pytest.approx(2 * 79 / 4096)
    assert result.p_value == pytest.approx(0.03857, abs=5e-6)
    assert result.mean_difference == pytest.approx(8 / 30) and result.n == 30
    assert result.ci_low < result.mean_difference < result.ci_high


@pytest.mark.parametrize(("cell_only", "base_only"), [(3, 9), (7, 6), (0, 5), (40, 25)])
def test_mcnemar_agrees_with_scipy_binomtest(cell_only, base_only):
    result = mcnemar(*_paired_outcomes(20, cell_only, base_only, 30))
    expected = scipy_stats.binomtest(cell_only, cell_only + base_only, 0.5).pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-12)


def test_mcnemar_interval_matches_published_newcombe_example():
    # Cavo et al. (2012), Fagerland, Lydersen & Laake (2017) ch. 8: table [[59, 6], [16, 80]],
    # Newcombe square-and-add: -0.0621 (95% CI -0.1186 to -0.0046).
    result = mcnemar(*_paired_outcomes(both=59, cell_only=6, base_only=16, neither=80))
    assert result.mean_difference == pytest.approx(-0.0621, abs=5e-5)
    assert result.ci_low == pytest.approx(-0.1186, abs=5e-5)
    assert result.ci_high == pytest.approx(-0.0046, abs=5e-5)
    assert "Newcombe" in result.method


def test_mcnemar_without_discordant_pairs_has_p_one():
    result = mcnemar(*_paired_outcomes(both=4, cell_only=0, base_only=0, neither=6))
    assert result.p_value == 1.0 and result.mean_difference == 0.0
    assert result.ci_low < 0.0 < result.ci_high


def test_mcnemar_rejects_non_binary_and_mismatched_inputs_and_handles_empty():
    with pytest.raises(ValueError, match="booleans"):
        mcnemar([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="one base outcome"):
        mcnemar([True], [True, False])
    empty = mcnemar([], [])
    assert empty.n == 0 and math.isnan(empty.p_value) and "no items" in empty.method


# --- holm ---------------------------------------------------------------------------------


def test_holm_textbook_example():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_is_monotone_capped_and_skips_untested():
    adjusted = holm([0.9, 0.02, float("nan"), 0.5])
    assert adjusted[1] == pytest.approx(0.06)  # 3 tests run, not 4
    assert adjusted[3] == pytest.approx(1.0) and adjusted[0] == 1.0
    assert math.isnan(adjusted[2])
    assert holm([]) == []
    with pytest.raises(ValueError):
        holm([1.2])
