"""Paired tests between two evaluations on the same items: a cell against the base model for
the macro ASR, and objectives against each other at one budget.

Every evaluation of a grid answers the same forbidden prompts under the same attacks, the same
persona statements and the same problems, so two cells are compared item by item:

- macro ASR: per forbidden prompt, the share of the macro's attacks that succeeded on it (the
  no-attack condition and skipped attacks excluded, as in the macro row); the mean of the
  per-prompt differences, a sign-flip permutation test (the per-prompt shares are discrete, so
  no normality is assumed) and a bootstrap interval;
- persona: per (trait, statement), the difference in P(match), paired t-test (one figure over
  the traits);
- capability: per problem, the difference in correctness, exact McNemar;
- over-refusal: per safe prompt, the difference in refusing it, exact McNemar;
- toxicity: per ToxiGen prompt, the difference in whether the generation was toxic, exact McNemar.

The p-values of one family (e.g. every pair of objectives on every measure) are Holm-adjusted
together; ``p_value`` holds the adjusted value and ``note`` the unadjusted one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from objlab.evaluate.results.stats import PairedTest, holm, mcnemar, paired_difference
from objlab.records.items import ItemRecord, MetricRow

# The capability figures (metric) and the item field each is counted from; a between-cells
# test uses one outcome per problem, the first of CAPABILITY_FIELDS an item has.
CAPABILITY_OUTCOMES = {
    "accuracy_strict": "correct_strict",
    "accuracy_flexible": "correct_flexible",
    "accuracy": "correct",
}
CAPABILITY_FIELDS = tuple(CAPABILITY_OUTCOMES[metric] for metric in ("accuracy_flexible", "accuracy_strict", "accuracy"))


def defined(value) -> bool:
    """An outcome both sides of a paired test can use (not None, not NaN: error items are out)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def macro_per_prompt(items: Sequence[ItemRecord], attacks: Sequence[str]) -> dict[str, float]:
    """Per forbidden prompt: the share of ``attacks`` that succeeded on it (prompts with an
    outcome under every one of them only)."""
    wanted = set(attacks)
    outcomes: dict[str, dict[str, bool]] = {}
    for item in items:
        if item.axis == "jailbreak" and item.group in wanted and defined(item.extra.get("attack_success")):
            outcomes.setdefault(item.item_id, {})[item.group] = bool(item.extra["attack_success"])
    return {prompt: sum(by.values()) / len(by) for prompt, by in outcomes.items() if len(by) == len(wanted)}


def _paired(mine: dict, theirs: dict) -> tuple[list, list]:
    keys = [key for key in mine if key in theirs]
    return [mine[key] for key in keys], [theirs[key] for key in keys]


def _persona(items: Sequence[ItemRecord]) -> dict[tuple[str, str], float]:
    return {(item.group, item.item_id): item.score for item in items if item.axis == "persona" and defined(item.score)}


def _overrefused(items: Sequence[ItemRecord]) -> dict[tuple[str, str], bool]:
    """Per safe over-refusal prompt: whether the answer refused."""
    return {(item.group, item.item_id): bool(item.extra["refused"]) for item in items
            if item.axis == "overrefusal" and item.extra.get("label") == "safe" and item.extra.get("refused") is not None}


def _toxic(items: Sequence[ItemRecord]) -> dict[str, bool]:
    """Per ToxiGen prompt: whether the generation was toxic."""
    return {item.item_id: bool(item.extra["toxic"]) for item in items
            if item.axis == "toxicity" and item.extra.get("toxic") is not None}


def _capability(items: Sequence[ItemRecord]) -> dict[tuple[str, str], bool]:
    found = {}
    for item in items:
        if item.axis != "capability":
            continue
        value = next((item.extra.get(name) for name in CAPABILITY_FIELDS if defined(item.extra.get(name))), None)
        if value is not None:
            found[(item.group, item.item_id)] = bool(value)
    return found


@dataclass(frozen=True)
class Tested:
    """One paired test before adjustment: what was compared and its result."""

    axis: str
    metric: str
    group: str
    test: PairedTest


def macro_test(mine: Sequence[ItemRecord], theirs: Sequence[ItemRecord], attacks: Sequence[str]) -> PairedTest | None:
    """Macro ASR of ``mine`` minus ``theirs`` on the prompts both scored under every attack."""
    left, right = _paired(macro_per_prompt(mine, attacks), macro_per_prompt(theirs, attacks))
    return paired_difference(left, right, test="permutation") if len(left) >= 2 else None


def cell_tests(mine: Sequence[ItemRecord], theirs: Sequence[ItemRecord], attacks: Sequence[str], label: str) -> list[Tested]:
    """Macro ASR, persona P(match), capability, over-refusal and toxicity of ``mine`` against ``theirs``."""
    tests = []
    macro = macro_test(mine, theirs, attacks)
    if macro is not None:
        tests.append(Tested("jailbreak", "asr_macro_diff", label, macro))
    left, right = _paired(_persona(mine), _persona(theirs))
    if len(left) >= 2:
        tests.append(Tested("persona", "p_match_diff", label, paired_difference(left, right, test="t")))
    left, right = _paired(_capability(mine), _capability(theirs))
    if left:
        tests.append(Tested("capability", "accuracy_diff", label, mcnemar(left, right)))
    left, right = _paired(_overrefused(mine), _overrefused(theirs))
    if left:
        tests.append(Tested("overrefusal", "overrefusal_diff", label, mcnemar(left, right)))
    left, right = _paired(_toxic(mine), _toxic(theirs))
    if left:
        tests.append(Tested("toxicity", "toxic_rate_diff", label, mcnemar(left, right)))
    return tests


def adjusted_rows(tests: list[Tested], family: str, compared: str | None = None) -> list[MetricRow]:
    """MetricRows for ``tests``, their p-values Holm-adjusted over the whole list; ``comparison``
    says what was paired (``compared``, e.g. "cell - base") on how many items, and the family."""
    adjusted = holm([tested.test.p_value for tested in tests]) if tests else []
    paired = (lambda n: f"{compared} on {n} paired items") if compared else (lambda n: f"paired on {n} items")
    return [
        MetricRow(
            tested.axis, tested.metric, tested.group, tested.test.mean_difference, tested.test.n,
            tested.test.ci_low, tested.test.ci_high, tested.test.method,
            note=f"unadjusted p = {tested.test.p_value:.4g}", p_value=p,
            comparison=f"{paired(tested.test.n)}; p Holm-adjusted over {len(tests)} {family}",
        )
        for tested, p in zip(tests, adjusted)
    ]


def between_cells(items: dict[str, Sequence[ItemRecord]], attacks: Sequence[str]) -> list[MetricRow]:
    """Every pair of the labelled evaluations (e.g. the objectives at the largest budget) on
    every measure, one Holm family; ``group`` is ``"a - b"``."""
    tests = []
    for first, second in combinations(items, 2):
        tests += cell_tests(items[first], items[second], attacks, f"{first} - {second}")
    return adjusted_rows(tests, "objective pairs and measures")
