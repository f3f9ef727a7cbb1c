"""What ``run --plan`` counts when it cannot read the data: estimates from the budget itself.

Without the tokenizer or the task data the plan cannot tokenise the stream, but a training unit
still consumes exactly its largest budget in task tokens (training stops at it; the last batch
is cut by examples), so that much is known. The extra tokens an objective forwards are
estimated from what the objective declares: a rejected sequence as long as the reference one
for preference objectives (DPO, ORPO, CFT), a reference pass over every sequence for those with
a reference (DPO, KL). IP's instructions (a few tokens on half the prompts) are not added, and
``aware``'s sampled responses cannot be estimated without the prompts.

lm-eval's requests likewise come from the preset's published sizes (``config.lm_eval_presets``)
when lm-eval cannot build its tasks (their datasets are on the hub).
"""

from __future__ import annotations

from dataclasses import dataclass

from objlab.config import ExperimentConfig
from objlab.config.evaluation import LmEvalSettings
from objlab.config.lm_eval_presets import PRESETS
from objlab.objectives import registry
from objlab.runner.grid import TrainUnit

MIN_CHOICES = 2  # a multiple-choice document is at least two log-likelihood requests


@dataclass(frozen=True)
class UnitEstimate:
    task_tokens: int
    compute_tokens: int
    generated_tokens: int
    note: str | None = None


def forward_factor(objective: str) -> int:
    """Sequences forwarded per task token: x2 for a rejected sequence, x2 for a reference pass."""
    cls = registry.get(objective)
    return (2 if cls.needs_preference else 1) * (2 if cls.reference else 1)


def estimate_unit(config: ExperimentConfig, unit: TrainUnit) -> UnitEstimate:
    """A training unit's tokens from its largest budget and its objective's declared passes."""
    task = max(cell.budget for cell in unit.cells)
    compute = task * (forward_factor(unit.objective) - 1)
    samples = "sample" in registry.get(unit.objective).roles
    note = f"{unit.objective}: its sampled responses are not estimated (they need the prompts)" if samples else None
    return UnitEstimate(task, compute, 0, note)


def preset_requests(settings: LmEvalSettings) -> tuple[dict[str, int], int, list[str]] | None:
    """lm-eval's requests per checkpoint from the preset's published sizes: generations exactly
    (one per document), log-likelihood requests at least (two per document where the number of
    choices varies), the generation tokens at most; the tasks outside the preset are returned as
    not counted. None without a preset."""
    if settings.preset is None:
        return None
    preset = PRESETS[settings.preset]
    by_name = {task.name: task for task in preset.tasks}
    requests: dict[str, int] = {}
    generated = 0
    for name in settings.tasks:
        task = by_name.get(name)
        if task is None:
            continue
        documents = task.documents if settings.limit is None else min(task.documents, _limit(settings.limit, task.documents))
        if task.max_gen_toks is not None:
            requests["generate_until"] = requests.get("generate_until", 0) + documents
            generated += documents * task.max_gen_toks
        else:
            requests["loglikelihood"] = requests.get("loglikelihood", 0) + documents * (task.choices or MIN_CHOICES)
    return requests, generated, [name for name in settings.tasks if name not in by_name]


def _limit(limit: int | float, documents: int) -> int:
    return int(limit) if limit >= 1 else max(1, int(documents * limit))
