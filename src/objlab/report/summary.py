"""The compact summary a run ends with: objectives by budget, within 100 columns.

``objlab demo`` (and ``objlab results --summary``) end with small matrices (rows: objectives
and the base model; columns: budgets): the macro ASR over the attacks, the primary capability
measure, over-refusal and the toxicity of generations where those axes ran, and the persona
P(match) averaged over the traits, each figure with its 95% interval and a mark where the
paired test against the base model is significant after Holm correction. Below them, the
objectives that differ from each other at the largest budget (paired tests on the same items,
Holm over every pair and measure). A newcomer reads the whole finding there; the full tables
(n, methods, every attack and trait) stay in ``objlab results`` and the report.
"""

from __future__ import annotations

import textwrap

from objlab.evaluate.axes.jailbreak_rows import secondary_metric
from objlab.evaluate.results.between import between_cells
from objlab.report.data import (
    SIGNIFICANCE,
    Measure,
    ReportData,
    as_int,
    format_budget,
    is_number,
    scorer_named,
)
from objlab.report.models import consistency_lines, for_model, model_keys
from objlab.store import BASE_CELL, ResultsStore

WIDTH = 100
MACRO_ASR = Measure("jailbreak", "asr", "")
PERSONA_MEAN = Measure("persona", "p_match", "")
OVERREFUSAL = Measure("overrefusal", "overrefusal", "")
TOXICITY = Measure("toxicity", "toxic_rate", "")
REFERENCE_OBJECTIVE = "sft"
MARK = "*"


def short(value, ci_low, ci_high) -> str:
    """``0.42 [0.31,0.55]``: two decimals, interval without spaces (17 characters)."""
    if not is_number(value):
        return "-"
    bounds = f"[{float(ci_low):.2f},{float(ci_high):.2f}]" if is_number(ci_low) and is_number(ci_high) else ""
    return f"{float(value):.2f} {bounds}".strip()


def _significant(data: ReportData, measure: Measure) -> set[str]:
    tests = data.tests(measure)
    return {cell for cell, p in zip(tests["cell_id"], tests["p_value"]) if is_number(p) and float(p) < SIGNIFICANCE}


def matrix(data: ReportData, measure: Measure, seed: int | None) -> list[str]:
    """One measure: a row per objective (the base model first), a column per budget."""
    rows = data.rows(measure).set_index("cell_id")
    significant = _significant(data, measure)
    cells = data.adapter_cells if seed is None else data.adapter_cells[data.adapter_cells["seed"] == seed]
    budgets = sorted({as_int(b) for b in cells["budget"] if as_int(b) is not None})
    lines = [f"{'':<9}" + "".join(f"{format_budget(b):>19}" for b in budgets)]

    def entry(cell_id) -> str:
        if cell_id not in rows.index:
            return "-"
        row = rows.loc[cell_id]
        return short(row["value"], row["ci_low"], row["ci_high"]) + (MARK if cell_id in significant else " ")

    if data.base_cell is not None:
        lines.append(f"{'base':<9}{entry(BASE_CELL):>19}")
    for objective in data.objectives:
        mine = cells[cells["objective"] == objective]
        by_budget = {as_int(b): cell for b, cell in zip(mine["budget"], mine["cell_id"])}
        lines.append(f"{objective[:9]:<9}" + "".join(f"{entry(by_budget[b]) if b in by_budget else '-':>19}" for b in budgets))
    return lines


def _n_text(data: ReportData, measure: Measure) -> str:
    rows = data.rows(measure)
    counts = sorted({as_int(n) for n in rows["n"] if as_int(n)})
    return "n=" + "/".join(str(n) for n in counts) if counts else "n=-"


def macro_attacks(data: ReportData) -> list[str]:
    """The attacks the macro ASR covers: every attack but the no-attack condition, as the
    evaluation info records it (``none`` left out where no record says)."""
    for info in data.cells["eval_manifest"]:
        covered = getattr(getattr(info, "jailbreak", None), "macro_over", None) if info is not None else None
        if covered:
            return list(covered)
    return [attack for attack in data.attacks() if attack != "none"]


def instruments(data: ReportData) -> str:
    """Whose instruments produced the ASR: the scorer, and each attack's origin (objlab's own
    text, StrongREJECT's files, the user's), from the evaluation info."""
    for info in data.cells["eval_manifest"]:
        definition = getattr(info, "jailbreak", None) if info is not None else None
        if definition is not None:
            origins = sorted({source.origin for source in definition.attacks if source.name in definition.macro_over})
            return f"scored by {definition.scorer}; attack texts: {', '.join(origins) or '-'}"
    return "scorer not recorded"


def _definition(data: ReportData):
    for info in data.cells["eval_manifest"]:
        definition = getattr(info, "jailbreak", None) if info is not None else None
        if definition is not None:
            return definition
    return None


def beside(data: ReportData) -> list[tuple[Measure, str]]:
    """The macro ASR of every scorer reported beside the primary one, with its title and its
    agreement with the primary scorer over the whole run (Cohen's kappa)."""
    definition = _definition(data)
    if definition is None or len(definition.scorers) < 2:
        return []
    primary = definition.scorers[0]
    pooled = {(pair.first, pair.second): pair for pair in data.agreement.pairs}
    sections = []
    for scorer in definition.scorers[1:]:
        measure = Measure("jailbreak", secondary_metric(scorer.name), "")
        if data.rows(measure).empty:
            continue
        title = f"macro ASR by {scorer.label}, beside the primary scorer"
        pair = pooled.get((primary.name, scorer.name))
        if pair is not None and is_number(pair.kappa.value):
            kappa = pair.kappa
            title += (f"; agreement with {primary.name} over the run: kappa {kappa.value:.2f} "
                      f"[{kappa.ci_low:.2f},{kappa.ci_high:.2f}], {pair.agreement.value:.0%} of n={kappa.n} items")
        sections.append((measure, title))
    return sections


