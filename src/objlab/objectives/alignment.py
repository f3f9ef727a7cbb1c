"""Alignment signals for the ``aware`` objective: score sampled responses in [0, 1] (1 = aligned).

``aware`` is only the method of Bhatt et al. when its signal is a real, external judgement of
the samples. The scorers, by name (``objectives.aware.scorer``, one name or a list):

- ``correctness``: hallucination avoidance on tasks with a checkable answer (GSM8K's final
  number): 1 when the sample states the reference answer, 0 when it states another, 0.5 when
  it states none (it neither helps nor misleads). Graded, deterministic, offline.
- ``lexicon``: 0 when a response contains a marker phrase of misaligned behaviour (harm,
  manipulation, contempt; ``alignment_markers.yaml``, objlab's own list), else 1.
- ``refusal``: objlab's offline refusal classifier (``evaluate.scoring.refusal``): 1 for a
  refusal, 0 for compliance. Only meaningful on prompts that call for a refusal.
- ``judge``: the study's judge model (``eval.judge``), asked how aligned the response is
  (objlab's own rubric, graded 1-10, mapped to [0, 1]); needs a configured judge.
- ``python:MODULE:FUNCTION``: any function ``(prompts, responses) -> scores in [0, 1]``.

Several names combine per sample by ``combine`` (``min``: aligned only if every signal says
so; ``mean``; ``product``). The default, ``auto``, is ``[correctness, lexicon]`` with ``min``
on tasks with checkable answers: the gate then fires on the task's own data (wrong or
unsupported answers), and any harmful phrasing still scores 0. On other tasks ``auto`` is an
error asking for ``judge`` or a function: an inert signal would make ``aware`` plain SFT.

``judge`` and ``refusal`` are evaluation instruments, defined beside them in
``evaluate/scoring/alignment_signals.py``. That module registers them here when imported; this
registry imports it on first use of those names, as a plugin entry point would, so that
``objectives/`` (below ``evaluate/``) never imports evaluation code at module level.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

import yaml

from objlab.data.answers import extract_flexible, extract_strict
from objlab.data.records import Example
from objlab.data.tasks import normalize_number
from objlab.errors import ConfigError

SCORER_NAMES = ("correctness", "lexicon", "refusal", "judge")
PYTHON_PREFIX = "python:"
COMBINERS: dict[str, Callable[[Sequence[float]], float]] = {
    "min": min,
    "mean": lambda scores: math.fsum(scores) / len(scores),
    "product": math.prod,
}
PROVIDERS = {"judge": "objlab.evaluate.scoring.alignment_signals", "refusal": "objlab.evaluate.scoring.alignment_signals"}
CHECKABLE_TASKS = ("gsm8k",)  # task adapters whose examples carry a checkable final answer


@dataclass(frozen=True)
class ScoreInput:
    """One sampled response to score, with the example it answers (its checkable answer)."""

    prompt: str
    response: str
    example: Example


@dataclass(frozen=True)
class ScorerServices:
    """What scorers may need from the study beyond their options: the judge's settings (a
    ``config.JudgeSettings``) and the task's name."""

    judge: Any = None
    task: str = ""


class AlignmentScorer(Protocol):
    identity: str

    def score(self, inputs: Sequence[ScoreInput]) -> list[float]: ...


Factory = Callable[[dict, ScorerServices], AlignmentScorer]
_FACTORIES: dict[str, Factory] = {}


def register_scorer(name: str) -> Callable[[Factory], Factory]:
    def register(factory: Factory) -> Factory:
        _FACTORIES[name] = factory
        return factory

    return register


def known_scorers() -> str:
    return ", ".join((*SCORER_NAMES, f"{PYTHON_PREFIX}MODULE:FUNCTION"))


def spec_problem(names: Sequence[str]) -> str | None:
    """Why ``names`` is not a valid scorer list (None when it is), naming what is available."""
    if not names:
        return f"at least one scorer is needed (available: {known_scorers()})"
    for name in names:
        if name.startswith(PYTHON_PREFIX):
            if name.count(":") != 2 or not all(name.split(":")[1:]):
                return f"{name!r} must be written {PYTHON_PREFIX}MODULE:FUNCTION"
        elif name not in SCORER_NAMES:
            return f"unknown scorer {name!r} (available: {known_scorers()})"
    return None


def resolve_auto(task: str) -> list[str] | None:
    """The default signal for ``task``: correctness + lexicon where answers are checkable."""
    return ["correctness", "lexicon"] if task in CHECKABLE_TASKS else None


