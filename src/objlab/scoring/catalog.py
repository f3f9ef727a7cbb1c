"""Every scorer objlab knows, by name: objlab's own modules are imported here, so looking a
scorer up through this module always sees them (a user's scorer registers itself into
``SCORERS`` when its module is imported, e.g. with ``objlab --plugin``).

A scorer is named in a config by its registry name (``classifier``, ``strongreject_rubric``,
...), or as ``python:module:function`` for the user's own function. ``build`` makes one from
its name, its options and the services the caller lends it, and turns a bad option into a
``ConfigError`` naming the config field.
"""

from __future__ import annotations

from typing import Any

from objlab.errors import ConfigError
from objlab.registry import RegistryError
from objlab.scoring import refusal, string_matching, rubric_judges, published, toxicity, correctness, lexicon, python_hook  # noqa: F401, I001 -- register themselves, in this (listing) order
from objlab.scoring.base import SCORERS, Scorer, ScorerServices
from objlab.scoring.python_hook import PREFIX, is_python_spec

__all__ = ["SCORERS", "build", "names", "scorer_class", "split_spec"]


def names() -> list[str]:
    """Registered scorer names, objlab's own first."""
    return SCORERS.names()


def split_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """(registry name, options implied by the name): ``python:m:f`` is the ``python`` scorer
    with ``function: m:f``; any other name stands for itself."""
    if is_python_spec(spec):
        return "python", {"function": spec.removeprefix(PREFIX)}
    return spec, {}


def scorer_class(spec: str, where: str = "scorer") -> type[Scorer]:
    """The class a scorer name stands for; ``ConfigError`` naming ``where`` when unknown."""
    name, _ = split_spec(spec)
    try:
        return SCORERS.get(name)
    except RegistryError:
        raise ConfigError(f"{where}: unknown scorer {spec!r} (registered: {', '.join(names())}, or python:module:function)") from None


def build(spec: str, options: dict[str, Any] | None, services: ScorerServices, where: str = "scorer") -> Scorer:
    """A ready scorer: ``spec`` is its name (or ``python:module:function``), ``options`` its
    settings; an option it does not take, or a need the services cannot meet, is a
    ``ConfigError`` naming ``where``."""
    cls = scorer_class(spec, where)
    _, implied = split_spec(spec)
    try:
        return cls.build({**implied, **(options or {})}, services)
    except TypeError as error:
        raise ConfigError(f"{where}: {spec}: {error}") from None
