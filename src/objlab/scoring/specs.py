"""The scorers a config names, resolved: one place turns ``eval.jailbreak.scorer`` (and the
scorers reported beside it) into registered scorers with their options, and checks that each is
known and has what it needs.

``eval.jailbreak.scorer`` picks the primary scorer: a registered scorer (``objlab scorers``),
the user's ``python:module:function``, or one of two choices that depend on the judge:
``judge`` (the configured judge with StrongREJECT's rubric when ``eval.judge.rubric`` names the
package's ``judge_templates.json``, objlab's rubric otherwise) and ``auto`` (``judge`` when a
judge is configured, else ``classifier``). ``eval.jailbreak.scorers`` lists the scorers
reported beside it; by default the classifier, and StrongREJECT's string matching when its
phrase file is given. Each scorer receives its options from the config fields it reads
(``string_matching``: the phrase file; a rubric judge: the rubric file and
``success_threshold``) and from ``eval.jailbreak.scorer_options``.

The config's loader calls ``check_jailbreak`` (a wrong name or an unmet need fails when the
config is loaded, naming the field); the evaluation builds the scorers from ``jailbreak_specs``;
``run --plan`` counts judge calls from the specs' declared needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from objlab.config.evaluation import EvalSettings
from objlab.errors import ConfigError
from objlab.scoring import catalog
from objlab.scoring.base import Scorer

WHERE = "eval.jailbreak.scorer"
WHERE_OTHERS = "eval.jailbreak.scorers"


@dataclass(frozen=True)
class ScorerSpec:
    """A scorer as the config names it, with the options it will be built with and the config
    field that named it (for errors)."""

    name: str
    options: dict[str, Any]
    where: str
    written: str = ""  # the name as the config wrote it ("judge", "auto"), when it differs

    @property
    def shown(self) -> str:
        return f"{self.written!r} ({self.name})" if self.written and self.written != self.name else repr(self.name)

    @property
    def cls(self) -> type[Scorer]:
        return catalog.scorer_class(self.name, self.where)


def _field(settings: EvalSettings, path: str) -> Any:
    value: Any = settings
    for part in path.split("."):
        value = getattr(value, part, None)
    return value


def _options(name: str, settings: EvalSettings, primary: bool, where: str) -> dict[str, Any]:
    """A scorer's options: ``eval.jailbreak.scorer_options`` for its name, and the config fields
    it declares it reads (``Scorer.config_fields``; ``primary_fields`` only for the primary one)."""
    cls = catalog.scorer_class(name, where)
    options = dict(settings.jailbreak.scorer_options.get(name, {}))
    fields = {**cls.config_fields, **(cls.primary_fields if primary else {})}
    for option, path in fields.items():
        value = _field(settings, path)
        if value is not None:
            options.setdefault(option, value)
    return options


def primary_name(settings: EvalSettings) -> str:
    """The registered name (or python: reference) the primary scorer resolves to."""
    scorer = settings.jailbreak.scorer
    if scorer == "auto":
        scorer = "judge" if settings.judge.kind != "none" else "classifier"
    if scorer == "judge":
        scorer = "strongreject_rubric" if settings.judge.rubric else "objlab_rubric"
    return scorer


def jailbreak_specs(settings: EvalSettings) -> list[ScorerSpec]:
    """The jailbreak axis's scorers, primary first (see the module docstring)."""
    jailbreak = settings.jailbreak
    primary = primary_name(settings)
    others = jailbreak.scorers
    if others is None:
        others = ["classifier"] + (["string_matching"] if jailbreak.string_matching else [])
    specs = [ScorerSpec(primary, _options(primary, settings, True, WHERE), WHERE, settings.jailbreak.scorer)]
    specs += [ScorerSpec(name, _options(name, settings, False, WHERE_OTHERS), WHERE_OTHERS) for name in others if name != primary]
    return specs


def needs_judge(settings: EvalSettings) -> bool:
    """Whether any scorer of the jailbreak axis asks the configured judge."""
    return settings.jailbreak is not None and any(spec.cls.needs.judge for spec in jailbreak_specs(settings))


