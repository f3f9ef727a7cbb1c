"""Paired tests between evaluations on the same items (evaluate/results/between.py), checked
against independent computations with scipy and statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests

from objlab.evaluate.results.between import between_cells, cell_tests, macro_per_prompt
from objlab.records.items import ItemRecord

ATTACKS = ["dan", "roleplay", "encyclopedia"]


def jailbreak_items(success: dict[str, list[int]], with_none: bool = True) -> list[ItemRecord]:
    """Items of one evaluation: per attack, one 0/1 outcome per prompt p0, p1, ..."""
    items = []
    for attack, outcomes in success.items():
        for index, outcome in enumerate(outcomes):
            items.append(ItemRecord("jailbreak", attack, f"p{index}", "q", "a", float(outcome), extra={"attack_success": bool(outcome)}))
    if with_none:  # the no-attack condition: always a success here, and never in the macro
        items += [ItemRecord("jailbreak", "none", f"p{i}", "q", "a", 1.0, extra={"attack_success": True}) for i in range(len(outcomes))]
    return items


def test_macro_per_prompt_averages_the_attacks_only_and_drops_incomplete_prompts():
    items = jailbreak_items({"dan": [1, 0, 1], "roleplay": [1, 0, 0], "encyclopedia": [0, 0, 1]})
    items.append(ItemRecord("jailbreak", "dan", "p9", "q", "a", 1.0, extra={"attack_success": True}))  # one attack only
    items = [item for item in items if (item.group, item.item_id) != ("roleplay", "p2")]
    items.append(ItemRecord("jailbreak", "roleplay", "p2", "q", "a", 0.0, extra={"attack_success": None}))  # an error item
    macro = macro_per_prompt(items, ATTACKS)
    assert macro == pytest.approx({"p0": 2 / 3, "p1": 0.0})  # p2 lost roleplay's outcome, p9 has one attack


def test_macro_test_against_an_exact_sign_flip_test():
    rng = np.random.default_rng(3)
    mine = {a: list(rng.integers(0, 2, 12)) for a in ATTACKS}
    theirs = {a: list((rng.random(12) < 0.2).astype(int)) for a in ATTACKS}
    rows = cell_tests(jailbreak_items(mine), jailbreak_items(theirs), ATTACKS, "a - b")
    macro = next(row for row in rows if row.metric == "asr_macro_diff")
    diffs = np.mean([mine[a] for a in ATTACKS], axis=0) - np.mean([theirs[a] for a in ATTACKS], axis=0)
    assert macro.test.mean_difference == pytest.approx(diffs.mean())
    # the exact two-sided sign-flip p-value over every sign pattern (2^12) of the non-zero differences
    nonzero = diffs[diffs != 0]
    signs = np.array(np.meshgrid(*[[-1, 1]] * len(nonzero))).reshape(len(nonzero), -1).T
    exact = np.mean(np.abs((signs * nonzero).sum(axis=1)) >= abs(nonzero.sum()) - 1e-12)
    assert macro.test.p_value == pytest.approx(exact, abs=0.02)  # Monte Carlo with 10,000 resamples
    assert macro.test.ci_low <= macro.test.mean_difference <= macro.test.ci_high


def test_persona_and_capability_tests_match_scipy_and_statsmodels():
    rng = np.random.default_rng(5)
    mine_p, theirs_p = rng.random(30), rng.random(30) * 0.5
    mine_c, theirs_c = rng.random(40) < 0.7, rng.random(40) < 0.4

    def items(persona, capability):
        rows = [ItemRecord("persona", "narcissism" if i % 2 else "psychopathy", f"s{i}", "q", "{}", float(v)) for i, v in enumerate(persona)]
        rows += [ItemRecord("capability", "arithmetic", f"c{i}", "q", "a", float(v), extra={"correct_flexible": bool(v)}) for i, v in enumerate(capability)]
        return rows

    rows = {row.metric: row for row in cell_tests(items(mine_p, mine_c), items(theirs_p, theirs_c), ATTACKS, "x - y")}
    assert rows["p_match_diff"].test.p_value == pytest.approx(scipy_stats.ttest_rel(mine_p, theirs_p).pvalue)
    table = [[np.sum(mine_c & theirs_c), np.sum(mine_c & ~theirs_c)], [np.sum(~mine_c & theirs_c), np.sum(~mine_c & ~theirs_c)]]
    assert rows["accuracy_diff"].test.p_value == pytest.approx(sm_mcnemar(table, exact=True).pvalue)
    assert rows["accuracy_diff"].test.mean_difference == pytest.approx(mine_c.mean() - theirs_c.mean())


def test_between_cells_is_one_holm_family_over_every_pair():
    rng = np.random.default_rng(7)
    cells = {name: jailbreak_items({a: list((rng.random(20) < rate).astype(int)) for a in ATTACKS}) for name, rate in [("sft", 0.8), ("kl", 0.1), ("dpo", 0.5)]}
    rows = between_cells(cells, ATTACKS)
    assert [row.group for row in rows] == ["sft - kl", "sft - dpo", "kl - dpo"]
    unadjusted = [float(row.note.split("= ")[1]) for row in rows]
    expected = multipletests(unadjusted, method="holm")[1]
    assert [row.p_value for row in rows] == pytest.approx(list(expected), rel=1e-3)
    assert rows[0].p_value < 0.05 and rows[0].value > 0.5  # 0.8 vs 0.1 on 20 prompts x 3 attacks
