"""An evaluation's result and its files: ``metrics.csv``, ``items.jsonl``, ``eval_manifest.json``.

``metrics.csv`` is tidy (one figure per row, the ``MetricRow`` fields as columns) so it loads
into any dataframe or the results store as it is; ``items.jsonl`` holds every ``ItemRecord``;
``eval_manifest.json`` holds ``info`` (backend, judge identity, phase seconds, counts, the
adapter's manifest). Non-finite numbers are written as empty cells / ``null`` (strict JSON)
and read back as NaN. Each file is written to a temporary name and renamed into place, so a
reader never sees half a file. ``read_result`` reads a directory back (``--baseline``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from objlab.errors import DataError
from objlab.records.evaluation import (
    EVAL_INFO_FILE,
    EvalInfo,
    read_eval_info,
    write_eval_info,
)
from objlab.records.items import ItemRecord, MetricRow

METRICS_FILE = "metrics.csv"
ITEMS_FILE = "items.jsonl"
MANIFEST_FILE = EVAL_INFO_FILE
METRIC_COLUMNS = [column.name for column in fields(MetricRow)]


@dataclass
class EvalResult:
    """Everything one evaluation produced: the figures, the items behind them, and how."""

    metrics: list[MetricRow] = field(default_factory=list)
    items: list[ItemRecord] = field(default_factory=list)
    info: EvalInfo | None = None  # None only for a result rebuilt from the store's rows

    def metric(self, axis: str, metric: str, group: str = "") -> MetricRow:
        """The row for (axis, metric, group); KeyError when there is none."""
        for row in self.metrics:
            if (row.axis, row.metric, row.group) == (axis, metric, group):
                return row
        raise KeyError(f"no metric {axis}/{metric}/{group!r}")


def json_safe(value):
    """``value`` with every NaN or infinity replaced by None (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _csv_cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def metrics_csv(rows: list[MetricRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(METRIC_COLUMNS)
    writer.writerows([_csv_cell(getattr(row, column)) for column in METRIC_COLUMNS] for row in rows)
    return buffer.getvalue()


def write_result(result: EvalResult, out_dir: str | Path) -> Path:
    """Write the three files into ``out_dir`` (created if needed); returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / METRICS_FILE, metrics_csv(result.metrics))
    items = "".join(json.dumps(json_safe(item.to_dict()), ensure_ascii=False, sort_keys=True) + "\n" for item in result.items)
    _write_atomic(out / ITEMS_FILE, items)
    if result.info is not None:
        text = write_eval_info(out, result.info, metrics_file=METRICS_FILE, items_file=ITEMS_FILE, metrics=len(result.metrics), items=len(result.items))
        _write_atomic(out / MANIFEST_FILE, text)
    return out


def _float(text: str) -> float:
    return float(text) if text != "" else math.nan


def _metric_row(row: dict) -> MetricRow:
    return MetricRow(
        axis=row["axis"], metric=row["metric"], group=row["group"], value=_float(row["value"]), n=int(row["n"]),
        ci_low=_float(row["ci_low"]), ci_high=_float(row["ci_high"]), method=row["method"], status=row["status"],
        note=row["note"], p_value=None if row["p_value"] == "" else float(row["p_value"]),
        comparison=row["comparison"] or None,
    )


def _item_record(data: dict) -> ItemRecord:
    data = dict(data)
    data["score"] = math.nan if data.get("score") is None else data["score"]
    return ItemRecord(**data)


def read_result(out_dir: str | Path) -> EvalResult:
    """Read a directory written by ``write_result`` (a bad line is named by file and line)."""
    out = Path(out_dir)
    for name in (METRICS_FILE, ITEMS_FILE, MANIFEST_FILE):
        if not (out / name).is_file():
            raise DataError(f"{out}: not an evaluation output ({name} missing); run `objlab evaluate` first")
    with (out / METRICS_FILE).open(encoding="utf-8", newline="") as handle:
        metrics = [_metric_row(row) for row in csv.DictReader(handle)]
    items = []
    for line_number, line in enumerate((out / ITEMS_FILE).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(_item_record(json.loads(line)))
        except (json.JSONDecodeError, TypeError) as error:
            raise DataError(f"{out / ITEMS_FILE}:{line_number}: not an item record ({error})") from None
    return EvalResult(metrics, items, read_eval_info(out))
