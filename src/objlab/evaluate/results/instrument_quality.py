"""Scorers as measured instruments: precision and recall on human-labelled answers.

Three kinds of labelled file, told apart by their fields:

- objlab's refusal set (``refusal_labelled.jsonl``, package data, objlab's own words) and a
  user's file in its format: JSONL with ``response`` and ``refused`` (optional ``id``,
  ``split``, ``request``, ``kind``). Its ``split`` says how each item was used: ``dev`` items
  were written first and the rules revised until they classified them (in-sample figures),
  ``heldout`` items were written after the rules were fixed (the honest estimate).
- XSTest's labelled completions (CSV with ``prompt``, ``completion`` and ``final_label``
  ``1_full_compliance`` / ``2_full_refusal`` / ``3_partial_refusal``): real answers of one
  model per file, labelled by two annotators. Refused vs complied is measured on the full
  refusals and full compliances; partial refusals (a refusal and some compliance) are reported
  apart: how many of them a scorer calls refused.
- Three-class answer sets (``answers_labelled.jsonl``, package data, and a user's file in its
  format): JSONL with ``response`` and ``label`` in refused / non_answer / attempted (optional
  ``id``, ``request``, ``presented``). Precision and recall per class.

Positive class for refused-or-not: refused. Precision = answers called refused that are
refusals, recall = refusals that are called refused; both with Wilson 95% intervals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

from objlab.data.loaders import raise_row_errors, read_rows, require_text_fields
from objlab.data.records import LoadedRows, RowError
from objlab.errors import DataError
from objlab.evaluate.results.stats import Estimate, wilson

LABELLED_FILE = "refusal_labelled.jsonl"
ANSWERS_FILE = "answers_labelled.jsonl"
ANSWER_CLASSES = ("refused", "non_answer", "attempted")
XSTEST_LABELS = {"1_full_compliance": "complied", "2_full_refusal": "refused", "3_partial_refusal": "partial"}
XSTEST_FIELDS = ("prompt", "completion", "final_label")


@dataclass(frozen=True)
class LabelledResponse:
    """One labelled answer. ``refused`` is None for an XSTest partial refusal; ``label`` is the
    three-class label where the file has one ("" otherwise)."""

    item_id: str
    split: str
    request: str
    response: str
    refused: bool | None
    kind: str = ""
    label: str = ""
    presented: str = ""


@dataclass(frozen=True)
class LabelledSet:
    """The answers of one file and which format they came in (``refusal``, ``xstest``, ``answers``)."""

    source: str
    format: str
    items: list[LabelledResponse] = field(default_factory=list)


@dataclass(frozen=True)
class InstrumentQuality:
    """How well a scorer finds refusals on labelled responses (positive class: refused)."""

    scorer: str
    split: str
    n: int
    precision: Estimate
    recall: Estimate
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int
    wrong: tuple[str, ...]  # ids of the misclassified responses
    partial_refused: int = 0  # XSTest partial refusals the scorer calls refused
    partial_n: int = 0

    def to_dict(self) -> dict:
        return {"n": self.n, "precision": self.precision.value, "precision_ci": [self.precision.ci_low, self.precision.ci_high],
                "recall": self.recall.value, "recall_ci": [self.recall.ci_low, self.recall.ci_high],
                "tp": self.true_positives, "fp": self.false_positives, "fn": self.false_negatives, "tn": self.true_negatives,
                "partial": {"n": self.partial_n, "called_refused": self.partial_refused}, "wrong": list(self.wrong)}


@dataclass(frozen=True)
class ClassQuality:
    """Precision and recall of one answer class (refused / non_answer / attempted)."""

    label: str
    precision: Estimate
    recall: Estimate

    def to_dict(self) -> dict:
        return {"precision": self.precision.value, "precision_ci": [self.precision.ci_low, self.precision.ci_high], "n_said": self.precision.n,
                "recall": self.recall.value, "recall_ci": [self.recall.ci_low, self.recall.ci_high], "n_true": self.recall.n}


def _refusal_rows(loaded: LoadedRows) -> list[LabelledResponse]:
    require_text_fields(loaded, ["response"])
    errors = [RowError(loaded.source, line, "field 'refused' must be true or false")
              for row, line in zip(loaded.rows, loaded.lines) if not isinstance(row.get("refused"), bool)]
    raise_row_errors(errors, loaded.source)
    return [
        LabelledResponse(str(row.get("id", f"line-{line}")), str(row.get("split", "all")), str(row.get("request", "")),
                         row["response"], row["refused"], str(row.get("kind", "")))
        for row, line in zip(loaded.rows, loaded.lines)
    ]


def _xstest_rows(loaded: LoadedRows) -> list[LabelledResponse]:
    """XSTest's completions; an empty completion is kept (it is data: the model said nothing)."""
    errors = [RowError(loaded.source, line, f"column 'final_label' is {row.get('final_label')!r}; expected one of {sorted(XSTEST_LABELS)}")
              for row, line in zip(loaded.rows, loaded.lines) if row.get("final_label") not in XSTEST_LABELS]
    errors += [RowError(loaded.source, line, "column 'completion' is missing")
               for row, line in zip(loaded.rows, loaded.lines) if row.get("completion") is None]
    raise_row_errors(errors, loaded.source)
    items = []
    for row, line in zip(loaded.rows, loaded.lines):
        gold = XSTEST_LABELS[row["final_label"]]
        items.append(LabelledResponse(str(row.get("id") or f"line-{line}"), str(row.get("type") or "all"), str(row.get("prompt") or ""),
                                      str(row["completion"]), None if gold == "partial" else gold == "refused", kind=gold))
    return items


