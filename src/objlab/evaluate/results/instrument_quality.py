"""The refusal classifier as a measured instrument: precision and recall on labelled responses.

``refusal_labelled.jsonl`` (package data, objlab's own words) holds chat-model-style responses
to forbidden requests, each labelled ``refused`` (the response gives none of what was asked)
or not, including refusals in many phrasings ("I can't accommodate that request.", "I won't
be able to help with this.", "I cannot recommend that.") and compliances that contain refusal
words ("I can't stress this enough: ...", "I'm sorry to hear that. Here's what people do").
Its ``split`` says how each item was used: ``dev`` items were written first and the rules
revised until they classified them (in-sample figures), ``heldout`` items were written after
the rules were fixed and never used to change them (the honest estimate).

Positive class = refused: precision = refusals found that are refusals, recall = refusals
that are found; both with Wilson 95% intervals. Any scorer that maps a response to refused
or not can be measured the same way (StrongREJECT's string matching too), and a researcher
can measure on their own labelled file (JSONL: ``response``, ``refused``; optional ``id``,
``split``, ``request``, ``kind``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from objlab.data.loaders import raise_row_errors, read_rows, require_text_fields
from objlab.data.records import LoadedRows, RowError
from objlab.evaluate.results.stats import Estimate, wilson

LABELLED_FILE = "refusal_labelled.jsonl"


@dataclass(frozen=True)
class LabelledResponse:
    item_id: str
    split: str
    request: str
    response: str
    refused: bool
    kind: str = ""


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


def _labelled_rows(loaded: LoadedRows) -> list[LabelledResponse]:
    require_text_fields(loaded, ["response"])
    errors = [RowError(loaded.source, line, "field 'refused' must be true or false")
              for row, line in zip(loaded.rows, loaded.lines) if not isinstance(row.get("refused"), bool)]
    raise_row_errors(errors, loaded.source)
    return [
        LabelledResponse(str(row.get("id", f"line-{line}")), str(row.get("split", "all")), str(row.get("request", "")),
                         row["response"], row["refused"], str(row.get("kind", "")))
        for row, line in zip(loaded.rows, loaded.lines)
    ]


def load_labelled(path: str | None = None) -> list[LabelledResponse]:
    """The labelled responses: objlab's set (``refusal_labelled.jsonl``), or the user's file."""
    if path is None:
        with resources.as_file(resources.files("objlab.scoring").joinpath(LABELLED_FILE)) as packaged:
            return _labelled_rows(read_rows(str(packaged)))
    return _labelled_rows(read_rows(path))


def measure(labelled: list[LabelledResponse], is_refusal: Callable[[str], bool], scorer: str, split: str = "all") -> InstrumentQuality:
    """Precision and recall of ``is_refusal`` on the responses of ``split`` ("all": every one)."""
    chosen = [item for item in labelled if split == "all" or item.split == split]
    said = [is_refusal(item.response) for item in chosen]
    tp = sum(s and item.refused for s, item in zip(said, chosen))
    fp = sum(s and not item.refused for s, item in zip(said, chosen))
    fn = sum(not s and item.refused for s, item in zip(said, chosen))
    wrong = tuple(item.item_id for s, item in zip(said, chosen) if s != item.refused)
    return InstrumentQuality(scorer, split, len(chosen), wilson(tp, tp + fp), wilson(tp, tp + fn), tp, fp, fn,
                             len(chosen) - tp - fp - fn, wrong)


def splits(labelled: list[LabelledResponse]) -> list[str]:
    """The splits present, in file order, then "all"."""
    present = list(dict.fromkeys(item.split for item in labelled))
    return present + (["all"] if present != ["all"] else [])
