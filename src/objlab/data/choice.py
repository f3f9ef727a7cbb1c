"""Multiple-choice rows (SuperGPQA's format): validation, the prompt and the answer turn.

Training on multiple choice (the ``supergpqa`` task) and evaluating it (the ``multiple_choice``
capability kind) must show the model the same text: the question, the options as ``A. text``
lines and one instruction, answered with ``The answer is (X).``. Both read a row through this
module, so a change of wording cannot reach one side only.

A row has ``question``, ``options`` (a list of 2 to 26 texts) and the correct option as
``answer_letter`` or ``answer`` (a letter, or one option's exact text: SuperGPQA gives both).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from objlab.data.loaders import raise_row_errors
from objlab.data.records import LoadedRows, RowError

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CHOICE_INSTRUCTION = "Answer with the letter of the correct option."
ANSWER_FIELDS = ("answer_letter", "answer")


def option_letters(count: int) -> str:
    """The letters naming ``count`` options: A, B, C, ..."""
    return LETTERS[:count]


def choice_prompt(question: str, options: tuple[str, ...] | list[str]) -> str:
    """The question, its options as ``A. text`` lines, and the instruction to answer by letter."""
    lines = [f"{letter}. {option}" for letter, option in zip(option_letters(len(options)), options)]
    return f"{question}\n\n" + "\n".join(lines) + f"\n\n{CHOICE_INSTRUCTION}"


def choice_answer_turn(letter: str) -> str:
    """The assistant turn that answers with ``letter`` (few-shot turns and training responses)."""
    return f"The answer is ({letter})."


def choice_answer(row: dict, options: list[str]) -> str | None:
    """The correct letter from ``answer_letter`` or ``answer`` (a letter or an option's text)."""
    letters = option_letters(len(options))
    for field in ANSWER_FIELDS:
        value = row.get(field)
        if isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in letters:
            return value.strip().upper()
    answer = row.get("answer")
    stripped = [option.strip() for option in options]
    if isinstance(answer, str) and answer.strip() in stripped:
        return letters[stripped.index(answer.strip())]
    return None


def choice_row_problem(row: dict) -> str | None:
    """What is wrong with a multiple-choice row (None when it is usable)."""
    options = row.get("options")
    if not isinstance(options, list) or not 2 <= len(options) <= len(LETTERS):
        return f"field 'options' must be a list of 2 to {len(LETTERS)} option texts"
    if not all(isinstance(option, str) and option.strip() for option in options):
        return "every entry of 'options' must be a non-empty string"
    if choice_answer(row, options) is None:
        letters = option_letters(len(options))
        return f"field 'answer' must be a letter {letters[0]}-{letters[-1]} or one option's text"
    return None


@dataclass(frozen=True)
class ChoiceRow:
    """A validated multiple-choice row: the row, its line, its options (stripped) and the
    correct letter."""

    row: dict
    line: int
    options: tuple[str, ...]
    letter: str


def choice_rows(loaded: LoadedRows) -> Iterator[ChoiceRow]:
    """Every row of ``loaded`` as a ``ChoiceRow``, once all are valid: the rows with a problem
    are refused together, each named by file and line."""
    errors, rows = [], []
    for row, line in zip(loaded.rows, loaded.lines):
        problem = choice_row_problem(row)
        if problem:
            errors.append(RowError(loaded.source, line, problem))
            continue
        options = tuple(option.strip() for option in row["options"])
        rows.append(ChoiceRow(row, line, options, choice_answer(row, list(options))))
    raise_row_errors(errors, loaded.source)
    return iter(rows)
