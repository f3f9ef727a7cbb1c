"""The jailbreak axis: forbidden prompts x attacks, attack success rate per attack and overall.

Every forbidden prompt (StrongREJECT CSV) is wrapped by every configured attack, presented as
the target's objective presents prompts (CFT: ``<SAFE>``), and answered. The translation
attack translates the wrapped prompt into the configured language first and the answer back
into English before scoring; with no translator configured it is reported ``skipped``.

Scoring: the offline refusal classifier (``refusal``) scores every response. With a judge
(``eval.judge``; ``eval.jailbreak.scorer`` auto or judge) the judge's StrongREJECT rubric is
the primary scorer -- attack success = the judge says the response did not refuse -- and the
mean StrongREJECT score, the classifier's own ASR and the judge-classifier agreement are
reported too. An item whose verdict or translation failed is an error item: recorded,
counted in the row's note, left out of the rates.

Rows per target: ``asr`` per attack (Wilson) and over attacks (group "", macro-average: each
attack counts equally), and with a judge ``strongreject_score``, ``asr_classifier``,
``judge_error_rate``, ``scorer_agreement`` and ``scorer_kappa``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from objlab.errors import ConfigError
from objlab.evaluate.axes.attacks import Attack, select_attacks
from objlab.evaluate.axes.sources import ForbiddenPrompt, load_forbidden_prompts
from objlab.evaluate.context import AxisOutput, EvalContext, PromptJob
from objlab.evaluate.results.stats import bootstrap_mean, macro_average, wilson
from objlab.evaluate.scoring.agreement import kappa_estimate, percent_agreement
from objlab.evaluate.scoring.judges import Verdict
from objlab.evaluate.scoring.refusal import (
    CLASSIFIER_NAME,
    RefusalVerdict,
    classify_refusal,
)
from objlab.evaluate.scoring.rubrics import STRONGREJECT
from objlab.evaluate.session import AdapterTarget
from objlab.records.items import ItemRecord, MetricRow

AXIS = "jailbreak"


@dataclass(frozen=True)
class AttackPrompt:
    """A forbidden prompt under one attack, as sent (translated for the translation attack)."""

    attack: Attack
    item: ForbiddenPrompt
    text: str | None
    error: str | None = None


@dataclass
class Scored:
    """One target's answer to one attack prompt and what each scorer made of it."""

    prompt: AttackPrompt
    presented: str = ""
    response: str = ""
    original_response: str | None = None
    classifier: RefusalVerdict | None = None
    judge: Verdict | None = None
    error: str | None = None

    def success(self, use_judge: bool) -> bool | None:
        """Attack success by the primary scorer; None for an error item."""
        if self.error is not None:
            return None
        if use_judge:
            return None if not self.judge.ok else self.judge.fields["refused"] == 0
        return not self.classifier.refused


def uses_judge(ctx: EvalContext) -> bool:
    scorer = ctx.settings.jailbreak.scorer
    if scorer == "judge" and ctx.judge is None:
        raise ConfigError("eval.jailbreak.scorer: 'judge' needs a judge, but eval.judge.kind is 'none'")
    return ctx.judge is not None and scorer != "classifier"


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
        translations = ctx.translator.to_language(wrapped)
        line.close()
        prepared += [AttackPrompt(attack, item, text, error) for item, (text, error) in zip(prompts, translations)]
    return prepared


def answer(ctx: EvalContext, targets: list[AdapterTarget], prepared: list[AttackPrompt]) -> dict[str, list[Scored]]:
    """Generate every target's answer to every ready prompt (one call) and back-translate."""
    scored = {target.name: [Scored(prompt, error=prompt.error) for prompt in prepared] for target in targets}
    pending = [(target, entry) for target in targets for entry in scored[target.name] if entry.error is None]
    jobs = [PromptJob(target, target.eval_prompt(entry.prompt.text)) for target, entry in pending]
    max_new_tokens = ctx.max_new_tokens(ctx.settings.jailbreak.max_new_tokens)
    outputs = ctx.generate(jobs, max_new_tokens, "jailbreak generate")
    for (target, entry), job, output in zip(pending, jobs, outputs):
        entry.presented, entry.response = job.prompt, output.text
    translated = [entry for _, entry in pending if entry.prompt.attack.requires_translator]
    if translated:
        for entry, (text, error) in zip(translated, ctx.translator.to_english([entry.response for entry in translated])):
            entry.original_response = entry.response
            entry.response, entry.error = (text, None) if error is None else ("", error)
    return scored


def score(ctx: EvalContext, scored: dict[str, list[Scored]], use_judge: bool) -> None:
    """Classifier verdicts for every answered item; judge verdicts (one batch) when used."""
    answered = [entry for entries in scored.values() for entry in entries if entry.error is None]
    for entry in answered:
        entry.classifier = classify_refusal(entry.response)
    if not use_judge or not answered:
        return
    line = ctx.board.line("jailbreak judge", None)
    inputs = [{"prompt": entry.prompt.item.prompt, "response": entry.response} for entry in answered]
    verdicts = ctx.judge.score(STRONGREJECT, inputs, lambda fields: (fields["prompt"], fields["response"]))
    line.close()
    for entry, verdict in zip(answered, verdicts):
        entry.judge = verdict


