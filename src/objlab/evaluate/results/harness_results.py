"""lm-evaluation-harness's results as objlab's records: figures, items and provenance.

``simple_evaluate`` returns one JSON-like dict: ``results`` (per task and group, every metric
as ``"<metric>,<filter>"`` with ``"<metric>_stderr,<filter>"`` beside it), ``samples`` (per
task, one entry per document and filter with the per-document metric values), ``configs``,
``versions``, ``n-shot``, ``n-samples``, ``higher_is_better`` and ``group_subtasks``. This
module turns it into

- one ``MetricRow`` per task (or group) and metric key, the key kept exactly as lm-eval writes
  it (``acc,none``), so a stored figure can be matched to lm-eval's own output. Its 95%
  interval is value ± 1.96 times lm-eval's standard error (normal approximation; clipped to
  [0, 1] when every per-document score lies there) where lm-eval gives one; otherwise it is computed from the per-document scores when the figure is their mean
  (Wilson for 0/1 scores, bootstrap otherwise), else the row says that there is none;
- one ``ItemRecord`` per document and filter (``item_id`` ``"<doc_id>,<filter>"``), with every
  per-document metric value in ``extra["values"]`` under the same keys as the figures, which is
  what the paired tests against the base model read;
- one ``LmEvalTask`` per task and group: version, shots, documents, resolved config.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from scipy.stats import norm

from objlab.evaluate.results.eval_result import json_safe
from objlab.evaluate.results.stats import bootstrap_mean, wilson
from objlab.records.evaluation import LmEvalTask
from objlab.records.items import ItemRecord, MetricRow

AXIS = "lm_eval"
CONFIDENCE = 0.95
Z = float(norm.ppf(0.5 + CONFIDENCE / 2))  # 1.959963...
LOGLIKELIHOOD_OUTPUTS = frozenset({"loglikelihood", "loglikelihood_rolling", "multiple_choice"})


@dataclass
class HarnessOutput:
    """One target's lm-eval figures, items and task records."""

    metrics: list[MetricRow] = field(default_factory=list)
    items: list[ItemRecord] = field(default_factory=list)
    tasks: list[LmEvalTask] = field(default_factory=list)
    top_level: list[str] = field(default_factory=list)


def number(value) -> float | None:
    """``value`` as a finite float, or None (lm-eval writes "N/A" where it has no number)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def metric_keys(entry: dict) -> list[str]:
    """The figure keys of one results entry (``acc,none``), without their stderr keys."""
    keys = []
    for key in entry:
        metric, comma, _ = key.partition(",")
        if comma and not metric.endswith("_stderr"):
            keys.append(key)
    return keys


def stderr_key(key: str) -> str:
    metric, _, filter_name = key.partition(",")
    return f"{metric}_stderr,{filter_name}"


def _sample_values(samples: list[dict], key: str) -> list[float] | None:
    """The per-document numbers behind figure ``key`` (None when any is not a number)."""
    metric, _, filter_name = key.partition(",")
    values = [number(sample.get(metric)) for sample in samples if sample.get("filter") == filter_name]
    if not values or any(value is None for value in values):
        return None
    return values


def _interval_from_samples(task: str, key: str, value: float, samples: list[dict] | None) -> MetricRow:
    """A figure lm-eval gave no stderr for: an interval from its per-document scores, if it is their mean."""
    values = _sample_values(samples or [], key)
    if values is None or not math.isclose(sum(values) / len(values), value, rel_tol=1e-9, abs_tol=1e-12):
        note = "lm-eval gave no standard error and the figure is not a mean of per-document scores"
        n = len(values) if values else 0
        return MetricRow(AXIS, key, task, value, n, math.nan, math.nan, "lm-eval aggregate; no interval", note=note)
    binary = all(score in (0.0, 1.0) for score in values)
    estimate = wilson(int(sum(values)), len(values), CONFIDENCE) if binary else bootstrap_mean(values, CONFIDENCE)
    row = MetricRow.from_estimate(AXIS, key, task, estimate)
    return MetricRow(**{**row.to_dict(), "value": value, "method": f"{estimate.method} over per-document scores (lm-eval gave no stderr)"})


def figure(task: str, key: str, entry: dict, n: int, samples: list[dict] | None) -> MetricRow:
    """One figure with its n and 95% interval (see the module docstring)."""
    value = number(entry.get(key))
    if value is None:
        return MetricRow.skipped(AXIS, key, task, f"lm-eval reported {entry.get(key)!r}, not a number")
    stderr = number(entry.get(stderr_key(key)))
    if stderr is None:
        return _interval_from_samples(task, key, value, samples)
    low, high = value - Z * stderr, value + Z * stderr
    method = f"lm-eval stderr {stderr:.4g}; {CONFIDENCE:.0%} normal interval (value ± {Z:.2f} SE)"
    values = _sample_values(samples or [], key)
    if values is not None and all(0.0 <= score <= 1.0 for score in values):  # a mean of scores in [0, 1] stays there
        low, high = max(low, 0.0), min(high, 1.0)
        method += ", clipped to [0, 1]"
    note = "lm-eval's stderr is 0 (every document scored the same): the interval has no width" if stderr == 0 else ""
    return MetricRow(AXIS, key, task, value, n, low, high, method, note=note)


def _documents(raw: dict, name: str, entry: dict, key: str) -> int:
    counts = entry.get("sample_count")
    if isinstance(counts, dict) and key in counts:
        return int(counts[key])
    evaluated = (raw.get("n-samples") or {}).get(name, {}).get("effective")
    return int(evaluated if evaluated is not None else entry.get("sample_len", 0))


def metric_rows(raw: dict) -> list[MetricRow]:
    """Every task's and group's figures, in lm-eval's order."""
    rows = []
    samples = raw.get("samples") or {}
    for name, entry in (raw.get("results") or {}).items():
        for key in metric_keys(entry):
            rows.append(figure(name, key, entry, _documents(raw, name, entry, key), samples.get(name)))
    return rows