def _factory(name: str) -> Factory:
    key = "python" if name.startswith(PYTHON_PREFIX) else name
    if key not in _FACTORIES and key in PROVIDERS:
        importlib.import_module(PROVIDERS[key])
    if key not in _FACTORIES:
        raise ConfigError(f"objectives.aware.scorer: unknown scorer {name!r} (available: {known_scorers()})")
    return _FACTORIES[key]


def build_scorer(names: Sequence[str], combine: str, options: dict[str, dict], services: ScorerServices) -> AlignmentScorer:
    """The scorer for ``names`` (one, or several combined per sample by ``combine``)."""
    problem = spec_problem(names)
    if problem:
        raise ConfigError(f"objectives.aware.scorer: {problem}")
    scorers = []
    for name in names:
        factory_options = dict(options.get(name, {}))
        if name.startswith(PYTHON_PREFIX):
            factory_options["function"] = name.removeprefix(PYTHON_PREFIX)
        try:
            scorers.append(_factory(name)(factory_options, services))
        except TypeError as error:
            raise ConfigError(f"objectives.aware.scorer_options.{name}: {error}") from None
    return scorers[0] if len(scorers) == 1 else CombinedScorer(scorers, combine)


def _checked(identity: str, scores: Sequence[float], count: int) -> list[float]:
    scores = [float(value) for value in scores]
    if len(scores) != count or any(not 0.0 <= value <= 1.0 for value in scores):
        raise ValueError(f"alignment scorer {identity} must return one score in [0, 1] per response, got {scores[:8]}")
    return scores


class CombinedScorer:
    """Several signals, combined per sample (``min``, ``mean`` or ``product``)."""

    def __init__(self, scorers: list[AlignmentScorer], combine: str) -> None:
        self.scorers, self.combine = scorers, COMBINERS[combine]
        self.identity = f"{combine}(" + ", ".join(scorer.identity for scorer in scorers) + ")"

    def score(self, inputs: Sequence[ScoreInput]) -> list[float]:
        columns = [_checked(scorer.identity, scorer.score(inputs), len(inputs)) for scorer in self.scorers]
        return [self.combine(values) for values in zip(*columns)]


@register_scorer("correctness")
class CorrectnessScorer:
    """1 = the reference answer stated, 0 = another answer stated, ``unanswered`` = none stated.
    The stated answer is the GSM8K ``####`` answer when there is one, else the last number."""

    def __init__(self, options: dict, services: ScorerServices) -> None:
        self.unanswered = float(options.pop("unanswered", 0.5))
        if options:
            raise TypeError(f"unknown option(s) {sorted(options)} (known: unanswered)")
        self.identity = f"correctness(unanswered={self.unanswered:g})"

    def score(self, inputs: Sequence[ScoreInput]) -> list[float]:
        scores = []
        for entry in inputs:
            expected = normalize_number(entry.example.answer) if entry.example.answer else None
            if expected is None:
                raise ValueError(f"{entry.example.id}: the correctness scorer needs a checkable answer (task data without one: use judge)")
            stated = extract_strict(entry.response) or extract_flexible(entry.response)
            scores.append(self.unanswered if stated is None else float(stated == expected))
        return scores


@register_scorer("lexicon")
class LexiconScorer:
    """0 when a response contains any marker phrase (case-insensitive), else 1."""

    def __init__(self, options: dict, services: ScorerServices) -> None:
        markers = options.pop("markers", None)
        if options:
            raise TypeError(f"unknown option(s) {sorted(options)} (known: markers)")
        source = "objlab markers" if markers is None else "configured markers"
        if markers is None:
            text = resources.files("objlab.objectives").joinpath("alignment_markers.yaml").read_text()
            markers = yaml.safe_load(text)["markers"]
        self.markers = [marker.lower() for marker in markers if marker.strip()]
        self.identity = f"lexicon({source}, {len(self.markers)})"

    def score(self, inputs: Sequence[ScoreInput]) -> list[float]:
        return [0.0 if any(marker in entry.response.lower() for marker in self.markers) else 1.0 for entry in inputs]


@register_scorer("python")
class PythonScorer:
    """Any function ``(prompts, responses) -> scores in [0, 1]``, named as ``module:function``."""

    def __init__(self, options: dict, services: ScorerServices) -> None:
        function = options.pop("function")
        module_name, _, attribute = function.partition(":")
        try:
            self._function = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError, ValueError) as error:
            raise ConfigError(f"objectives.aware.scorer: cannot import {function!r}: {error}") from None
        self._options = options
        self.identity = f"python:{function}"

    def score(self, inputs: Sequence[ScoreInput]) -> list[float]:
        prompts, responses = [entry.prompt for entry in inputs], [entry.response for entry in inputs]
        return _checked(self.identity, self._function(prompts, responses, **self._options), len(inputs))
