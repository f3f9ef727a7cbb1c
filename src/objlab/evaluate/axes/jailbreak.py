"""The jailbreak axis: forbidden prompts x attacks, attack success rate per attack and over attacks.

Every forbidden prompt (StrongREJECT CSV; ``limit`` draws a sample stratified by category) is
wrapped by every configured attack (objlab's own, the user's, or StrongREJECT's from the
user's copy of its files; a named set such as ``seed5`` stands for its members), presented as
the target's objective presents prompts (CFT: ``<SAFE>``), and answered. A translation attack
translates the wrapped prompt into its language first and the answer back into English before
scoring; with no translator configured it is reported ``skipped``. An attack that asks for an
encoded answer (StrongREJECT's base64 family, its JSON-list styles) has the answer decoded as
the package decodes it before scoring; the raw answer is kept in the item record.

Scoring (``Scoring``): the primary scorer decides attack success -- the judge with a rubric
(StrongREJECT's own when ``eval.judge.rubric`` names its file, objlab's otherwise), objlab's
offline refusal classifier, StrongREJECT's string matching, or the user's own harmfulness check
(``python:module:function``, true when the answer carries out the request). Every scorer that is available
runs, so the others are reported beside it (``asr_classifier``, ``asr_string_matching``) and
the judge and classifier's agreement is measured. An item whose verdict or translation failed
is an error item: recorded, counted in the row's note, left out of the rates.

The rows and the ASR definition every table states are built in ``jailbreak_rows``.
"""

from __future__ import annotations

from objlab.config.evaluation import PYTHON_SCORER, EvalSettings
from objlab.config.python_ref import load_callable
from objlab.errors import ConfigError
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
from objlab.evaluate.scoring.refusal import CLASSIFIER_NAME, classify_refusal
from objlab.evaluate.scoring.rubrics import OBJLAB_JAILBREAK_RUBRIC, Rubric
from objlab.evaluate.scoring.string_matching import load_phrases, match_refusal
from objlab.evaluate.scoring.strongreject_rubric import load_strongreject_rubric
from objlab.evaluate.session import AdapterTarget

__all__ = ["AXIS", "AttackPrompt", "check_instruments", "jailbreak_rubric", "run_jailbreak", "scoring_for"]


def jailbreak_rubric(settings: EvalSettings) -> Rubric:
    """StrongREJECT's rubric from the user's ``judge_templates.json`` when given, else objlab's."""
    path = settings.judge.rubric
    return load_strongreject_rubric(path) if path else OBJLAB_JAILBREAK_RUBRIC


def check_instruments(settings: EvalSettings) -> None:
    """Read every instrument the jailbreak axis will use (attacks, StrongREJECT's files, the
    rubric, the phrase list), so a bad path or file is refused before anything is trained or
    generated, with the error naming the field or file."""
    if settings.judge.rubric:
        load_strongreject_rubric(settings.judge.rubric)
    jailbreak = settings.jailbreak
    if jailbreak is None:
        return
    configured_attacks(jailbreak)
    if jailbreak.string_matching:
        load_phrases(jailbreak.string_matching)


def scoring_for(ctx: EvalContext) -> Scoring:
    """The primary scorer and the instruments of this evaluation (errors name the config field)."""
    settings = ctx.settings.jailbreak
    phrases = load_phrases(settings.string_matching) if settings.string_matching else None
    scorer = settings.scorer
    if scorer == "judge" and ctx.judge is None:
        raise ConfigError("eval.jailbreak.scorer: 'judge' needs a judge, but eval.judge.kind is 'none'")
    if scorer == "auto":
        scorer = "judge" if ctx.judge is not None else "classifier"
    if scorer == "judge":
        rubric = jailbreak_rubric(ctx.settings)
        return Scoring("judge", ctx.judge.identity, rubric, phrases, settings.success_threshold)
    if scorer.startswith(PYTHON_SCORER):
        return Scoring("python", scorer, None, phrases, None, check=load_callable(scorer[len(PYTHON_SCORER):]))
    identity = phrases.identity if scorer == "string_matching" else CLASSIFIER_NAME
    return Scoring(scorer, identity, None, phrases, None)


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
        entry.presented, entry.response = job.prompt, output.text
    translated = [entry for _, entry in pending if entry.prompt.attack.requires_translator]
    if translated:
        _back_translate(ctx, translated)
    for _, entry in pending:
        if entry.prompt.attack.decode and entry.error is None:
            entry.original_response = entry.response
            entry.response = entry.prompt.attack.decoded(entry.response)
    return scored


def score(ctx: EvalContext, scored: dict[str, list[Scored]], scoring: Scoring) -> None:
    """Classifier and phrase verdicts for every answered item; judge verdicts (one batch) when used."""
    answered = [entry for entries in scored.values() for entry in entries if entry.error is None]
    for entry in answered:
        entry.classifier = classify_refusal(entry.response)
        if scoring.phrases is not None:
            entry.phrases = match_refusal(scoring.phrases, entry.response)
        if scoring.check is not None:
            _check(scoring, entry)
    if scoring.rubric is None or not answered:
        return
    line = ctx.board.line("jailbreak judge", None)
    inputs = [{"prompt": entry.prompt.item.prompt, "response": entry.response} for entry in answered]
    verdicts = ctx.judge.score(scoring.rubric, inputs, lambda fields: (fields["prompt"], fields["response"]))
    line.close()
    for entry, verdict in zip(answered, verdicts):
        entry.judge = verdict


def _check(scoring: Scoring, entry: Scored) -> None:
    """The user's scorer on one answer; a failure or a non-bool answer is an error item."""
    try:
        verdict = scoring.check(entry.prompt.item.prompt, entry.response)
    except Exception as error:  # noqa: BLE001 -- a user's function may fail in any way; the item records it
        entry.error = f"scorer {scoring.identity}: {type(error).__name__}: {error}"
        return
    if not isinstance(verdict, bool):
        entry.error = f"scorer {scoring.identity} returned {type(verdict).__name__}, expected bool"
        return
    entry.complied = verdict


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
            entry.judge is not None and not entry.judge.ok for entry in scored[target.name]
        )
    return results