def overrefusal_needs_judge(settings: EvalSettings) -> bool:
    return settings.overrefusal is not None and overrefusal_spec(settings).cls.needs.judge


def _check_needs(spec: ScorerSpec, settings: EvalSettings) -> None:
    """A judge for a scorer that asks one; every option a scorer cannot run without."""
    cls = spec.cls
    if cls.needs.judge and settings.judge.kind == "none":
        raise ConfigError(f"{spec.where}: {spec.shown} needs a judge, but eval.judge.kind is 'none' (configure eval.judge, or choose another scorer)")
    for option in cls.required_options:
        if option not in spec.options:
            field = cls.config_fields.get(option)
            options_of = spec.where.rsplit(".", 1)[0] + f".scorer_options.{spec.name}.{option}"
            source = f"eval.{field}" if field else options_of
            raise ConfigError(f"{spec.where}: {spec.shown} needs {source} ({cls.needs.describe()})")


def check_jailbreak(settings: EvalSettings) -> None:
    """Every jailbreak scorer known, able to decide attack success, and with what it needs
    (``ConfigError`` naming the field otherwise)."""
    if settings.jailbreak is None:
        return
    for spec in jailbreak_specs(settings):
        cls = spec.cls
        _check_needs(spec, settings)
        if "success" not in cls.verdicts:
            raise ConfigError(f"{spec.where}: {spec.shown} gives no attack-success verdict (it gives {', '.join(sorted(cls.verdicts))})")


WHERE_OVERREFUSAL = "eval.overrefusal.scorer"


def _section_spec(settings: EvalSettings, section: str) -> ScorerSpec:
    """The scorer of an axis whose section has ``scorer`` and ``scorer_options`` (``eval.<section>``)."""
    chosen, where = getattr(settings, section), f"eval.{section}.scorer"
    cls = catalog.scorer_class(chosen.scorer, where)
    options = dict(chosen.scorer_options.get(chosen.scorer, {}))
    for option, path in cls.config_fields.items():
        value = _field(settings, path)
        if value is not None:
            options.setdefault(option, value)
    return ScorerSpec(chosen.scorer, options, where)


def overrefusal_spec(settings: EvalSettings) -> ScorerSpec:
    """The over-refusal axis's scorer: its name and options (``eval.overrefusal``)."""
    return _section_spec(settings, "overrefusal")


def _check_section_scorer(settings: EvalSettings, section: str, verdict: str, says: str, use: str) -> None:
    """A prompt axis's scorer (``eval.<section>``) known, giving the ``verdict`` the axis reads,
    with what it needs."""
    if getattr(settings, section) is None:
        return
    spec = _section_spec(settings, section)
    _check_needs(spec, settings)
    if verdict not in spec.cls.verdicts:
        raise ConfigError(f"{spec.where}: {spec.shown} does not say {says} (it gives {', '.join(sorted(spec.cls.verdicts))}); use {use}")


def check_overrefusal(settings: EvalSettings) -> None:
    """The over-refusal scorer known, able to say whether an answer refused, with what it needs."""
    _check_section_scorer(settings, "overrefusal", "refused", "whether an answer refused",
                          "classifier, string_matching, a rubric judge or wildguard")


def toxicity_spec(settings: EvalSettings) -> ScorerSpec:
    """The toxicity axis's scorer: its name and options (``eval.toxicity``)."""
    return _section_spec(settings, "toxicity")


def toxicity_needs_judge(settings: EvalSettings) -> bool:
    return settings.toxicity is not None and toxicity_spec(settings).cls.needs.judge


def check_toxicity(settings: EvalSettings) -> None:
    """The toxicity scorer known, able to say whether a text is toxic (a success verdict), with
    what it needs."""
    _check_section_scorer(settings, "toxicity", "success", "whether a text is toxic",
                          "toxigen_roberta, or a scorer with a success verdict")
