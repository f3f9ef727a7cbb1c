"""Generate an answer to every prompt for every target, then score all answers in one call.

The shape the over-refusal and toxicity axes share: the prompts are presented as each target's
objective presents them, decoded in one batched generation, and the configured scorer reads the
(prompt, answer) pairs of every target together (a local judge loads once and batches across
targets). Each axis says how one scored answer becomes its item and how a target's items
become its figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from objlab.evaluate.context import AxisOutput, EvalContext, PromptJob
from objlab.evaluate.session import AdapterTarget
from objlab.records.items import ItemRecord, MetricRow
from objlab.scoring.base import Score, ScoreItem, Scorer


@dataclass(frozen=True)
class Scored:
    """One prompt's answer for one target: the prompt's record, the text the model saw, its answer
    and the scorer's verdict."""

    prompt: Any
    presented: str
    response: str
    verdict: Score


def generate_and_score(
    ctx: EvalContext,
    targets: list[AdapterTarget],
    prompts: Sequence[Any],
    scorer: Scorer,
    *,
    max_new_tokens: int | None,
    phase: str,
    item: Callable[[Scored], ItemRecord],
    rows: Callable[[list[ItemRecord]], list[MetricRow]],
    text: Callable[[Any], str] = lambda prompt: prompt.prompt,
) -> dict[str, AxisOutput]:
    """Per target name, its axis output: ``item(scored)`` for each answer in the order of
    ``prompts``, and ``rows(items)``. ``text(prompt)`` is what the model is asked (before the
    target's own presentation); the scorer sees the prompt's own text. A scorer that asks a
    model counts its error verdicts per target in ``ctx.counts`` (``judge_errors:<target>``),
    as the jailbreak axis does."""
    jobs = [PromptJob(target, target.eval_prompt(text(prompt))) for target in targets for prompt in prompts]
    outputs = ctx.generate(jobs, ctx.max_new_tokens(max_new_tokens), f"{phase} generate")
    asks = scorer.needs.judge or scorer.needs.model
    line = ctx.board.line(f"{phase} {scorer.name}", None) if asks else None
    every_prompt = [prompt for _ in targets for prompt in prompts]
    verdicts = scorer.score([
        ScoreItem(prompt.prompt, output.text, job.prompt, finished=output.finished, item_id=prompt.item_id)
        for job, output, prompt in zip(jobs, outputs, every_prompt)
    ])
    if line is not None:
        line.close()
    results: dict[str, AxisOutput] = {}
    for index, target in enumerate(targets):
        chunk = slice(index * len(prompts), (index + 1) * len(prompts))
        items = [item(Scored(prompt, job.prompt, output.text, verdict))
                 for prompt, job, output, verdict in zip(prompts, jobs[chunk], outputs[chunk], verdicts[chunk])]
        results[target.name] = AxisOutput(rows(items), items)
        if asks:
            ctx.counts[f"judge_errors:{target.name}"] += sum(not verdict.ok for verdict in verdicts[chunk])
    return results