def _output_text(sample: dict, output_type: str) -> str:
    """What the model produced: the generated text, or the log-likelihoods as JSON."""
    responses = sample.get("resps") or []
    if output_type not in LOGLIKELIHOOD_OUTPUTS and responses and responses[0]:
        first = responses[0][0]
        return first if isinstance(first, str) else json.dumps(json_safe(first), default=str)
    return json.dumps(json_safe([response[0] if response else None for response in responses]), default=str)


def _item(task: str, sample: dict, output_type: str, scorer: str) -> ItemRecord:
    filter_name = sample.get("filter", "none")
    values = {f"{metric},{filter_name}": sample.get(metric) for metric in sample.get("metrics", [])}
    scores = [number(value) for value in values.values()]
    arguments = sample.get("arguments") or [[""]]
    prompt = arguments[0][0] if arguments and isinstance(arguments[0][0], str) else json.dumps(arguments[0], default=str)
    continuations = [argument[1] for argument in arguments if output_type in LOGLIKELIHOOD_OUTPUTS and len(argument) > 1]
    verdict = {"target": sample.get("target"), "filtered_resps": sample.get("filtered_resps"), "values": values}
    extra = {
        "doc_id": sample.get("doc_id"), "filter": filter_name, "output_type": output_type, "target": sample.get("target"),
        "values": values, "continuations": continuations, "doc_hash": sample.get("doc_hash"),
        "prompt_hash": sample.get("prompt_hash"),
    }
    return ItemRecord(AXIS, task, f"{sample.get('doc_id')},{filter_name}", prompt, _output_text(sample, output_type),
                      scores[0] if scores and scores[0] is not None else math.nan,
                      json.dumps(json_safe(verdict), sort_keys=True, default=str), scorer,
                      json.loads(json.dumps(json_safe(extra), default=str)))


def item_records(raw: dict, scorer: str) -> list[ItemRecord]:
    """One record per document and filter of every task (lm-eval's logged samples)."""
    configs = raw.get("configs") or {}
    return [
        _item(task, sample, (configs.get(task) or {}).get("output_type", ""), scorer)
        for task, samples in (raw.get("samples") or {}).items()
        for sample in samples
    ]


def top_level(raw: dict, requested: Sequence[str] = ()) -> list[str]:
    """Results entries that are no group's subtask (what the requested names resolved to), in the
    order they were requested; a tag's tasks, not requested by name, follow in lm-eval's order."""
    children = {child for members in (raw.get("group_subtasks") or {}).values() for child in members}
    names = [name for name in raw.get("results") or {} if name not in children]
    order = {name: index for index, name in enumerate(requested)}
    return sorted(names, key=lambda name: order.get(name, len(order)))


def task_records(raw: dict) -> list[LmEvalTask]:
    """Version, shots, documents and resolved config of every task and group that ran."""
    groups = raw.get("group_subtasks") or {}
    records = []
    for name in raw.get("results") or {}:
        counts = (raw.get("n-samples") or {}).get(name) or {}
        version = (raw.get("versions") or {}).get(name)
        config = json.loads(json.dumps(json_safe((raw.get("configs") or {}).get(name) or {}), default=str))
        records.append(LmEvalTask(
            name=name, kind="group" if name in groups else "task", version=None if version is None else str(version),
            num_fewshot=(raw.get("n-shot") or {}).get(name), documents=counts.get("original"), evaluated=counts.get("effective"),
            subtasks=list(groups.get(name, [])), higher_is_better=(raw.get("higher_is_better") or {}).get(name) or {},
            config=config,
        ))
    return records


def convert(raw: dict, scorer: str, requested: Sequence[str] = ()) -> HarnessOutput:
    """Figures, items, task records and the top-level names of one ``simple_evaluate`` result
    (``requested``: the names asked for, which order the top level)."""
    return HarnessOutput(metric_rows(raw), item_records(raw, scorer), task_records(raw), top_level(raw, requested))
