"""The instruments of an evaluation, from the config: the judge, the translator, and the scorers
of the jailbreak axis (resolved by ``objlab.scoring.specs``), built once per evaluation call;
and ``check_instruments``, which reads every file they use before anything runs.
"""
from __future__ import annotations

from objlab.config.evaluation import EvalSettings
from objlab.evaluate.axes.attack_catalog import configured_attacks
from objlab.evaluate.session import EvalSession
from objlab.scoring import catalog
from objlab.scoring.base import Scorer, ScorerServices
from objlab.scoring.cache import VerdictCache
from objlab.scoring.specs import check_jailbreak, check_overrefusal, check_toxicity, jailbreak_specs, overrefusal_spec, toxicity_spec
from objlab.scoring.judges import Judge, Translator, TranslatorLike, judge_client, translator_client
from objlab.scoring.python_translator import PythonTranslator
from objlab.scoring.string_matching import load_phrases
from objlab.scoring.strongreject_rubric import load_strongreject_rubric

def judge_for(session: EvalSession, settings: EvalSettings, cache: VerdictCache) -> Judge | None:
    """The configured judge (one client per session, shared by every cell), or None."""
    if settings.judge.kind == "none":
        return None
    return Judge(session.shared(f"judge:{settings.judge!r}", lambda: judge_client(settings.judge)), cache)


def translator_for(session: EvalSession, settings: EvalSettings, cache: VerdictCache) -> TranslatorLike | None:
    """The translator, built only when a configured attack needs one: a chat model through the
    verdict cache, or the user's Python translator (called directly, it is local)."""
    jailbreak = settings.jailbreak
    if jailbreak is None or jailbreak.translator is None:
        return None
    if not any(attack.requires_translator for attack in configured_attacks(jailbreak)):
        return None
    translator = jailbreak.translator
    if translator.kind == "python":
        return session.shared(f"translator:{translator!r}", lambda: PythonTranslator(translator))
    client = session.shared(f"translator:{translator!r}", lambda: translator_client(translator, settings.judge))
    return Translator(client, translator.language, cache)


def scorer_services(session: EvalSession, judge: Judge | None, cache: VerdictCache | None) -> ScorerServices:
    """What an evaluation lends its scorers: the judge, the verdict cache, and the session's
    loader of local judge models (each loaded once per session, shared by every cell)."""
    return ScorerServices(judge=judge, cache=cache, load_model=session.scorer_model)


def jailbreak_scorers(settings: EvalSettings, services: ScorerServices) -> list[Scorer]:
    """The jailbreak axis's scorers, built (primary first)."""
    return [catalog.build(spec.name, spec.options, services, spec.where) for spec in jailbreak_specs(settings)]


def overrefusal_scorer(settings: EvalSettings, services: ScorerServices) -> Scorer:
    """The over-refusal axis's scorer, built."""
    spec = overrefusal_spec(settings)
    return catalog.build(spec.name, spec.options, services, spec.where)


def toxicity_scorer(settings: EvalSettings, services: ScorerServices) -> Scorer:
    """The toxicity axis's scorer, built."""
    spec = toxicity_spec(settings)
    return catalog.build(spec.name, spec.options, services, spec.where)


def check_instruments(settings: EvalSettings) -> None:
    """Read every instrument the evaluation will use (attacks, StrongREJECT's files, the rubric,
    the phrase list) and check that every scorer is known and has what it needs, so a bad name,
    path or file is refused before anything is trained or generated, the error naming the field."""
    if settings.judge.rubric:
        load_strongreject_rubric(settings.judge.rubric)
    check_overrefusal(settings)
    check_toxicity(settings)
    jailbreak = settings.jailbreak
    if jailbreak is None:
        return
    configured_attacks(jailbreak)
    if jailbreak.string_matching:
        load_phrases(jailbreak.string_matching)
    check_jailbreak(settings)