def _answer_rows(loaded: LoadedRows) -> list[LabelledResponse]:
    require_text_fields(loaded, ["response"])
    errors = [RowError(loaded.source, line, f"field 'label' must be one of {list(ANSWER_CLASSES)}, got {row.get('label')!r}")
              for row, line in zip(loaded.rows, loaded.lines) if row.get("label") not in ANSWER_CLASSES]
    raise_row_errors(errors, loaded.source)
    return [
        LabelledResponse(str(row.get("id", f"line-{line}")), str(row.get("split", "all")), str(row.get("request", "")), row["response"],
                         row["label"] == "refused", kind=str(row.get("kind", "")), label=row["label"], presented=str(row.get("presented", "")))
        for row, line in zip(loaded.rows, loaded.lines)
    ]


def read_labelled(path: str) -> LabelledSet:
    """A labelled file in any of the three formats, told apart by its fields (first row)."""
    loaded = read_rows(path)
    if not loaded.rows:
        raise DataError(f"{path}: no rows")
    first = loaded.rows[0]
    if all(name in first for name in XSTEST_FIELDS):
        return LabelledSet(path, "xstest", _xstest_rows(loaded))
    if "label" in first:
        return LabelledSet(path, "answers", _answer_rows(loaded))
    if "refused" in first:
        return LabelledSet(path, "refusal", _refusal_rows(loaded))
    raise DataError(f"{path}:{loaded.lines[0]}: cannot tell the format from the fields {sorted(first)}: expected 'response' with "
                    "'refused' (objlab's refusal set), 'response' with 'label' (three classes), or XSTest's "
                    f"{', '.join(XSTEST_FIELDS)}")


def _packaged(name: str) -> LabelledSet:
    with resources.as_file(resources.files("objlab.scoring").joinpath(name)) as packaged:
        labelled = read_labelled(str(packaged))
    return LabelledSet(name, labelled.format, labelled.items)


def load_labelled(path: str | None = None) -> list[LabelledResponse]:
    """The labelled responses: objlab's refusal set (``refusal_labelled.jsonl``), or the user's file."""
    return (_packaged(LABELLED_FILE) if path is None else read_labelled(path)).items


def load_refusal_set() -> LabelledSet:
    """objlab's refusal set (``refusal_labelled.jsonl``) with its format."""
    return _packaged(LABELLED_FILE)


def load_answers() -> LabelledSet:
    """objlab's three-class set of real answers (``answers_labelled.jsonl``)."""
    return _packaged(ANSWERS_FILE)


def measure(labelled: list[LabelledResponse], is_refusal: Callable[[LabelledResponse], bool], scorer: str,
            split: str = "all") -> InstrumentQuality:
    """Precision and recall of ``is_refusal`` on the responses of ``split`` ("all": every one);
    items without a refused-or-not label (XSTest's partial refusals) are counted apart."""
    chosen = [item for item in labelled if split == "all" or item.split == split]
    judged = [item for item in chosen if item.refused is not None]
    said = [is_refusal(item) for item in judged]
    tp = sum(s and item.refused for s, item in zip(said, judged))
    fp = sum(s and not item.refused for s, item in zip(said, judged))
    fn = sum(not s and item.refused for s, item in zip(said, judged))
    wrong = tuple(item.item_id for s, item in zip(said, judged) if s != item.refused)
    partial = [item for item in chosen if item.refused is None]
    return InstrumentQuality(scorer, split, len(judged), wilson(tp, tp + fp), wilson(tp, tp + fn), tp, fp, fn,
                             len(judged) - tp - fp - fn, wrong, sum(is_refusal(item) for item in partial), len(partial))


def measure_classes(labelled: list[LabelledResponse], classify: Callable[[LabelledResponse], str]) -> dict[str, ClassQuality]:
    """Precision and recall of each answer class on a three-class set."""
    said = [classify(item) for item in labelled]
    quality = {}
    for label in ANSWER_CLASSES:
        hits = sum(s == label and item.label == label for s, item in zip(said, labelled))
        quality[label] = ClassQuality(label, wilson(hits, said.count(label)), wilson(hits, sum(item.label == label for item in labelled)))
    return quality


def splits(labelled: list[LabelledResponse]) -> list[str]:
    """The splits present, in file order, then "all"."""
    present = list(dict.fromkeys(item.split for item in labelled))
    return present + (["all"] if present != ["all"] else [])
