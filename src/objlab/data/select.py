"""Choosing and renaming rows before a task adapter or an evaluation loader reads them.

The paper's domains come as one big table or one split: SuperGPQA holds every discipline in a
single ``train`` split, the cybersecurity and legal sets publish ``train`` only. ``where`` keeps
the rows of one discipline (``{discipline: Engineering}``); ``holdout`` splits a source into a
training side and an evaluation side by a hash of each row, so a config can train on one side
and evaluate on the other with no row in both; ``rename_fields`` maps a source's own column
names onto the ones a loader reads (``{question: user, reference: assistant}``). Every problem
is reported as ``file:line: what is wrong``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from objlab.config.sections import HoldoutSettings
from objlab.data.loaders import raise_row_errors
from objlab.data.records import LoadedRows, RowError
from objlab.errors import DataError

HOLDOUT_SALT = "objlab-holdout"
MAX_SHOWN_VALUES = 10


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def holdout_position(row: dict, key: str | None) -> float:
    """Where the row falls in [0, 1): a hash of its key field (or of the whole row)."""
    identity = _text(row[key]) if key is not None else json.dumps(row, sort_keys=True, default=str)
    digest = hashlib.sha256(f"{HOLDOUT_SALT}:{identity}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _matches(value, wanted: str | list[str]) -> bool:
    allowed = [wanted] if isinstance(wanted, str) else wanted
    return _text(value).strip() in [entry.strip() for entry in allowed]


def _no_match(loaded: LoadedRows, where: Mapping[str, str | list[str]]) -> DataError:
    seen = {field: sorted({_text(row.get(field)) for row in loaded.rows})[:MAX_SHOWN_VALUES] for field in where}
    shown = "; ".join(f"{field}: {', '.join(values)}" for field, values in seen.items())
    return DataError(f"{loaded.source}: no row matches where {dict(where)} (values seen, first {MAX_SHOWN_VALUES}: {shown})")


def select_rows(loaded: LoadedRows, where: Mapping[str, str | list[str]] | None = None,
                holdout: HoldoutSettings | None = None) -> LoadedRows:
    """The rows that match ``where`` and fall on ``holdout``'s kept side, with their lines."""
    if not where and holdout is None:
        return loaded
    fields = list(where or {}) + ([holdout.key] if holdout is not None and holdout.key else [])
    errors = [RowError(loaded.source, line, f"missing field {field!r} (used to select rows)")
              for row, line in zip(loaded.rows, loaded.lines) for field in fields if field not in row]
    raise_row_errors(errors, loaded.source)
    kept, matched = LoadedRows(loaded.source), 0
    for row, line in zip(loaded.rows, loaded.lines):
        if where and not all(_matches(row[field], wanted) for field, wanted in where.items()):
            continue
        matched += 1
        if holdout is not None and (holdout_position(row, holdout.key) < holdout.fraction) != (holdout.keep == "test"):
            continue
        kept.rows.append(row)
        kept.lines.append(line)
    if where and not matched:
        raise _no_match(loaded, where)  # a misspelt value must not read as an empty benchmark
    return kept


def rename_fields(loaded: LoadedRows, fields: Mapping[str, str] | None) -> LoadedRows:
    """Each row with ``name`` set to its ``column``'s value, for every ``name: column`` in
    ``fields`` (the loader then reads ``name``); a missing column is a row error."""
    if not fields:
        return loaded
    errors, rows = [], []
    for row, line in zip(loaded.rows, loaded.lines):
        missing = [column for column in fields.values() if column not in row]
        for column in missing:
            names = [name for name, mapped in fields.items() if mapped == column]
            errors.append(RowError(loaded.source, line, f"missing field {column!r} (read as {', '.join(names)}; has: {', '.join(sorted(row)) or 'none'})"))
        rows.append({**row, **{name: row.get(column) for name, column in fields.items()}})
    raise_row_errors(errors, loaded.source)
    return LoadedRows(loaded.source, rows, list(loaded.lines))