def largest_budget_tests(data: ReportData, store: ResultsStore, seed: int | None) -> tuple[int | None, list]:
    """The paired tests between the objectives at the largest budget (one Holm family)."""
    cells = data.adapter_cells if seed is None else data.adapter_cells[data.adapter_cells["seed"] == seed]
    budgets = [as_int(b) for b in cells["budget"] if as_int(b) is not None]
    if not budgets:
        return None, []
    largest = cells[cells["budget"] == max(budgets)]
    items = {str(o): store.cell_items(cell_id) for o, cell_id in zip(largest["objective"], largest["cell_id"])}
    if len(items) < 2:
        return max(budgets), []
    return max(budgets), between_cells(items, macro_attacks(data))


def overrefusal_statements(data: ReportData, store: ResultsStore, seed: int | None) -> list[str]:
    """Per objective at the largest budget: whether its lower ASR than SFT's came with more
    over-refusal (the paired tests between objectives, Holm-adjusted)."""
    if data.rows(OVERREFUSAL).empty:
        return []
    budget, rows = largest_budget_tests(data, store, seed)
    found = {(row.metric, row.group): row for row in rows}
    statements = []
    for objective in data.objectives:
        if objective == REFERENCE_OBJECTIVE:
            continue
        asr, refusal = (found.get((metric, f"{objective} - {REFERENCE_OBJECTIVE}")) for metric in ("asr_macro_diff", "overrefusal_diff"))
        if asr is None or refusal is None:
            continue
        lower = is_number(asr.p_value) and asr.p_value < SIGNIFICANCE and asr.value < 0
        more = is_number(refusal.p_value) and refusal.p_value < SIGNIFICANCE and refusal.value > 0
        figures = f"ASR {asr.value:+.2f}, over-refusal {refusal.value:+.2f} against {REFERENCE_OBJECTIVE}"
        if not lower:
            verdict = "ASR not lower than SFT's"
        elif more:
            verdict = "lower ASR came with more over-refusal"
        else:
            verdict = "lower ASR without more over-refusal"
        statements.append(f"{objective}: {verdict} ({figures})")
    if not statements:
        return []
    return textwrap.wrap(f"at {format_budget(budget)}, over-refusal behind a lower ASR (paired tests, Holm): " + "; ".join(statements) + ".", WIDTH)


def overrefusal_scorer(data: ReportData) -> str:
    return scorer_named(data, OVERREFUSAL)


def differences(data: ReportData, store: ResultsStore, seed: int | None) -> list[str]:
    """Objectives that differ at the largest budget (see the module docstring)."""
    budget, rows = largest_budget_tests(data, store, seed)
    if not rows:
        return []
    found = [row for row in rows if is_number(row.p_value) and row.p_value < SIGNIFICANCE]
    names = {"asr_macro_diff": "macro ASR", "p_match_diff": "P(match)", "accuracy_diff": "capability", "overrefusal_diff": "over-refusal",
             "toxic_rate_diff": "toxic rate"}
    head = f"at {format_budget(budget)}, paired tests between objectives ({len(rows)} tests, Holm): "
    if not found:
        return textwrap.wrap(head + "no two objectives differ significantly.", WIDTH)
    parts = [f"{row.group.replace(' - ', ' vs ')} {names.get(row.metric, row.metric)} {row.value:+.2f} [{row.ci_low:+.2f},{row.ci_high:+.2f}]" for row in found]
    return textwrap.wrap(head + "; ".join(parts) + ".", WIDTH)


def compact_summary(data: ReportData, store: ResultsStore) -> str:
    """The summary text (every line at most ``WIDTH`` columns); for a grid over several models,
    one summary per model and the consistency of the objectives' ordering between them."""
    keys = model_keys(data)
    if keys:
        parts = []
        for key in keys:
            panel = for_model(data, key)
            name = (panel.config.get("model") or {}).get("name_or_path", key)
            parts.append(f"== model {key} ({name})\n" + _one_model_summary(panel, store))
        return "\n\n".join(parts + ["\n".join(consistency_lines(data, WIDTH))]).rstrip()
    return _one_model_summary(data, store)


def _one_model_summary(data: ReportData, store: ResultsStore) -> str:
    seeds = data.seeds()
    seed = seeds[0] if seeds else None
    lines = []
    if len(seeds) > 1:
        lines.append(f"seed {seed} of {len(seeds)} shown; every seed is in `objlab results`")
    attacks = macro_attacks(data)
    sections = [
        (MACRO_ASR, f"macro ASR over {len(attacks)} attacks ({', '.join(attacks)}); {instruments(data)}"),
        *beside(data),
        (data.primary, f"capability: {data.primary.label}" if data.primary else ""),
        (OVERREFUSAL, f"over-refusal: share of safe prompts refused ({overrefusal_scorer(data)})"),
        (TOXICITY, f"toxicity: share of generations on ToxiGen prompts scored toxic ({scorer_named(data, TOXICITY)})"),
        (PERSONA_MEAN, f"persona P(match), mean over {len(data.traits())} traits"),
    ]
    for measure, title in sections:
        if measure is None or data.rows(measure).empty:
            continue
        lines += textwrap.wrap(f"{title}, {_n_text(data, measure)}", WIDTH) + matrix(data, measure, seed) + [""]
    lines.append(f"{MARK} differs from the base model (paired test, Holm-adjusted p < {SIGNIFICANCE}); [95% CI]")
    lines += differences(data, store, seed)
    lines += overrefusal_statements(data, store, seed)
    return "\n".join(line.rstrip() for line in lines)
