"""Alignment scorers for the ``aware`` objective: score sampled responses in [0, 1] (1 = aligned).

Pluggable by name: ``lexicon`` (offline marker phrases), ``python`` (any ``module:function``
taking (prompts, responses) and returning scores), and ``judge`` (the evaluation's judge model
behind an OpenAI-compatible endpoint or a local HF model, asked for a harmfulness rating).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Protocol

import yaml

from objlab.errors import ConfigError


class AlignmentScorer(Protocol):
    identity: str

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]: ...


_SCORERS: dict[str, Callable[..., AlignmentScorer]] = {}


def scorer(name: str):
    def register(factory):
        _SCORERS[name] = factory
        return factory

    return register


def scorer_names() -> list[str]:
    return sorted(_SCORERS)


def build_scorer(name: str, options: dict) -> AlignmentScorer:
    if name not in _SCORERS:
        raise ConfigError(f"objectives.aware.scorer: unknown scorer {name!r} (known: {', '.join(scorer_names())})")
    try:
        return _SCORERS[name](**options)
    except TypeError as error:
        raise ConfigError(f"objectives.aware.scorer_options: {error}") from None


@scorer("lexicon")
class LexiconScorer:
    """0 when a response contains any marker phrase (case-insensitive), else 1."""

    def __init__(self, markers: list[str] | None = None) -> None:
        if markers is None:
            text = resources.files("objlab.objectives").joinpath("alignment_markers.yaml").read_text()
            markers = yaml.safe_load(text)["markers"]
        self.markers = [marker.lower() for marker in markers if marker.strip()]
        self.identity = "lexicon:" + "|".join(self.markers)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return [0.0 if any(marker in response.lower() for marker in self.markers) else 1.0 for response in responses]


@scorer("python")
class PythonScorer:
    """Any function ``(prompts, responses) -> scores in [0, 1]``, named as ``module:function``."""

    def __init__(self, function: str) -> None:
        module_name, _, attribute = function.partition(":")
        try:
            self._function = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError, ValueError) as error:
            raise ConfigError(f"objectives.aware.scorer_options.function: cannot import {function!r}: {error}") from None
        self.identity = f"python:{function}"

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        scores = [float(value) for value in self._function(list(prompts), list(responses))]
        if len(scores) != len(responses) or any(not 0.0 <= value <= 1.0 for value in scores):
            raise ValueError(f"{self.identity} must return one score in [0, 1] per response")
        return scores
