"""Task adapters: turn validated rows of a task's data into ``Example`` records.

A task adapter knows one data format. ``gsm8k`` reads GSM8K's ``question``/``answer`` rows
(the answer ends with ``#### n``); ``instruction`` reads any prompt/response pair of columns;
``supergpqa``, ``cybersecurity`` and ``legal_qa`` read the reference study's other domains
(``data.domains``). Adding a format is one function registered with ``@task_adapter("name")``
(``TASKS``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from objlab.config.sections import DataSettings
from objlab.data.loaders import (
    LoadedRows,
    raise_row_errors,
    read_rows,
    require_text_fields,
    row_id,
)
from objlab.data.records import Example, RowError
from objlab.data.select import select_rows
from objlab.errors import ConfigError
from objlab.registry import Registry

TaskAdapter = Callable[[LoadedRows, DataSettings], list[Example]]
TASKS: Registry[TaskAdapter] = Registry("task adapter")

GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)


def task_adapter(name: str) -> Callable[[TaskAdapter], TaskAdapter]:
    """Register a task adapter under ``name`` (``data.task`` in the config)."""
    return TASKS.register(name, replace=True)


register = task_adapter  # objlab.data.tasks.register("name"), as the README shows


def task_names() -> list[str]:
    return sorted(TASKS.names())


def _adapter(settings: DataSettings) -> TaskAdapter:
    if settings.task not in TASKS:
        raise ConfigError(f"data.task: unknown task {settings.task!r} (known: {', '.join(task_names())})")
    return TASKS.get(settings.task)


def normalize_number(text: str) -> str | None:
    """A numeric answer in canonical form ("1,234.50" -> "1234.5"), or None if not a number."""
    cleaned = text.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def gsm8k_final_answer(answer: str) -> str | None:
    """The ``#### n`` number at the end of a GSM8K solution, normalised; None when absent."""
    match = GSM8K_FINAL.search(answer)
    return normalize_number(match.group(1)) if match else None


def _rejected_column(row: dict, settings: DataSettings) -> str | None:
    if settings.rejected.strategy != "column":
        return None
    return row[settings.rejected.column]


@task_adapter("gsm8k")
def gsm8k_examples(loaded: LoadedRows, settings: DataSettings) -> list[Example]:
    """GSM8K rows: ``question`` is the prompt, ``answer`` the worked solution ending ``#### n``."""
    fields = ["question", "answer"] + ([settings.rejected.column] if settings.rejected.strategy == "column" else [])
    require_text_fields(loaded, fields)
    errors, examples = [], []
    for row, line in zip(loaded.rows, loaded.lines):
        final = gsm8k_final_answer(row["answer"])
        if final is None:
            errors.append(RowError(loaded.source, line, "field 'answer' must end with '#### <number>'"))
            continue
        examples.append(
            Example(
                id=row_id(loaded, line),
                prompt=row["question"].strip(),
                response=row["answer"].strip(),
                rejected=_rejected_column(row, settings),
                answer=final,
                source=loaded.source,
            )
        )
    raise_row_errors(errors, loaded.source)
    return examples


@task_adapter("instruction")
def instruction_examples(loaded: LoadedRows, settings: DataSettings) -> list[Example]:
    """Any instruction data: ``prompt_field`` and ``response_field`` name the columns
    (defaults ``prompt`` and ``response``)."""
    prompt_field = settings.prompt_field or "prompt"
    response_field = settings.response_field or "response"
    fields = [prompt_field, response_field]
    if settings.rejected.strategy == "column":
        fields.append(settings.rejected.column)
    require_text_fields(loaded, fields)
    return [
        Example(
            id=row_id(loaded, line),
            prompt=row[prompt_field].strip(),
            response=row[response_field].strip(),
            rejected=_rejected_column(row, settings),
            source=loaded.source,
        )
        for row, line in zip(loaded.rows, loaded.lines)
    ]


def adapt_rows(loaded: LoadedRows, settings: DataSettings) -> list[Example]:
    """Validate and adapt already read rows with the task's adapter: one example per row, in
    order (a bad row refuses the whole source)."""
    return _adapter(settings)(loaded, settings)


def load_examples(settings: DataSettings) -> list[Example]:
    """Read, validate and adapt the configured task data; ``where`` and ``holdout`` choose
    rows (``data.select``), then ``limit`` keeps the first of them."""
    _adapter(settings)
    loaded = read_rows(settings.source, hf_config=settings.hf_config, split=settings.split)
    loaded = select_rows(loaded, settings.where, settings.holdout)
    if settings.limit is not None:
        loaded = LoadedRows(loaded.source, loaded.rows[: settings.limit], loaded.lines[: settings.limit])
    examples = adapt_rows(loaded, settings)
    if not examples:
        raise ConfigError(f"data.source: {settings.source} holds no examples")
    return examples


# the reference study's other domains, imported when first used (data.domains registers them)
for _name, _function in (("supergpqa", "supergpqa_examples"), ("cybersecurity", "cybersecurity_examples"), ("legal_qa", "legal_qa_examples")):
    TASKS.register(_name, target=f"objlab.data.domains:{_function}")
