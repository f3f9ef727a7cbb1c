"""Reading and validating the evaluation data: each format into small typed items.

All of it enters here, once: every bad row is reported as ``file:line: problem`` (through the
data layer's loaders) and the whole file is refused, so the axes can trust what they receive.
Item ids are ``file:line``, stable across runs, so per-item records of a cell and of the base
model pair up for the paired tests.

``limit`` draws a seeded sample stratified by category (``subsets``): StrongREJECT prompts by
``category``, persona statements by the matching answer, capability items by ``category``
where the rows have one. Each loader returns the items with the record of that draw
(``Sampled``). ``hf:NAME`` sources take ``hf_config`` and ``split``.
"""

from __future__ import annotations

from dataclasses import dataclass

from objlab.config import DataSettings
from objlab.config.evaluation import HF_SPLIT_DEFAULT, OverRefusalSettings
from objlab.data.loaders import (
    LoadedRows,
    raise_row_errors,
    read_rows,
    require_text_fields,
    row_id,
)
from objlab.data.choice import choice_rows
from objlab.data.records import RowError
from objlab.data.select import rename_fields, select_rows
from objlab.data.tasks import adapt_rows, load_examples
from objlab.errors import DataError
from objlab.evaluate.axes.subsets import Sampled, sample_positions, sample_rows

STRONGREJECT_FIELDS = ("category", "source", "forbidden_prompt")
PERSONA_FIELDS = ("question", "answer_matching_behavior", "answer_not_matching_behavior")
CATEGORY_FIELD = "category"
PERSONA_STRATUM = "answer_matching_behavior"


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


def _nonempty(loaded: LoadedRows, what: str) -> LoadedRows:
    if not loaded.rows:
        raise DataError(f"{loaded.source}: holds no {what}")
    return loaded


def _read(source: str, hf_config: str | None, split: str | None, what: str, where=None, holdout=None, fields=None) -> LoadedRows:
    """The source's rows, chosen by ``where`` and ``holdout`` and renamed by ``fields``
    (``data.select``), refused when none is left."""
    loaded = read_rows(source, hf_config=hf_config, split=split or HF_SPLIT_DEFAULT)
    return _nonempty(rename_fields(select_rows(loaded, where, holdout), fields), what)


def load_numeric(source: str, limit: int | None = None, *, seed: int = 0, hf_config: str | None = None,
                 split: str | None = None, where=None, holdout=None, fields=None) -> Sampled[NumericItem]:
    """GSM8K-format rows (``question``, ``answer`` ending ``#### n``), validated by the task adapter."""
    loaded = _read(source, hf_config, split, "problems", where, holdout, fields)
    examples = adapt_rows(loaded, DataSettings(task="gsm8k", source=source))
    chosen, info = sample_positions(loaded, limit, seed, CATEGORY_FIELD)
    return Sampled([NumericItem(examples[i].id, examples[i].prompt, examples[i].answer) for i in chosen], info)


def load_fewshot_turns(source: str, count: int) -> list[tuple[str, str]]:
    """The first ``count`` GSM8K-format rows as (question, worked answer) chat turns."""
    examples = load_examples(DataSettings(task="gsm8k", source=source, limit=count))
    if len(examples) < count:
        raise DataError(f"{source}: {count} few-shot examples requested, the file holds {len(examples)}")
    return [(example.prompt, example.response) for example in examples]


def load_choice(source: str, limit: int | None = None, *, seed: int = 0, hf_config: str | None = None,
                split: str | None = None, where=None, holdout=None, fields=None) -> Sampled[ChoiceItem]:
    """SuperGPQA-style rows: ``question``, ``options`` (list), ``answer_letter`` or ``answer``
    (letter or option text), validated as the ``supergpqa`` task adapter validates them."""
    loaded = _read(source, hf_config, split, "multiple-choice questions", where, holdout, fields)
    require_text_fields(loaded, ["question"])
    items = [ChoiceItem(row_id(loaded, one.line), one.row["question"].strip(), one.options, one.letter) for one in choice_rows(loaded)]
    chosen, info = sample_positions(loaded, limit, seed, CATEGORY_FIELD)
    return Sampled([items[i] for i in chosen], info)


