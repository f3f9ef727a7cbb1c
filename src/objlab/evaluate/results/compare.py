"""Paired tests of a cell against the base model, on the very same items.

A cell and the base model answer the same persona statements, forbidden prompts and problems
(item ids are ``file:line``), so each figure is compared item by item: the between-item
variance cancels and a small shift is detectable.

- persona: ``p_match_vs_base`` per trait, mean of per-item P(match) differences, paired t-test;
- persona over the traits (group ""): the same on every (trait, statement), when there are
  several traits;
- jailbreak: ``asr_vs_base`` per attack, difference in attack success, exact McNemar; for the
  macro ASR (group ""), the per-prompt share of the macro's attacks that succeeded, sign-flip
  permutation test (``results/between.py``);
- capability: ``<metric>_vs_base`` per task and metric, difference in correctness, McNemar;
- over-refusal: ``overrefusal_vs_base`` per prompt type and over all safe prompts (refused or
  not, exact McNemar), ``unsafe_compliance_vs_base`` over the unsafe contrasts;
- toxicity: ``toxic_rate_vs_base`` over all ToxiGen prompts, per target group and per prompt
  label (whether the generation was toxic, exact McNemar);
- lm_eval: ``<metric,filter>_vs_base`` per task and figure whose per-document scores are numbers
  (lm-eval's logged samples): exact McNemar for 0/1 scores, paired t-test otherwise. Group
  aggregates and corpus-level figures (per-document values that are not scores) get no test.

Within each axis the p-values are Holm-adjusted over the family (traits, attacks, task
metrics, toxicity groups, lm-eval figures); ``p_value`` holds the adjusted value, ``comparison`` says so, ``note`` keeps the
unadjusted one. Items without an outcome on either side (error items) are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from objlab.errors import StateError
from objlab.evaluate.axes.jailbreak_rows import too_few_decided
from objlab.evaluate.axes.toxicity import AXIS as TOXICITY
from objlab.evaluate.axes.toxicity import strata
from objlab.evaluate.results.between import CAPABILITY_OUTCOMES, Tested, adjusted_rows, defined, macro_test
from objlab.evaluate.results.eval_result import EvalResult
from objlab.evaluate.results.harness_results import number
from objlab.evaluate.results.stats import PairedTest, mcnemar, paired_difference
from objlab.records.items import ItemRecord, MetricRow

Outcome = Callable[[ItemRecord], float | bool | None]


def _pairs(cell: list[ItemRecord], base: dict[tuple, ItemRecord], outcome: Outcome) -> dict[str, tuple[list, list]]:
    """Per group: (cell outcomes, base outcomes) over items both sides scored."""
    groups: dict[str, tuple[list, list]] = {}
    for item in cell:
        partner = base.get((item.axis, item.group, item.item_id))
        if partner is None:
            continue
        mine, theirs = outcome(item), outcome(partner)
        if defined(mine) and defined(theirs):
            cell_values, base_values = groups.setdefault(item.group, ([], []))
            cell_values.append(mine)
            base_values.append(theirs)
    return groups


def _family(axis: str, tests: dict[tuple[str, str], PairedTest], family: str) -> list[MetricRow]:
    """Rows for one family of tests keyed by (metric, group), p-values Holm-adjusted over it."""
    return adjusted_rows([Tested(axis, metric, group, test) for (metric, group), test in tests.items()], family, "cell - base")


def _lm_eval_tests(cell: list[ItemRecord], base: dict[tuple, ItemRecord]) -> dict[tuple[str, str], PairedTest]:
    """Per lm-eval task and figure key: McNemar on 0/1 scores, paired t on other numbers."""
    keys = dict.fromkeys(key for item in cell for key in item.extra.get("values", {}))
    tests = {}
    for key in keys:
        def score(item: ItemRecord, key: str = key) -> float | None:  # None for text, lists, NaN
            return number(item.extra.get("values", {}).get(key))

        for group, (mine, theirs) in _pairs(cell, base, score).items():
            binary = all(value in (0.0, 1.0) for value in mine + theirs)
            tests[(f"{key}_vs_base", group)] = mcnemar(mine, theirs) if binary else paired_difference(mine, theirs, test="t")
    return tests


def _overrefusal_tests(cell: list[ItemRecord], base: dict[tuple, ItemRecord]) -> dict[tuple[str, str], PairedTest]:
    """Refusal of the safe prompts (per type and over all) and compliance with the unsafe
    contrasts (over all), item by item against the base model: exact McNemar."""
    tests = {}
    for label, metric, flip in (("safe", "overrefusal_vs_base", False), ("unsafe", "unsafe_compliance_vs_base", True)):
        chosen = [item for item in cell if item.extra.get("label") == label]

        def outcome(item: ItemRecord, flip: bool = flip):
            refused = item.extra.get("refused")
            return None if refused is None else (not refused if flip else bool(refused))

        if label == "safe":
            for group, (mine, theirs) in _pairs(chosen, base, outcome).items():
                tests[(metric, group)] = mcnemar(mine, theirs)
        pooled = _pairs([replace(item, group="") for item in chosen],
                        {(axis, "", item_id): item for (axis, _, item_id), item in base.items() if axis == "overrefusal"}, outcome)
        if "" in pooled:
            tests[(metric, "")] = mcnemar(*pooled[""])
    return tests


def _toxicity_tests(cell: list[ItemRecord], base: dict[tuple, ItemRecord]) -> dict[tuple[str, str], PairedTest]:
    """Whether each generation was toxic, item by item against the base model's generation for
    the same prompt, over all prompts, per target group and per label: exact McNemar."""
    base_toxic = {item_id: item.extra.get("toxic") for (axis, _, item_id), item in base.items() if axis == TOXICITY}
    tests = {}
    for group, chosen in strata(cell).items():
        pairs = [(item.extra.get("toxic"), base_toxic.get(item.item_id)) for item in chosen]
        pairs = [(bool(mine), bool(theirs)) for mine, theirs in pairs if defined(mine) and defined(theirs)]
        if pairs:
            tests[("toxic_rate_vs_base", group)] = mcnemar([mine for mine, _ in pairs], [theirs for _, theirs in pairs])
    return tests


def macro_attacks(cell: EvalResult, jailbreak_items: list[ItemRecord]) -> list[str]:
    """The attacks the cell's macro ASR covers (its evaluation info, less the attacks with too few
    items with a verdict, as its macro row leaves them out), else every attack but ``none``."""
    definition = cell.info.jailbreak if cell.info is not None else None
    if definition is not None and definition.macro_over:
        outcomes: dict[str, list] = {}
        for item in jailbreak_items:
            outcome = item.extra.get("attack_success")
            outcomes.setdefault(item.group, []).append(outcome if defined(outcome) else None)
        return [name for name in definition.macro_over if not too_few_decided(outcomes.get(name, []))]
    return sorted({item.group for item in jailbreak_items} - {"none"})


def _check_same_model(cell: EvalResult, base: EvalResult) -> None:
    if cell.info is None or base.info is None:  # the grid's stored base result: same session by construction
        return
    mine, theirs = cell.info.model_fingerprint, base.info.model_fingerprint
    if mine.rsplit("#", 1)[-1] != theirs.rsplit("#", 1)[-1]:
        raise StateError(f"the baseline was evaluated on model {theirs}, this evaluation on {mine}: not comparable")
    if base.info.adapter.adapter:
        raise StateError(f"the baseline is an evaluation of adapter {base.info.adapter.adapter}, not of the base model")


def compare_with_base(cell: EvalResult, base: EvalResult) -> list[MetricRow]:
    """Paired test rows of ``cell`` against ``base`` (see the module docstring)."""
    _check_same_model(cell, base)
    base_items = {(item.axis, item.group, item.item_id): item for item in base.items}

    def items(axis: str) -> list[ItemRecord]:
        return [item for item in cell.items if item.axis == axis]

    persona = _pairs(items("persona"), base_items, lambda item: item.score)
    persona_tests = {("p_match_vs_base", group): paired_difference(mine, theirs, test="t") for group, (mine, theirs) in persona.items()}
    jailbreak = _pairs(items("jailbreak"), base_items, lambda item: item.extra.get("attack_success"))
    jailbreak_tests = {("asr_vs_base", group): mcnemar(mine, theirs) for group, (mine, theirs) in jailbreak.items()}
    macro = macro_test(cell.items, base.items, macro_attacks(cell, items("jailbreak")))
    if macro is not None:
        jailbreak_tests[("asr_vs_base", "")] = macro
    persona_all = _pairs([replace(item, group="") for item in items("persona")],
                         {(axis, "", item_id): item for (axis, _, item_id), item in base_items.items() if axis == "persona"},
                         lambda item: item.score)
    if len(persona) > 1 and "" in persona_all:
        persona_tests[("p_match_vs_base", "")] = paired_difference(*persona_all[""], test="t")
    overrefusal_tests = _overrefusal_tests(items("overrefusal"), base_items)
    capability_tests = {}
    for metric, field in CAPABILITY_OUTCOMES.items():
        for group, (mine, theirs) in _pairs(items("capability"), base_items, lambda item: item.extra.get(field)).items():
            capability_tests[(f"{metric}_vs_base", group)] = mcnemar(mine, theirs)
    return (
        _family("persona", persona_tests, "persona figures (traits and their mean)")
        + _family("jailbreak", jailbreak_tests, "attacks")
        + _family("capability", capability_tests, "task metrics")
        + _family("overrefusal", overrefusal_tests, "over-refusal figures (types and over all)")
        + _family(TOXICITY, _toxicity_tests(items(TOXICITY), base_items), "toxicity figures (groups, labels and over all)")
        + _family("lm_eval", _lm_eval_tests(items("lm_eval"), base_items), "lm-eval figures")
    )
