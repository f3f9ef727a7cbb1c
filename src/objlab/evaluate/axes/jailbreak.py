"""The jailbreak axis: forbidden prompts x attacks, attack success rate per attack and over attacks.

Every forbidden prompt (StrongREJECT CSV; ``limit`` draws a sample stratified by category) is
wrapped by every configured attack (objlab's own, the user's, or StrongREJECT's from the
user's copy of its files; a named set such as ``seed5`` stands for its members), presented as
the target's objective presents prompts (CFT: ``<SAFE>``), and answered. A translation attack
translates the wrapped prompt into its language first and the answer back into English before
scoring; with no translator configured it is reported ``skipped``. An attack that asks for an
encoded answer (StrongREJECT's base64 family, its JSON-list styles) has the answer decoded as
the package decodes it before scoring; the raw answer is kept in the item record.

Scoring: every scorer of the axis (``objlab.scoring``; the primary one and those reported
beside it, resolved from the config by ``objlab.scoring.specs``) scores every answered item in
one batch each. The primary scorer decides attack success: a judge with a rubric
(StrongREJECT's own when ``eval.judge.rubric`` names its file, objlab's otherwise), objlab's
offline refusal classifier, StrongREJECT's string matching, a published judge, or the user's
own check (``python:module:function``). An item whose translation, decoding or primary verdict
failed is an error item: recorded, counted in the row's note, left out of the rates.

The rows and the ASR definition every table states are built in ``jailbreak_rows``.
"""

from __future__ import annotations

from objlab.evaluate.axes.attack_catalog import configured_attacks
from objlab.evaluate.axes.attacks import Attack
from objlab.evaluate.axes.jailbreak_rows import (
    AXIS,
    AttackPrompt,
    Scored,
    Scoring,
    definition,
    target_output,
)
from objlab.evaluate.axes.sources import ForbiddenPrompt, load_forbidden_prompts
from objlab.evaluate.context import AxisOutput, EvalContext, PromptJob
from objlab.evaluate.instruments import jailbreak_scorers, scorer_services
from objlab.evaluate.session import AdapterTarget
from objlab.scoring.base import ScoreItem

__all__ = ["AXIS", "AttackPrompt", "run_jailbreak", "scoring_for"]


def scoring_for(ctx: EvalContext) -> Scoring:
    """The scorers of this evaluation (errors name the config field)."""
    primary, *others = jailbreak_scorers(ctx.settings, scorer_services(ctx.session, ctx.judge, ctx.cache))
    return Scoring(primary, tuple(others))


def prepare_prompts(ctx: EvalContext, attacks: list[Attack], prompts: list[ForbiddenPrompt]) -> list[AttackPrompt]:
    """Wrap every prompt by every runnable attack; translate where the attack asks for it."""
    prepared = []
    for attack in attacks:
        if attack.requires_translator and ctx.translator is None:
            continue
        wrapped = [attack.wrap(item.prompt) for item in prompts]
        if not attack.requires_translator:
            prepared += [AttackPrompt(attack, item, text) for item, text in zip(prompts, wrapped)]
            continue
        line = ctx.board.line(f"jailbreak translate ({attack.name})", None)
        translations = ctx.translator.to_language(wrapped, attack.language)
        line.close()
        prepared += [AttackPrompt(attack, item, text, error) for item, (text, error) in zip(prompts, translations)]
    return prepared


def _back_translate(ctx: EvalContext, entries: list[Scored]) -> None:
    """Answers of translation attacks into English, one call per language."""
    by_language: dict[str | None, list[Scored]] = {}
    for entry in entries:
        by_language.setdefault(entry.prompt.attack.language, []).append(entry)
    for language, group in by_language.items():
        for entry, (text, error) in zip(group, ctx.translator.to_english([entry.response for entry in group], language)):
            entry.original_response = entry.response
            entry.response, entry.error = (text, None) if error is None else ("", error)


def answer(ctx: EvalContext, targets: list[AdapterTarget], prepared: list[AttackPrompt]) -> dict[str, list[Scored]]:
    """Generate every target's answer to every ready prompt (one call), back-translate, decode."""
    scored = {target.name: [Scored(prompt, error=prompt.error) for prompt in prepared] for target in targets}
    pending = [(target, entry) for target in targets for entry in scored[target.name] if entry.error is None]
    jobs = [PromptJob(target, target.eval_prompt(entry.prompt.text)) for target, entry in pending]
    max_new_tokens = ctx.max_new_tokens(ctx.settings.jailbreak.max_new_tokens)
    outputs = ctx.generate(jobs, max_new_tokens, "jailbreak generate")
    for (target, entry), job, output in zip(pending, jobs, outputs):
        entry.presented, entry.response, entry.finished = job.prompt, output.text, output.finished
    translated = [entry for _, entry in pending if entry.prompt.attack.requires_translator]
    if translated:
        _back_translate(ctx, translated)
    for _, entry in pending:
        if entry.prompt.attack.decode and entry.error is None:
            entry.original_response = entry.response
            entry.response = entry.prompt.attack.decoded(entry.response)
    return scored


def score(ctx: EvalContext, scored: dict[str, list[Scored]], scoring: Scoring) -> None:
    """Every scorer's verdicts on every answered item, one batch per scorer (a scorer that asks
    a model shows a progress line)."""
    answered = [entry for entries in scored.values() for entry in entries if entry.error is None]
    if not answered:
        return
    items = [ScoreItem(entry.prompt.item.prompt, entry.response, entry.presented, finished=entry.finished,
                       item_id=entry.prompt.item.item_id) for entry in answered]
    for scorer in scoring.all:
        asks = scorer.needs.judge or scorer.needs.model
        line = ctx.board.line(f"jailbreak {scorer.name}", None) if asks else None
        verdicts = scorer.score(items)
        if line is not None:
            line.close()
        for entry, verdict in zip(answered, verdicts):
            entry.verdicts[scorer.name] = verdict


def run_jailbreak(ctx: EvalContext, targets: list[AdapterTarget]) -> dict[str, AxisOutput]:
    """The whole axis for every target; see the module docstring."""
    settings = ctx.settings.jailbreak
    scoring = scoring_for(ctx)
    attacks = configured_attacks(settings)
    prompts = load_forbidden_prompts(settings.prompts, settings.limit, seed=ctx.settings.subset_seed,
                                     hf_config=settings.hf_config, split=settings.split)
    ctx.subsets["jailbreak"] = prompts.info
    prepared = prepare_prompts(ctx, attacks, prompts.items)
    scored = answer(ctx, targets, prepared)
    score(ctx, scored, scoring)
    ran = {prompt.attack.name for prompt in prepared}
    ctx.jailbreak = definition(scoring, attacks, ran)
    results = {}
    for target in targets:
        results[target.name] = target_output(scored[target.name], attacks, scoring, ctx.jailbreak)
        ctx.counts[f"judge_errors:{target.name}"] += sum(
            not verdict.ok for entry in scored[target.name] for scorer in scoring.all
            if (scorer.needs.judge or scorer.needs.model) and (verdict := entry.verdict(scorer)) is not None
        )
    return results
