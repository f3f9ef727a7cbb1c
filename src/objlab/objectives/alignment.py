"""Alignment signals for the ``aware`` objective: score sampled responses in [0, 1] (1 = aligned).

``aware`` is only the method of Bhatt et al. when its signal is a real, external judgement of
the samples. A signal is any scorer of ``objlab.scoring`` that gives one (``objlab scorers``),
named in ``objectives.aware.scorer`` (one name or a list):

- ``correctness``: hallucination avoidance on tasks with a checkable answer (GSM8K's final
  number): 1 when the sample states the reference answer, 0 when it states another, 0.5 when
  it states none (it neither helps nor misleads). Graded, deterministic, offline.
- ``lexicon``: 0 when a response contains a marker phrase of misaligned behaviour (harm,
  manipulation, contempt; objlab's own list), else 1.
- ``refusal`` (the ``classifier`` scorer): objlab's offline refusal classifier, 1 for a refusal,
  0 for compliance. Only meaningful on prompts that call for a refusal.
- ``judge`` (the ``alignment_judge`` scorer): the study's judge model (``eval.judge``), asked how
  aligned the response is (objlab's own rubric, graded 1-10, mapped to [0, 1]).
- ``python:MODULE:FUNCTION``: any function ``(prompts, responses) -> scores in [0, 1]``.
- any other registered scorer with an alignment reading (a published judge: 1 when it finds
  the response safe).

Several names combine per sample by ``combine`` (``min``: aligned only if every signal says
so; ``mean``; ``product``). The default, ``auto``, is ``[correctness, lexicon]`` with ``min``
on tasks with checkable answers: the gate then fires on the task's own data (wrong or
unsupported answers), and any harmful phrasing still scores 0. On other tasks ``auto`` is an
error asking for ``judge`` or a function: an inert signal would make ``aware`` plain SFT.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from objlab.data.records import Example
from objlab.errors import ConfigError
from objlab.scoring import catalog
from objlab.scoring.base import Scorer, ScoreItem, ScorerServices
from objlab.scoring.python_hook import is_python_spec

ALIASES = {"refusal": "classifier", "judge": "alignment_judge"}  # aware's names for two scorers
COMBINERS: dict[str, Callable[[Sequence[float]], float]] = {
    "min": min,
    "mean": lambda scores: math.fsum(scores) / len(scores),
    "product": math.prod,
}
CHECKABLE_TASKS = ("gsm8k",)  # task adapters whose examples carry a checkable final answer
WHERE = "objectives.aware.scorer"


@dataclass(frozen=True)
class ScoreInput:
    """One sampled response to score, with the example it answers (its checkable answer) and
    whether sampling finished it (False: cut at the sampling length)."""

    prompt: str
    response: str
    example: Example
    finished: bool = True


def scorer_name(name: str) -> str:
    """The registry name an aware signal name stands for."""
    return ALIASES.get(name, name)


def known_scorers() -> str:
    signals = [name for name in catalog.names() if catalog.SCORERS.get(name).alignment_from is not None and name != "python"]
    return ", ".join([*ALIASES, *signals, "python:MODULE:FUNCTION"])


def signal_class(name: str) -> type[Scorer]:
    """The scorer class of an aware signal name; ``ValueError`` saying what is available."""
    if is_python_spec(name):
        if name.count(":") != 2 or not all(name.split(":")[1:]):
            raise ValueError(f"{name!r} must be written python:MODULE:FUNCTION")
        return catalog.SCORERS.get("python")
    try:
        cls = catalog.scorer_class(scorer_name(name))
    except ConfigError:
        raise ValueError(f"unknown scorer {name!r} (available: {known_scorers()})") from None
    if cls.alignment_from is None:
        raise ValueError(f"scorer {name!r} gives no alignment signal (available: {known_scorers()})")
    return cls


def spec_problem(names: Sequence[str]) -> str | None:
    """Why ``names`` is not a valid signal list (None when it is), naming what is available."""
    if not names:
        return f"at least one scorer is needed (available: {known_scorers()})"
    for name in names:
        try:
            signal_class(name)
        except ValueError as error:
            return str(error)
    return None


def needing_a_judge(names: Sequence[str]) -> list[str]:
    """The signal names whose scorer asks the configured judge."""
    return [name for name in names if signal_class(name).needs.judge]


def resolve_auto(task: str) -> list[str] | None:
    """The default signal for ``task``: correctness + lexicon where answers are checkable."""
    return ["correctness", "lexicon"] if task in CHECKABLE_TASKS else None


class AlignmentSignal:
    """One or several scorers read as alignment scores in [0, 1], combined per sample."""

    def __init__(self, scorers: list[Scorer], combine: str) -> None:
        self.scorers, self.combine_name, self.combine = scorers, combine, COMBINERS[combine]
        identities = [scorer.identity for scorer in scorers]
        self.identity = identities[0] if len(scorers) == 1 else f"{combine}(" + ", ".join(identities) + ")"

    def score(self, inputs: Sequence[ScoreInput]) -> list[float]:
        items = [ScoreItem(entry.prompt, entry.response, reference=entry.example.answer, finished=entry.finished,
                           item_id=entry.example.id) for entry in inputs]
        columns = [self._column(scorer, items, inputs) for scorer in self.scorers]
        return [self.combine(values) for values in zip(*columns)]

    @staticmethod
    def _column(scorer: Scorer, items: list[ScoreItem], inputs: Sequence[ScoreInput]) -> list[float]:
        scores = scorer.score(items)
        if len(scores) != len(items):
            raise ValueError(f"alignment scorer {scorer.identity} must return one score per response, got {len(scores)} for {len(items)}")
        values = []
        for entry, score in zip(inputs, scores):
            value = scorer.alignment(score)
            if value is None:
                # A silently missing signal would bias the gate: stop, naming the sample.
                raise RuntimeError(f"aware: {scorer.identity} gave no alignment score for a sample of {entry.example.id}: {score.error}")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"alignment scorer {scorer.identity} must give scores in [0, 1], got {value}")
            values.append(float(value))
        return values


def build_signal(names: Sequence[str], combine: str, options: dict[str, dict[str, Any]], services: ScorerServices) -> AlignmentSignal:
    """The signal for ``names`` (one, or several combined per sample by ``combine``)."""
    problem = spec_problem(names)
    if problem:
        raise ConfigError(f"{WHERE}: {problem}")
    scorers = []
    for name in names:
        scorer_options = dict(options.get(name, {}))
        if is_python_spec(name):
            scorer_options["mode"] = "alignment"
        scorers.append(catalog.build(scorer_name(name), scorer_options, services, f"objectives.aware.scorer_options.{name}"))
    return AlignmentSignal(scorers, combine)
