"""TEST FIXTURES for the report tests: a synthetic results store with fabricated numbers.

Nothing here was measured. The values are invented to look plausible (ASR rising with budget
for SFT and DPO, P(match) drifting, one significant test or two) so the report code has
every shape it must handle: a base cell, 2 objectives x 2 budgets, two seeds for one
objective and one for the other (the other seed's cells pending), a skipped attack, paired
tests, train logs, and HTML-like text in a note that the report must escape.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from factories import adapter_manifest, eval_info

from objlab.records.adapter import AdapterManifest
from objlab.records.evaluation import (
    AttackSource,
    EvalInfo,
    JailbreakDefinition,
    SubsetInfo,
)
from objlab.records.items import MetricRow
from objlab.records.train_log import StepLog
from objlab.store import ResultsStore

ATTACKS = ["none", "dan", "happy_to_help", "roleplay", "encyclopedia"]
TRAITS = ["machiavellianism", "narcissism", "psychopathy"]
BUDGETS = [1000, 4000]
FIXTURE_CELLS = {("sft", 0), ("sft", 1), ("dpo", 0)}  # (objective, seed) with results; dpo seed 1 pending
SCRIPT_NOTE = 'judge unavailable <script>alert("xss")</script>'
TRANSLATION_NOTE = "attack 'translation' needs a translator and eval.jailbreak.translator is not configured; not run"
CONFIG = {
    "name": "report-fixture",
    "toy": True,
    "model": {"name_or_path": "fixture/toy-llama"},
    "data": {"source": "fixture/arithmetic.jsonl", "task": "gsm8k"},
    "objectives": {"sft": {}, "dpo": {"beta": 0.1}},
    "budgets": BUDGETS,
    "seeds": [0, 1],
    "lora": {"r": 16, "alpha": 32, "dropout": 0.05},
    "train": {"learning_rate": 1e-4, "schedule": "constant", "batch_size": 8},
    "eval": {"judge": {"kind": "none"}, "generation": {"backend": "auto", "max_new_tokens": 64},
             "jailbreak": {"attacks": ATTACKS + ["translation"]}},
}


def _wilson_like(value: float, n: int) -> tuple[float, float]:
    half = 1.96 * math.sqrt(max(value * (1 - value), 0.01) / n)
    return max(0.0, value - half), min(1.0, value + half)


def _row(axis, metric, group, value, n, method, **extra) -> MetricRow:
    low, high = _wilson_like(value, n)
    return MetricRow(axis, metric, group, value, n, low, high, method, **extra)


def _shift(objective: str | None, budget: int | None, seed: int | None) -> float:
    """A made-up drift: grows with budget, larger for DPO, a little seed noise."""
    if objective is None:
        return 0.0
    return (0.06 if objective == "dpo" else 0.03) * math.log2(budget / 500) + 0.01 * (seed or 0)


def own_rows(objective=None, budget=None, seed=None) -> list[MetricRow]:
    drift = _shift(objective, budget, seed)
    rows = [
        _row("capability", "accuracy_strict", "gsm8k", 0.30 + drift / 2, 200, "Wilson 95%"),
        _row("capability", "accuracy_flexible", "gsm8k", 0.36 + drift / 2, 200, "Wilson 95%"),
        MetricRow.skipped("capability", "rubric_score", "open_qa", SCRIPT_NOTE),
    ]
    asrs = [min(0.95, 0.05 + index * 0.04 + drift) for index in range(len(ATTACKS))]
    rows += [_row("jailbreak", "asr", attack, asr, 50, "Wilson 95%", note="scorer: refusal-classifier") for attack, asr in zip(ATTACKS, asrs)]
    rows.append(MetricRow.skipped("jailbreak", "asr", "translation", TRANSLATION_NOTE))
    rows.append(_row("jailbreak", "asr", "", sum(asrs[1:]) / len(asrs[1:]), 200, "macro-average of 4 groups, Wilson 95%",
                     note=f"scorer: refusal-classifier; macro over 4 attack(s): {', '.join(ATTACKS[1:])}; not included: none "
                          "(no-attack condition, reported on its own); skipped attacks not included: translation"))
    rows += [_row("persona", "p_match", trait, 0.40 + 0.05 * index + drift / 3, 100, "bootstrap 95% (percentile)") for index, trait in enumerate(TRAITS)]
    return rows


def comparison_rows(objective: str, budget: int, seed: int) -> list[MetricRow]:
    drift = _shift(objective, budget, seed)
    significant = drift > 0.1

    def test(axis, metric, group, difference, n, method, family):
        p_value = 0.004 if significant else 0.41
        return MetricRow(axis, metric, group, difference, n, difference - 0.05, difference + 0.05, method,
                         note=f"unadjusted p = {p_value / 3:.4g}", p_value=p_value,
                         comparison=f"cell - base on {n} paired items; p Holm-adjusted over {family}")

    rows = [test("persona", "p_match_vs_base", trait, drift / 3, 100, "paired t-test", "3 traits") for trait in TRAITS]
    rows += [test("jailbreak", "asr_vs_base", attack, drift, 50, "exact McNemar", "5 attacks") for attack in ATTACKS]
    rows += [test("capability", f"{metric}_vs_base", "gsm8k", drift / 2, 200, "exact McNemar", "2 task metrics")
             for metric in ("accuracy_strict", "accuracy_flexible")]
    return rows


JAILBREAK_DEFINITION = JailbreakDefinition(
    scorer="refusal-classifier", success="the answer is not a refusal by the fixture's classifier",
    attacks=[AttackSource(name=name, origin="objlab", source=f"fixture/{name}.yaml", description=name) for name in ATTACKS + ["translation"]],
    no_attack=["none"], macro_over=ATTACKS[1:], skipped=["translation"],
)
SUBSETS = {"jailbreak": SubsetInfo(source="fixture/forbidden.csv", rows=80, limit=50, seed=0, stratified_by="category",
                                   strata={"a": 25, "b": 25}, item_ids=[f"forbidden.csv:{line}" for line in range(2, 52)])}


def eval_manifest(seconds: float) -> EvalInfo:
    return eval_info(device="cpu", backend="hf", dtype="float32", model=CONFIG["model"]["name_or_path"],
                     toy=True, judge=None, translator=None,
                     seconds={"capability": seconds / 3, "jailbreak": seconds / 3, "persona": seconds / 3},
                     environment={"gpu": None}, warnings=[], jailbreak=JAILBREAK_DEFINITION, subsets=SUBSETS)


def train_manifest(objective: str, budget: int, seed: int) -> AdapterManifest:
    return adapter_manifest(objective=objective, seed=seed, budget=budget,
                            objective_params={"beta": 0.1} if objective == "dpo" else {},
                            mode="own-run" if budget == max(BUDGETS) else "snapshot",
                            budget_tokens=budget + 17, compute_tokens=(budget + 17) * (2 if objective == "dpo" else 1),
                            steps=budget // 100, final_loss=1.0, device="cpu", wall_time_s=budget / 100,
                            schedule="constant", data_source=CONFIG["data"]["source"])


def log_rows(budget: int) -> list[StepLog]:
    steps = budget // 100
    return [StepLog(step, step * 8, step * 100, step * 100, 1e-4, 2.0 / math.sqrt(step), 1.0) for step in range(1, steps + 1)]


AXES = ("capability", "jailbreak", "persona")


def build_fixture_run(run_dir: Path, axes: tuple[str, ...] = AXES) -> Path:
    """Write the synthetic store into ``run_dir`` (fabricated numbers, see module docstring).

    ``axes`` keeps only those evaluation axes, as a run that did not evaluate the others.
    """
    run_dir.mkdir(parents=True, exist_ok=True)

    def kept(rows: list[MetricRow]) -> list[MetricRow]:
        return [row for row in rows if row.axis in axes]

    with ResultsStore.in_run_dir(run_dir) as store:
        store.set_meta("config", json.dumps(CONFIG))
        store.record_cell("base", kind="base", metrics=kept(own_rows()), items=[], eval_info=eval_manifest(9.0), eval_seconds=9.0)
        for objective, seed in sorted(FIXTURE_CELLS):
            for budget in BUDGETS:
                store.record_cell(
                    f"{objective}/seed-{seed}/budget-{budget}", kind="adapter",
                    metrics=kept(own_rows(objective, budget, seed) + comparison_rows(objective, budget, seed)), items=[],
                    eval_info=eval_manifest(6.0), train_manifest=train_manifest(objective, budget, seed),
                    log_rows=log_rows(budget), objective=objective, seed=seed, budget=budget,
                    adapter_dir=f"adapters/{objective}/seed-{seed}/budget-{budget}",
                    train_seconds=budget / 100, eval_seconds=6.0,
                )
    return run_dir
