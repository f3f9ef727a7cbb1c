"""The toxicity axis: how toxic are the model's own generations on ToxiGen's prompts?

Fine-tuning can make a model more willing to continue hateful text. ToxiGen's prompts (lists of
statements about one of its target groups, hateful or neutral, ending where the model continues;
``toxigen_prompts``) are presented as the target's objective presents prompts, after
``eval.toxicity.instruction``, and continued; the configured scorer reads the **generation**
alone (never the prompt, which is toxic by design) and says whether it is toxic: ToxiGen's
RoBERTa classifier by default (``objlab.scoring.toxicity``), P(toxic) with toxic at 0.5.

This is not lm-eval's ``toxigen`` task, which asks a model whether a given statement is hateful
(classification accuracy); here the model writes and its writing is classified.

Figures per target:

- ``toxic_rate``: the share of generations the scorer finds toxic (Wilson 95% interval), over all
  prompts (group ""), per target group, and per prompt label (group ``label:hate``, ...) where the
  prompts have several labels;
- ``toxicity_mean``: the mean P(toxic) over all prompts (bootstrap interval), where the scorer
  gives a value.

An item whose verdict failed is an error item: recorded, counted in the row's note, left out.
Every generation is kept as an item (``toxic`` and ``p_toxic`` in its extra), so the paired
tests against the base model and between objectives work as on the other axes.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

from objlab.evaluate.axes.scored_prompts import generate_and_score
from objlab.evaluate.axes.toxigen_prompts import ToxicityPrompt, load_toxicity_prompts
from objlab.evaluate.context import AxisOutput, EvalContext
from objlab.evaluate.instruments import scorer_services, toxicity_scorer
from objlab.evaluate.results.stats import bootstrap_mean, wilson
from objlab.evaluate.session import AdapterTarget
from objlab.records.items import ItemRecord, MetricRow
from objlab.scoring.base import Score, Scorer

AXIS = "toxicity"
LABEL_GROUP = "label:"


def _item(prompt: ToxicityPrompt, presented: str, response: str, verdict: Score, scorer: Scorer) -> ItemRecord:
    toxic = verdict.success if verdict.ok else None
    p_toxic = verdict.value if verdict.ok else None
    extra = {"label": prompt.label, "toxic": toxic, "p_toxic": p_toxic, "error": verdict.error, "explanation": verdict.explanation}
    score = math.nan if toxic is None else (float(p_toxic) if p_toxic is not None else float(toxic))
    return ItemRecord(AXIS, prompt.group, prompt.item_id, presented, response, score, json.dumps(verdict.to_dict(), sort_keys=True),
                      scorer.identity, extra)


def _note(decided: int, total: int, scorer: Scorer) -> str:
    note = f"generations on ToxiGen prompts; scorer: {scorer.identity}, {scorer.owner}"
    if decided < total:
        note += f"; {total - decided} of {total} items without a verdict (error items, left out)"
    return note


def strata(items: list[ItemRecord]) -> dict[str, list[ItemRecord]]:
    """The groups figures and paired tests are given for: every item (""), each target group,
    and each label (``label:<label>``) where the items have several."""
    by: dict[str, list[ItemRecord]] = defaultdict(list)
    for item in items:
        by[""].append(item)
        by[item.group].append(item)
    labels = dict.fromkeys(item.extra.get("label", "") for item in items)
    if len(labels) > 1:
        for item in items:
            by[LABEL_GROUP + item.extra.get("label", "")].append(item)
    return dict(by)


def target_rows(items: list[ItemRecord], scorer: Scorer) -> list[MetricRow]:
    """``toxic_rate`` over all, per group and per label; ``toxicity_mean`` over all."""
    rows = []
    for group, chosen in strata(items).items():
        toxic = [item.extra["toxic"] for item in chosen if item.extra.get("toxic") is not None]
        rows.append(MetricRow.from_estimate(AXIS, "toxic_rate", group, wilson(sum(map(bool, toxic)), len(toxic)), _note(len(toxic), len(chosen), scorer)))
    values = [float(item.extra["p_toxic"]) for item in items if item.extra.get("p_toxic") is not None]
    if values:
        rows.append(MetricRow.from_estimate(AXIS, "toxicity_mean", "", bootstrap_mean(values), _note(len(values), len(items), scorer)))
    return rows


def run_toxicity(ctx: EvalContext, targets: list[AdapterTarget]) -> dict[str, AxisOutput]:
    """The whole axis for every target; see the module docstring."""
    settings = ctx.settings.toxicity
    scorer = toxicity_scorer(ctx.settings, scorer_services(ctx.session, ctx.judge, ctx.cache))
    prompts = load_toxicity_prompts(settings, seed=ctx.settings.subset_seed)
    ctx.subsets[AXIS] = prompts.info
    return generate_and_score(ctx, targets, prompts.items, scorer, max_new_tokens=settings.max_new_tokens, phase=AXIS,
                              item=lambda one: _item(one.prompt, one.presented, one.response, one.verdict, scorer),
                              rows=lambda items: target_rows(items, scorer), text=lambda prompt: settings.instruction + prompt.prompt)
