"""The capability axis: numeric exact match, multiple choice, and judge-rated open answers.

Each configured task is data plus a scorer, like an lm-evaluation-harness task:

- ``gsm8k``: GSM8K-format problems; the question is the user turn (as in training). One
  generation gives two metrics: ``accuracy_strict`` (the ``#### n`` answer) and
  ``accuracy_flexible`` (the last number), see ``extraction``.
- ``multiple_choice``: SuperGPQA-style rows; the prompt lists lettered options and asks for
  the letter; ``accuracy`` of the extracted letter.
- ``rubric``: open-ended questions rated 1-10 against a gold reference by the judge
  (``rubric_score`` in [0, 1]). Without a judge the task is reported ``skipped`` and nothing is
  generated.

``limit`` draws a seeded sample, stratified by ``category`` where the rows have one (see
``sources``); ``hf:`` sources read ``hf_config`` and ``split``. Few-shot examples (``fewshot``
> 0) are the first rows of ``fewshot_source``, in the task's own format, given as prior chat
turns. Every prompt passes through the target's objective
(CFT prepends ``<SAFE>``); few-shot turns do not.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

from objlab.config.evaluation import CapabilityTask
from objlab.data.choice import choice_answer_turn
from objlab.data.choice import choice_prompt as format_choice_prompt
from objlab.errors import ConfigError, DataError
from objlab.evaluate.axes.sources import (
    ChoiceItem,
    NumericItem,
    ReferenceItem,
    load_choice,
    load_fewshot_turns,
    load_numeric,
    load_reference,
)
from objlab.evaluate.axes.subsets import Sampled
from objlab.evaluate.context import AxisOutput, EvalContext, PromptJob
from objlab.evaluate.results.stats import bootstrap_mean, wilson
from objlab.evaluate.axes.extraction import (
    extract_flexible,
    extract_option_letter,
    extract_strict,
)
from objlab.scoring.rubrics import REFERENCE
from objlab.evaluate.session import AdapterTarget
from objlab.records.items import ItemRecord, MetricRow

AXIS = "capability"


def choice_prompt(item: ChoiceItem) -> str:
    """The question, its options as ``A. text`` lines, and the instruction to answer by letter
    (the text the ``supergpqa`` task trains on, from ``data.choice``)."""
    return format_choice_prompt(item.question, item.options)


@dataclass(frozen=True)
class TaskFormat:
    """How one kind of task is read, asked, shown as a few-shot turn, and scored."""

    load: Callable[..., Sampled]  # (source, limit, *, seed, hf_config, split)
    prompt: Callable
    fewshot_answer: Callable | None  # None: the task's loader for few-shot turns is its own
    score: Callable  # (ctx, task, target, items, jobs, outputs) -> AxisOutput


def _record(task: CapabilityTask, item, job: PromptJob, output, score: float, verdict: dict, scorer: str, extra: dict) -> ItemRecord:
    extra = {**extra, "finished": output.finished, "new_tokens": output.new_tokens}
    return ItemRecord(AXIS, task.display_name, item.item_id, job.prompt, output.text, score,
                      json.dumps(verdict, sort_keys=True), scorer, extra)


def _accuracy_row(metric: str, group: str, correct: list[bool]) -> MetricRow:
    return MetricRow.from_estimate(AXIS, metric, group, wilson(sum(correct), len(correct)))


def score_numeric(ctx, task, target, items: list[NumericItem], jobs, outputs) -> AxisOutput:
    result = AxisOutput()
    strict_hits, flexible_hits = [], []
    for item, job, output in zip(items, jobs, outputs):
        strict, flexible = extract_strict(output.text), extract_flexible(output.text)
        verdict = {"gold": item.gold, "strict": strict, "flexible": flexible,
                   "correct_strict": strict == item.gold, "correct_flexible": flexible == item.gold}
        strict_hits.append(verdict["correct_strict"])
        flexible_hits.append(verdict["correct_flexible"])
        result.items.append(_record(task, item, job, output, float(verdict["correct_strict"]), verdict, "gsm8k-extract", verdict))
    result.metrics += [_accuracy_row("accuracy_strict", task.display_name, strict_hits),
                       _accuracy_row("accuracy_flexible", task.display_name, flexible_hits)]
    return result


def score_choice(ctx, task, target, items: list[ChoiceItem], jobs, outputs) -> AxisOutput:
    result = AxisOutput()
    hits = []
    for item, job, output in zip(items, jobs, outputs):
        chosen = extract_option_letter(output.text, list(item.options))
        verdict = {"gold": item.answer, "extracted": chosen, "correct": chosen == item.answer}
        hits.append(verdict["correct"])
        result.items.append(_record(task, item, job, output, float(verdict["correct"]), verdict, "choice-letter", verdict))
    result.metrics.append(_accuracy_row("accuracy", task.display_name, hits))
    return result


def score_reference(ctx: EvalContext, task, target, items: list[ReferenceItem], jobs, outputs) -> AxisOutput:
    """Judge each answer against its reference; failed verdicts are error items, not dropped."""
    inputs = [{"question": item.question, "reference": item.reference, "answer": output.text} for item, output in zip(items, outputs)]
    verdicts = ctx.judge.score(REFERENCE, inputs, lambda fields: (json.dumps([fields["question"], fields["reference"]]), fields["answer"]))
    result = AxisOutput()
    for item, job, output, verdict in zip(items, jobs, outputs, verdicts):
        score = verdict.score if verdict.ok else math.nan
        extra = {"rating": verdict.fields.get("rating"), "error": verdict.error, "cached": verdict.cached}
        result.items.append(_record(task, item, job, output, score, verdict.to_dict(), ctx.judge.identity, extra))
    scored = [verdict.score for verdict in verdicts if verdict.ok]
    errors = len(verdicts) - len(scored)
    note = f"{errors} of {len(verdicts)} verdicts failed or unparseable (error items, left out)" if errors else ""
    ctx.counts[f"judge_errors:{target.name}"] += errors
    result.metrics += [
        MetricRow.from_estimate(AXIS, "rubric_score", task.display_name, bootstrap_mean(scored), note),
        MetricRow.from_estimate(AXIS, "judge_error_rate", task.display_name, wilson(errors, len(verdicts))),
    ]
    return result


FORMATS = {
    "gsm8k": TaskFormat(load_numeric, lambda item: item.question, None, score_numeric),
    "multiple_choice": TaskFormat(load_choice, choice_prompt, lambda item: choice_answer_turn(item.answer), score_choice),
    "rubric": TaskFormat(load_reference, lambda item: item.question, lambda item: item.reference, score_reference),
}


def _fewshot(task: CapabilityTask, index: int) -> tuple[tuple[str, str], ...]:
    if task.fewshot == 0:
        return ()
    if not task.fewshot_source:
        raise ConfigError(f"eval.capability.{index}.fewshot_source: needed when fewshot is {task.fewshot}")
    form = FORMATS[task.kind]
    if form.fewshot_answer is None:
        return tuple(load_fewshot_turns(task.fewshot_source, task.fewshot))
    examples = form.load(task.fewshot_source).items
    if len(examples) < task.fewshot:
        raise DataError(f"{task.fewshot_source}: {task.fewshot} few-shot examples requested, the file holds {len(examples)}")
    return tuple((form.prompt(example), form.fewshot_answer(example)) for example in examples[: task.fewshot])


def load_task_items(task: CapabilityTask, seed: int) -> Sampled:
    """The task's items (chosen by ``where`` and ``holdout``, renamed by ``fields``): every
    row, or the seeded stratified sample ``limit`` draws."""
    return FORMATS[task.kind].load(task.source, task.limit, seed=seed, hf_config=task.hf_config, split=task.split,
                                   where=task.where, holdout=task.holdout, fields=task.fields)


def run_task(ctx: EvalContext, task: CapabilityTask, index: int, targets: list[AdapterTarget]) -> dict[str, AxisOutput]:
    """One task for every target: read, generate (all targets in one call), score per target."""
    if task.kind == "rubric" and ctx.judge is None:
        note = "no judge configured (eval.judge.kind is 'none'): rubric scoring needs one; nothing generated"
        return {target.name: AxisOutput([MetricRow.skipped(AXIS, "rubric_score", task.display_name, note)]) for target in targets}
    form = FORMATS[task.kind]
    items = load_task_items(task, ctx.settings.subset_seed)
    ctx.subsets[f"capability:{task.display_name}"] = items.info
    history = _fewshot(task, index)
    jobs = [PromptJob(target, target.eval_prompt(form.prompt(item)), history) for target in targets for item in items]
    outputs = ctx.generate(jobs, ctx.max_new_tokens(task.max_new_tokens), f"capability {task.display_name}")
    results = {}
    for position, target in enumerate(targets):
        mine = slice(position * len(items), (position + 1) * len(items))
        results[target.name] = form.score(ctx, task, target, items, jobs[mine], outputs[mine])
    return results


def run_capability(ctx: EvalContext, targets: list[AdapterTarget]) -> dict[str, AxisOutput]:
    """Every configured capability task, for every target."""
    combined = {target.name: AxisOutput() for target in targets}
    for index, task in enumerate(ctx.settings.capability):
        for name, output in run_task(ctx, task, index, targets).items():
            combined[name].metrics += output.metrics
            combined[name].items += output.items
    return combined
