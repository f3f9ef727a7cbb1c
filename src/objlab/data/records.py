"""Typed records passed between objlab's stages.

Every stage boundary in objlab passes one of these small frozen dataclasses rather than
dicts with magic keys, so a stage can trust the shape of what it receives. They are created
(and validated) once, at the edge where data enters: the loaders and task adapters.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    """One supervised task example: a user prompt and its reference response.

    ``id`` is stable across runs (derived from the source file and line, or the dataset row),
    so per-item records and caches can refer to it. ``rejected`` is only set when the task data
    itself carries a dispreferred response (the ``column`` rejected-response strategy).
    ``answer`` holds the gold final answer where the task defines one (GSM8K's ``#### n``).
    """

    id: str
    prompt: str
    response: str
    rejected: str | None = None
    answer: str | None = None
    source: str = ""


@dataclass(frozen=True)
class PreferenceExample:
    """A prompt with a preferred (the task's reference) and a dispreferred response."""

    id: str
    prompt: str
    chosen: str
    rejected: str


@dataclass(frozen=True)
class EncodedPair:
    """A (prompt, response) pair tokenised with the model's chat template.

    ``prompt_ids`` already contain the template's generation prompt; ``response_ids`` contain
    the response and the template's end-of-turn tokens, which are trained on.
    """

    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)


@dataclass(frozen=True)
class StreamItem:
    """One example as the shared task stream hands it to every objective.

    ``position`` is the index in the ordered stream (0-based, across epochs); ``task_tokens``
    is what the example costs in the token budget: prompt + reference response as tokenised
    with the chat template, identical for every objective.
    """

    position: int
    example: Example
    encoded: EncodedPair

    @property
    def task_tokens(self) -> int:
        return self.encoded.length


@dataclass(frozen=True)
class RowError:
    """Where a bad input row is and what was wrong with it (used in error messages)."""

    source: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.problem}"


@dataclass(frozen=True)
class LoadedRows:
    """Raw rows read from a file or dataset, each with the line/row it came from."""

    source: str
    rows: list[dict] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
