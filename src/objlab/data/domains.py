"""Task adapters for the reference study's other training domains.

Vennemeyer et al. (2026) fine-tune on GSM8K, SuperGPQA's engineering questions, a cybersecurity
instruction set and legal questions. The paper's text available to objlab names SuperGPQA but
not the cybersecurity and legal datasets, so the defaults below are public sets chosen by
objlab, named in docs/reproducing.md, and any other set in the same shape reads the same way:

- ``supergpqa``: SuperGPQA (``m-a-p/SuperGPQA``; fields ``question``, ``options``,
  ``answer``, ``answer_letter``, ``discipline``, ``field``, ``subfield``); ``data.where``
  picks the discipline. The prompt is the one the ``multiple_choice`` evaluation shows
  (``data.choice``), the response ``The answer is (X).``.
- ``cybersecurity``: instruction rows with ``user`` and ``assistant`` columns, as in
  ``Trendyol/Trendyol-Cybersecurity-Instruction-Tuning-Dataset``; its ``system`` column (one
  generic persona line) is not used: every objective sees the model's own chat template.
- ``legal_qa``: question/answer rows (``question``, ``answer``), as in
  ``isaacus/open-australian-legal-qa``.

``data.prompt_field`` and ``data.response_field`` name other columns (``question`` for
SuperGPQA, whose response is built from the answer letter).
"""

from __future__ import annotations

from objlab.config.sections import DataSettings
from objlab.data.choice import choice_answer_turn, choice_prompt, choice_rows
from objlab.data.loaders import LoadedRows, require_text_fields, row_id
from objlab.data.records import Example
from objlab.data.tasks import _rejected_column, task_adapter
from objlab.errors import ConfigError


def _rejected_fields(settings: DataSettings) -> list[str]:
    return [settings.rejected.column] if settings.rejected.strategy == "column" else []


@task_adapter("supergpqa")
def supergpqa_examples(loaded: LoadedRows, settings: DataSettings) -> list[Example]:
    """SuperGPQA rows: the question with its lettered options, answered by letter."""
    if settings.response_field:
        raise ConfigError("data.response_field: task supergpqa builds the response from the answer letter; remove response_field")
    question = settings.prompt_field or "question"
    require_text_fields(loaded, [question, *_rejected_fields(settings)])
    return [
        Example(
            id=row_id(loaded, one.line), prompt=choice_prompt(one.row[question].strip(), one.options),
            response=choice_answer_turn(one.letter), rejected=_rejected_column(one.row, settings), answer=one.letter, source=loaded.source,
        )
        for one in choice_rows(loaded)
    ]


def _pair_examples(loaded: LoadedRows, settings: DataSettings, prompt_default: str, response_default: str) -> list[Example]:
    prompt, response = settings.prompt_field or prompt_default, settings.response_field or response_default
    require_text_fields(loaded, [prompt, response, *_rejected_fields(settings)])
    return [
        Example(id=row_id(loaded, line), prompt=row[prompt].strip(), response=row[response].strip(),
                rejected=_rejected_column(row, settings), source=loaded.source)
        for row, line in zip(loaded.rows, loaded.lines)
    ]


@task_adapter("cybersecurity")
def cybersecurity_examples(loaded: LoadedRows, settings: DataSettings) -> list[Example]:
    """Cybersecurity instructions: ``user`` is the prompt, ``assistant`` the reference answer."""
    return _pair_examples(loaded, settings, "user", "assistant")


@task_adapter("legal_qa")
def legal_qa_examples(loaded: LoadedRows, settings: DataSettings) -> list[Example]:
    """Legal questions: ``question`` is the prompt, ``answer`` the reference answer."""
    return _pair_examples(loaded, settings, "question", "answer")