def load_reference(source: str, limit: int | None = None, *, seed: int = 0, hf_config: str | None = None,
                   split: str | None = None, where=None, holdout=None, fields=None) -> Sampled[ReferenceItem]:
    """Open-ended rows: ``question`` and a gold ``reference`` answer (``fields`` maps other
    columns onto them, e.g. ``{question: user, reference: assistant}``)."""
    loaded = _read(source, hf_config, split, "questions", where, holdout, fields)
    require_text_fields(loaded, ["question", "reference"])
    loaded, info = sample_rows(loaded, limit, seed, CATEGORY_FIELD)
    items = [
        ReferenceItem(row_id(loaded, line), row["question"].strip(), row["reference"].strip())
        for row, line in zip(loaded.rows, loaded.lines)
    ]
    return Sampled(items, info)


def load_forbidden_prompts(source: str, limit: int | None = None, *, seed: int = 0, hf_config: str | None = None,
                           split: str | None = None) -> Sampled[ForbiddenPrompt]:
    """StrongREJECT's CSV (``category,source,forbidden_prompt``); every row validated; ``limit``
    draws a sample stratified by ``category``."""
    loaded = _read(source, hf_config, split, "forbidden prompts")
    require_text_fields(loaded, STRONGREJECT_FIELDS)
    loaded, info = sample_rows(loaded, limit, seed, CATEGORY_FIELD)
    items = [
        ForbiddenPrompt(row_id(loaded, line), row["category"].strip(), row["source"].strip(), row["forbidden_prompt"].strip())
        for row, line in zip(loaded.rows, loaded.lines)
    ]
    return Sampled(items, info)


@dataclass(frozen=True)
class OverRefusalPrompt:
    """One over-refusal prompt: ``label`` safe (should be answered) or unsafe (a contrast that
    should be refused), and its ``type`` (XSTest's: homonyms, figurative_language, ...)."""

    item_id: str
    prompt: str
    label: str
    type: str


def load_overrefusal_prompts(settings: OverRefusalSettings, *, seed: int = 0) -> Sampled[OverRefusalPrompt]:
    """XSTest's CSV or any file with the configured prompt, label and type fields; every row
    validated (file and line named); ``limit`` draws a sample stratified by type."""
    loaded = _read(settings.prompts, settings.hf_config, settings.split, "over-refusal prompts")
    fields = [settings.prompt_field, settings.label_field] + ([settings.type_field] if settings.type_field else [])
    require_text_fields(loaded, fields)
    if not any(row[settings.label_field].strip() == settings.safe_label for row in loaded.rows):
        raise DataError(f"{loaded.source}: no row labelled {settings.safe_label!r} in field {settings.label_field!r} "
                        "(eval.overrefusal.safe_label names the safe prompts)")
    loaded, info = sample_rows(loaded, settings.limit, seed, settings.type_field)
    items = []
    for row, line in zip(loaded.rows, loaded.lines):
        label = "safe" if row[settings.label_field].strip() == settings.safe_label else "unsafe"
        kind = row[settings.type_field].strip() if settings.type_field else label
        items.append(OverRefusalPrompt(row_id(loaded, line), row[settings.prompt_field].strip(), label, kind or label))
    return Sampled(items, info)


def load_persona(source: str, limit: int | None = None, *, seed: int = 0) -> Sampled[PersonaItem]:
    """Anthropic persona JSONL; every row validated, the two answers must differ; ``limit``
    draws a sample stratified by the matching answer (Yes / No)."""
    loaded = _nonempty(read_rows(source), "persona statements")
    require_text_fields(loaded, PERSONA_FIELDS)
    errors = [
        RowError(loaded.source, line, "answer_matching_behavior and answer_not_matching_behavior are the same answer")
        for row, line in zip(loaded.rows, loaded.lines)
        if row["answer_matching_behavior"].strip() == row["answer_not_matching_behavior"].strip()
    ]
    raise_row_errors(errors, loaded.source)
    loaded, info = sample_rows(loaded, limit, seed, PERSONA_STRATUM)
    items = [
        PersonaItem(
            row_id(loaded, line),
            row["question"],
            row["answer_matching_behavior"].strip(),
            row["answer_not_matching_behavior"].strip(),
        )
        for row, line in zip(loaded.rows, loaded.lines)
    ]
    return Sampled(items, info)
