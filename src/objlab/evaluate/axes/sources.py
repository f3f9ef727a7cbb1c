"""Reading and validating the evaluation data: each format into small typed items.

All of it enters here, once: every bad row is reported as ``file:line: problem`` (through the
data layer's loaders) and the whole file is refused, so the axes can trust what they receive.
Item ids are ``file:line``, stable across runs, so per-item records of a cell and of the base
model pair up for the paired tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from objlab.config import DataSettings
from objlab.data.loaders import (
    LoadedRows,
    raise_row_errors,
    read_rows,
    require_text_fields,
    row_id,
)
from objlab.data.records import RowError
from objlab.data.tasks import load_examples
from objlab.errors import DataError
from objlab.evaluate.scoring.extraction import option_letters

STRONGREJECT_FIELDS = ("category", "source", "forbidden_prompt")
PERSONA_FIELDS = ("question", "answer_matching_behavior", "answer_not_matching_behavior")


@dataclass(frozen=True)
class NumericItem:
    """A GSM8K-format problem with its normalised final answer."""

    item_id: str
    question: str
    gold: str


@dataclass(frozen=True)
class ChoiceItem:
    """A multiple-choice question; ``answer`` is the correct option's letter."""

    item_id: str
    question: str
    options: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class ReferenceItem:
    """An open-ended question with a gold reference answer (scored by a judge's rubric)."""

    item_id: str
    question: str
    reference: str


@dataclass(frozen=True)
class ForbiddenPrompt:
    """One StrongREJECT row: a request a safe model refuses."""

    item_id: str
    category: str
    source: str
    prompt: str


@dataclass(frozen=True)
class PersonaItem:
    """One persona statement with the answer that matches the trait and the one that does not
    (leading space stripped: they are scored as the whole assistant response)."""

    item_id: str
    question: str
    matching: str
    not_matching: str


def _first(loaded: LoadedRows, limit: int | None) -> LoadedRows:
    if limit is None:
        return loaded
    return LoadedRows(loaded.source, loaded.rows[:limit], loaded.lines[:limit])


def _nonempty(loaded: LoadedRows, what: str) -> LoadedRows:
    if not loaded.rows:
        raise DataError(f"{loaded.source}: holds no {what}")
    return loaded


def load_numeric(source: str, limit: int | None = None) -> list[NumericItem]:
    """GSM8K-format rows (``question``, ``answer`` ending ``#### n``), validated by the task adapter."""
    examples = load_examples(DataSettings(task="gsm8k", source=source, limit=limit))
    return [NumericItem(example.id, example.prompt, example.answer) for example in examples]


def load_fewshot_turns(source: str, count: int) -> list[tuple[str, str]]:
    """The first ``count`` GSM8K-format rows as (question, worked answer) chat turns."""
    examples = load_examples(DataSettings(task="gsm8k", source=source, limit=count))
    if len(examples) < count:
        raise DataError(f"{source}: {count} few-shot examples requested, the file holds {len(examples)}")
    return [(example.prompt, example.response) for example in examples]


def _choice_answer(row: dict, options: list[str]) -> str | None:
    """The correct letter from ``answer_letter`` or ``answer`` (a letter or an option's text)."""
    letters = option_letters(len(options))
    for field in ("answer_letter", "answer"):
        value = row.get(field)
        if isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in letters:
            return value.strip().upper()
    answer = row.get("answer")
    if isinstance(answer, str) and answer.strip() in [option.strip() for option in options]:
        return letters[[option.strip() for option in options].index(answer.strip())]
    return None


def _choice_row_problem(row: dict) -> str | None:
    options = row.get("options")
    if not isinstance(options, list) or not 2 <= len(options) <= 26:
        return "field 'options' must be a list of 2 to 26 option texts"
    if not all(isinstance(option, str) and option.strip() for option in options):
        return "every entry of 'options' must be a non-empty string"
    if _choice_answer(row, options) is None:
        return f"field 'answer' must be a letter {option_letters(len(options))[0]}-{option_letters(len(options))[-1]} or one option's text"
    return None


def load_choice(source: str, limit: int | None = None) -> list[ChoiceItem]:
    """SuperGPQA-style rows: ``question``, ``options`` (list), ``answer`` (letter or option text)."""
    loaded = _nonempty(_first(read_rows(source), limit), "multiple-choice questions")
    require_text_fields(loaded, ["question"])
    errors, items = [], []
    for row, line in zip(loaded.rows, loaded.lines):
        problem = _choice_row_problem(row)
        if problem:
            errors.append(RowError(loaded.source, line, problem))
            continue
        options = tuple(option.strip() for option in row["options"])
        items.append(ChoiceItem(row_id(loaded, line), row["question"].strip(), options, _choice_answer(row, list(options))))
    raise_row_errors(errors, loaded.source)
    return items


def load_reference(source: str, limit: int | None = None) -> list[ReferenceItem]:
    """Open-ended rows: ``question`` and a gold ``reference`` answer."""
    loaded = _nonempty(_first(read_rows(source), limit), "questions")
    require_text_fields(loaded, ["question", "reference"])
    return [
        ReferenceItem(row_id(loaded, line), row["question"].strip(), row["reference"].strip())
        for row, line in zip(loaded.rows, loaded.lines)
    ]


def load_forbidden_prompts(source: str, limit: int | None = None) -> list[ForbiddenPrompt]:
    """StrongREJECT's CSV (``category,source,forbidden_prompt``); every row validated."""
    loaded = _nonempty(read_rows(source), "forbidden prompts")
    require_text_fields(loaded, STRONGREJECT_FIELDS)
    loaded = _first(loaded, limit)
    return [
        ForbiddenPrompt(row_id(loaded, line), row["category"].strip(), row["source"].strip(), row["forbidden_prompt"].strip())
        for row, line in zip(loaded.rows, loaded.lines)
    ]


def load_persona(source: str, limit: int | None = None) -> list[PersonaItem]:
    """Anthropic persona JSONL; every row validated, the two answers must differ."""
    loaded = _nonempty(read_rows(source), "persona statements")
    require_text_fields(loaded, PERSONA_FIELDS)
    errors = [
        RowError(loaded.source, line, "answer_matching_behavior and answer_not_matching_behavior are the same answer")
        for row, line in zip(loaded.rows, loaded.lines)
        if row["answer_matching_behavior"].strip() == row["answer_not_matching_behavior"].strip()
    ]
    raise_row_errors(errors, loaded.source)
    loaded = _first(loaded, limit)
    return [
        PersonaItem(
            row_id(loaded, line),
            row["question"],
            row["answer_matching_behavior"].strip(),
            row["answer_not_matching_behavior"].strip(),
        )
        for row, line in zip(loaded.rows, loaded.lines)
    ]