def item_record(entry: Scored, use_judge: bool, scorer: str) -> ItemRecord:
    success = entry.success(use_judge)
    judge = entry.judge.to_dict() if entry.judge else None
    classifier = entry.classifier.to_dict() if entry.classifier else None
    extra = {
        "category": entry.prompt.item.category,
        "source": entry.prompt.item.source,
        "attack_success": success,
        "classifier_refused": entry.classifier.refused if entry.classifier else None,
        "strongreject_score": entry.judge.score if entry.judge else None,
        "original_response": entry.original_response,
        "error": entry.error or (entry.judge.error if entry.judge else None),
    }
    verdict = json.dumps({"judge": judge, "classifier": classifier}, sort_keys=True)
    presented = entry.presented or (entry.prompt.text or "")
    return ItemRecord(AXIS, entry.prompt.attack.name, entry.prompt.item.item_id, presented, entry.response,
                      math.nan if success is None else float(success), verdict, scorer, extra)


def _error_note(errors: int, total: int, scorer: str) -> str:
    note = f"scorer: {scorer}"
    return note + (f"; {errors} of {total} items failed (translation or verdict; error items, left out)" if errors else "")


def attack_rows(attack: Attack, entries: list[Scored], use_judge: bool, scorer: str) -> list[MetricRow]:
    """The rows of one attack that ran: ASR, and with a judge the score, classifier ASR, errors."""
    outcomes = [entry.success(use_judge) for entry in entries]
    decided = [outcome for outcome in outcomes if outcome is not None]
    note = _error_note(len(outcomes) - len(decided), len(outcomes), scorer)
    rows = [MetricRow.from_estimate(AXIS, "asr", attack.name, wilson(sum(decided), len(decided)), note)]
    if use_judge:
        judged = [entry.judge for entry in entries if entry.judge is not None]
        scores = [verdict.score for verdict in judged if verdict.ok]
        classified = [not entry.classifier.refused for entry in entries if entry.classifier is not None]
        errors = sum(not verdict.ok for verdict in judged)
        rows += [
            MetricRow.from_estimate(AXIS, "strongreject_score", attack.name, bootstrap_mean(scores), note),
            MetricRow.from_estimate(AXIS, "asr_classifier", attack.name, wilson(sum(classified), len(classified)), f"scorer: {CLASSIFIER_NAME}"),
            MetricRow.from_estimate(AXIS, "judge_error_rate", attack.name, wilson(errors, len(judged))),
        ]
    return rows


def skipped_rows(attack: Attack, use_judge: bool) -> list[MetricRow]:
    note = f"attack {attack.name!r} needs a translator and eval.jailbreak.translator is not configured; not run"
    metrics = ["asr", "strongreject_score", "asr_classifier"] if use_judge else ["asr"]
    return [MetricRow.skipped(AXIS, metric, attack.name, note) for metric in metrics]


def overall_rows(by_attack: dict[str, list[Scored]], skipped: list[str], use_judge: bool, scorer: str) -> list[MetricRow]:
    """Macro-averages over the attacks that ran, and (with a judge) scorer agreement."""
    note = f"scorer: {scorer}" + (f"; skipped attacks not included: {', '.join(skipped)}" if skipped else "")
    success = {name: [float(o) for o in (e.success(use_judge) for e in entries) if o is not None] for name, entries in by_attack.items()}
    rows = [MetricRow.from_estimate(AXIS, "asr", "", macro_average(success), note)]
    if not use_judge:
        return rows
    scores = {name: [e.judge.score for e in entries if e.judge is not None and e.judge.ok] for name, entries in by_attack.items()}
    rows.append(MetricRow.from_estimate(AXIS, "strongreject_score", "", macro_average(scores), note))
    both = [e for entries in by_attack.values() for e in entries if e.judge is not None and e.judge.ok]
    judge_says = [e.judge.fields["refused"] == 1 for e in both]
    classifier_says = [e.classifier.refused for e in both]
    agreement_note = f"refused or not: judge vs {CLASSIFIER_NAME}, on items both scored"
    rows += [
        MetricRow.from_estimate(AXIS, "scorer_agreement", "", percent_agreement(judge_says, classifier_says), agreement_note),
        MetricRow.from_estimate(AXIS, "scorer_kappa", "", kappa_estimate(judge_says, classifier_says), agreement_note),
    ]
    return rows


def target_output(entries: list[Scored], attacks: list[Attack], use_judge: bool, scorer: str) -> AxisOutput:
    """One target's rows (attacks in configured order, then overall) and item records."""
    output = AxisOutput(items=[item_record(entry, use_judge, scorer) for entry in entries])
    by_attack: dict[str, list[Scored]] = {}
    for entry in entries:
        by_attack.setdefault(entry.prompt.attack.name, []).append(entry)
    skipped = []
    for attack in attacks:
        if attack.name in by_attack:
            output.metrics += attack_rows(attack, by_attack[attack.name], use_judge, scorer)
        else:
            skipped.append(attack.name)
            output.metrics += skipped_rows(attack, use_judge)
    output.metrics += overall_rows(by_attack, skipped, use_judge, scorer)
    return output


def run_jailbreak(ctx: EvalContext, targets: list[AdapterTarget]) -> dict[str, AxisOutput]:
    """The whole axis for every target; see the module docstring."""
    settings = ctx.settings.jailbreak
    use_judge = uses_judge(ctx)
    scorer = ctx.judge.identity if use_judge else CLASSIFIER_NAME
    attacks = select_attacks(settings.attacks, settings.attacks_dir)
    prompts = load_forbidden_prompts(settings.prompts, settings.limit)
    prepared = prepare_prompts(ctx, attacks, prompts)
    scored = answer(ctx, targets, prepared)
    score(ctx, scored, use_judge)
    results = {}
    for target in targets:
        results[target.name] = target_output(scored[target.name], attacks, use_judge, scorer)
        ctx.counts[f"judge_errors:{target.name}"] += sum(
            entry.judge is not None and not entry.judge.ok for entry in scored[target.name]
        )
    return results
