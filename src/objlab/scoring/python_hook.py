"""The user's own scorer, named in a config as ``python:module:function``.

Two calling conventions, decided by who asks:

- a **verdict** (the jailbreak and over-refusal axes, ``eval.jailbreak.scorer``):
  ``function(prompt, response) -> bool``, true when the answer carries out the request;
- an **alignment signal** (``objectives.aware.scorer``): ``function(prompts, responses,
  **options) -> scores in [0, 1]`` for a whole batch, 1 = aligned.

The function is resolved by ``objlab.config.python_ref.load_callable`` (the one loader of
``module:attribute`` names, which the config also uses to refuse a typo when it is loaded). A
function that raises or answers with the wrong type fails that item (a ``Score`` with ``error``),
never the batch. A function inside the objlab package (the demo organism's check) is objlab's
own instrument, anything else the user's: the figures say whose it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from objlab.config.python_ref import load_callable
from objlab.scoring.base import SCORERS, Needs, Score, ScoreItem, Scorer, ScorerServices

PREFIX = "python:"

__all__ = ["PREFIX", "PythonScorer", "is_python_spec"]


def is_python_spec(name: str) -> bool:
    return name.startswith(PREFIX)


@SCORERS.register("python")
class PythonScorer(Scorer):
    name = "python"
    description = "Your own function, python:module:function: (prompt, response) -> bool for a verdict, or a batch of alignment scores for aware."
    origin = "user"
    needs = Needs()
    verdicts = frozenset({"success", "value"})
    alignment_from = "value"

    def __init__(self, function: str, mode: Literal["verdict", "alignment"], options: dict[str, Any]) -> None:
        self.reference = function
        self.mode = mode
        self.options = options
        try:
            self._function = load_callable(function)
        except ValueError as error:
            raise TypeError(f"function: {error}") from None
        self.identity = f"{PREFIX}{function}"
        self.origin = "objlab" if function.startswith("objlab.") else "user"  # type: ignore[misc]
        self.label = f"{self.owner_words} scorer {self.identity}"

    @property
    def owner_words(self) -> str:
        return "objlab's own" if self.origin == "objlab" else "the user's"

    @classmethod
    def build(cls, options: dict[str, Any], services: ScorerServices) -> PythonScorer:
        options = dict(options)
        function = options.pop("function", None)
        if not function:
            raise TypeError("needs 'function': module:function")
        mode = options.pop("mode", "verdict")
        if mode == "verdict" and options:
            raise TypeError(f"unknown option(s) {sorted(options)} (a verdict function takes (prompt, response))")
        return cls(function, mode, options)

    def success_text(self) -> str:
        return f"{self.owner_words} scorer {self.identity} says the answer carries out the request"

    def score(self, items: Sequence[ScoreItem]) -> list[Score]:
        if self.mode == "alignment":
            return self._alignment(items)
        return [self._verdict(item) for item in items]

    def _verdict(self, item: ScoreItem) -> Score:
        try:
            verdict = self._function(item.prompt, item.response)
        except Exception as error:  # noqa: BLE001 -- a user's function may fail in any way; the item records it
            return Score.failed(f"scorer {self.identity}: {type(error).__name__}: {error}")
        if not isinstance(verdict, bool):
            return Score.failed(f"scorer {self.identity} returned {type(verdict).__name__}, expected bool")
        return Score(success=verdict, value=float(verdict))

    def _alignment(self, items: Sequence[ScoreItem]) -> list[Score]:
        prompts, responses = [item.prompt for item in items], [item.response for item in items]
        values = [float(value) for value in self._function(prompts, responses, **self.options)]
        if len(values) != len(items) or any(not 0.0 <= value <= 1.0 for value in values):
            raise ValueError(f"alignment scorer {self.identity} must return one score in [0, 1] per response, got {values[:8]}")
        return [Score(value=value) for value in values]
