"""Reading rows from JSONL, JSON, CSV files and ``datasets`` datasets, with row-level validation.

Every row keeps the line (or row number) it came from, so a bad row is reported as
``file:line: what is wrong``. Nothing is skipped silently: a file with bad rows is refused with
the first few listed and the total count.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from objlab.data.records import LoadedRows, RowError
from objlab.errors import DataError

MAX_LISTED_ERRORS = 10


def _read_jsonl(path: Path) -> LoadedRows:
    loaded = LoadedRows(source=str(path))
    errors: list[RowError] = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                errors.append(RowError(str(path), line_number, f"not valid JSON ({error.msg} at column {error.colno})"))
                continue
            if not isinstance(row, dict):
                errors.append(RowError(str(path), line_number, f"expected a JSON object, got {type(row).__name__}"))
                continue
            loaded.rows.append(row)
            loaded.lines.append(line_number)
    raise_row_errors(errors, str(path))
    return loaded


def read_json(path: Path) -> Any:
    """The JSON value of a file; invalid JSON is a ``DataError`` naming the file and line."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None


def _read_json(path: Path) -> LoadedRows:
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of objects (or use JSONL), got {type(data).__name__}")
    loaded = LoadedRows(source=str(path))
    errors = []
    for index, row in enumerate(data, start=1):
        if not isinstance(row, dict):
            errors.append(RowError(str(path), index, f"item {index}: expected an object, got {type(row).__name__}"))
            continue
        loaded.rows.append(row)
        loaded.lines.append(index)
    raise_row_errors(errors, str(path))
    return loaded


def _read_csv(path: Path) -> LoadedRows:
    loaded = LoadedRows(source=str(path))
    errors = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise DataError(f"{path}:1: empty CSV file (expected a header row)")
        for row in reader:
            line_number = reader.line_num
            if None in row:
                errors.append(RowError(str(path), line_number, f"more fields than the header's {len(reader.fieldnames)}"))
                continue
            if any(value is None for value in row.values()):
                errors.append(RowError(str(path), line_number, f"fewer fields than the header's {len(reader.fieldnames)}"))
                continue
            loaded.rows.append(dict(row))
            loaded.lines.append(line_number)
    raise_row_errors(errors, str(path))
    return loaded


HUB_FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def hub_data_file(name: str) -> str | None:
    """The ``hf://`` path when ``name`` is one data file of a hub dataset (``OWNER/NAME/PATH.jsonl``),
    else None. Datasets whose repository still holds a loading script (which ``datasets`` no
    longer runs) are read this way, from their data file."""
    parts = name.split("/")
    return f"hf://datasets/{name}" if len(parts) >= 3 and Path(name).suffix.lower() in HUB_FILE_BUILDERS else None


def _read_hf(name: str, hf_config: str | None, split: str) -> LoadedRows:
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise DataError("reading hf: sources needs the `datasets` package") from None
    try:
        file = hub_data_file(name)
        if file is not None:
            dataset = datasets.load_dataset(HUB_FILE_BUILDERS[Path(name).suffix.lower()], data_files={split: file}, split=split)
        else:
            dataset = datasets.load_dataset(name, hf_config, split=split)
    except Exception as error:  # datasets raises many types; all mean the same to the user
        raise DataError(
            f"hf:{name} (config {hf_config!r}, split {split!r}) could not be loaded: {type(error).__name__}: {error}. "
            "Offline, use a local JSONL/CSV file or a dataset saved to disk."
        ) from None
    source = f"hf:{name}[{split}]"
    rows = [dict(row) for row in dataset]
    return LoadedRows(source=source, rows=rows, lines=list(range(1, len(rows) + 1)))


def read_rows(source: str, *, hf_config: str | None = None, split: str = "train") -> LoadedRows:
    """Read every row of ``source``: a .jsonl/.json/.csv file, ``hf:NAME`` for a dataset, or
    ``hf:OWNER/NAME/FILE.jsonl`` (or .json, .csv, .parquet) for one data file of a hub dataset."""
    if source.startswith("hf:"):
        return _read_hf(source[3:], hf_config, split)
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(f"{source}: data file not found")
    suffix = path.suffix.lower()
    readers = {".jsonl": _read_jsonl, ".ndjson": _read_jsonl, ".json": _read_json, ".csv": _read_csv, ".tsv": _read_csv}
    if suffix not in readers:
        raise DataError(f"{source}: unsupported file type {suffix!r} (expected .jsonl, .json or .csv)")
    try:
        return readers[suffix](path)
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason}); save the file as UTF-8") from None


def raise_row_errors(errors: Sequence[RowError], source: str) -> None:
    """Refuse the whole source if any row is bad, listing the first few with file and line."""
    if not errors:
        return
    listed = "\n".join(f"  {error}" for error in errors[:MAX_LISTED_ERRORS])
    more = f"\n  ... and {len(errors) - MAX_LISTED_ERRORS} more" if len(errors) > MAX_LISTED_ERRORS else ""
    raise DataError(f"{source}: {len(errors)} bad row(s)\n{listed}{more}")


def require_text_fields(loaded: LoadedRows, fields: Iterable[str]) -> None:
    """Every row must have each of ``fields`` as a non-empty string."""
    fields = list(fields)
    errors = []
    for row, line in zip(loaded.rows, loaded.lines):
        for name in fields:
            value = row.get(name)
            if value is None:
                errors.append(RowError(loaded.source, line, f"missing field {name!r} (has: {', '.join(sorted(row)) or 'none'})"))
            elif not isinstance(value, str):
                errors.append(RowError(loaded.source, line, f"field {name!r} must be a string, got {type(value).__name__}"))
            elif not value.strip():
                errors.append(RowError(loaded.source, line, f"field {name!r} is empty"))
    raise_row_errors(errors, loaded.source)


def row_id(loaded: LoadedRows, line: int) -> str:
    """A stable id for a row: the file's name and the line it is on."""
    name = loaded.source if loaded.source.startswith("hf:") else Path(loaded.source).name
    return f"{name}:{line}"
