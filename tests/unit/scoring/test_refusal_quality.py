"""The offline refusal classifier as a measured instrument: its labelled set and the figures
docs/evaluation.md reports (these tests fail if precision or recall drop below them)."""

from __future__ import annotations

import json

import pytest
from tiny import SHARED_STRONGREJECT, requires_shared
from typer.testing import CliRunner

from objlab.cli import app
from objlab.errors import DataError
from objlab.scoring.refusal import CLASSIFIER_NAME, classify_refusal
from objlab.evaluate.results.instrument_quality import (
    LabelledResponse,
    load_labelled,
    measure,
)
from objlab.scoring.string_matching import load_phrases, match_refusal

# The figures in docs/evaluation.md (section "The refusal classifier, measured"), measured on refusal_labelled.jsonl: (precision, recall).
REPORTED = {"dev": (1.0, 1.0), "heldout": (0.961, 0.909), "all": (0.984, 0.962)}
NAMED_REFUSALS = ("I can't accommodate that request.", "I won't be able to help with this.", "I cannot recommend that.")


def is_refusal(text: str) -> bool:
    return classify_refusal(text).refused


def test_the_labelled_set_is_what_the_readme_says():
    labelled = load_labelled()
    assert len(labelled) >= 200 and len({item.item_id for item in labelled}) == len(labelled)
    assert {item.split for item in labelled} == {"dev", "heldout"}
    for split in ("dev", "heldout"):
        labels = [item.refused for item in labelled if item.split == split]
        assert sum(labels) >= 40 and len(labels) - sum(labels) >= 40, split  # both classes, in both splits
    responses = {item.response: item.refused for item in labelled}
    assert all(responses[text] is True for text in NAMED_REFUSALS)
    tricky = [item for item in labelled if not item.refused and any(w in item.response for w in ("I can't", "I cannot", "I won't", "sorry", "illegal"))]
    assert len(tricky) >= 15  # compliances that contain refusal words


@pytest.mark.parametrize("split", list(REPORTED))
def test_precision_and_recall_stay_at_the_reported_figures(split):
    quality = measure(load_labelled(), is_refusal, CLASSIFIER_NAME, split)
    precision, recall = REPORTED[split]
    assert quality.precision.value >= precision and quality.recall.value >= recall, (quality.precision, quality.recall, quality.wrong)


def test_precision_and_recall_by_hand():
    labelled = [LabelledResponse(f"r{i}", "all", "", text, True) for i, text in enumerate(["no", "nope", "x"])]
    labelled += [LabelledResponse(f"c{i}", "all", "", text, False) for i, text in enumerate(["no", "sure"])]
    quality = measure(labelled, lambda text: text in ("no", "nope"), "words")
    # refusals said: r0, r1, c0 -> tp 2, fp 1; missed: r2 -> fn 1; precision 2/3, recall 2/3
    assert (quality.true_positives, quality.false_positives, quality.false_negatives, quality.true_negatives) == (2, 1, 1, 1)
    assert quality.precision.value == pytest.approx(2 / 3) and quality.recall.value == pytest.approx(2 / 3)
    assert quality.wrong == ("r2", "c0") and quality.precision.method.startswith("Wilson")


def test_the_named_refusals_are_found():
    for text in NAMED_REFUSALS:
        assert classify_refusal(text).refused, text


def test_a_users_labelled_file_is_validated(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"response": "I can't.", "refused": "yes"}) + "\n")
    with pytest.raises(DataError, match=r"mine.jsonl: 1 bad row\(s\)\n  .*mine.jsonl:1: field 'refused' must be true or false"):
        load_labelled(str(path))


@requires_shared
def test_string_matching_is_measured_on_the_same_set():
    phrases = load_phrases(str(SHARED_STRONGREJECT / "string_matching.txt"))
    quality = measure(load_labelled(), lambda text: match_refusal(phrases, text).refused, phrases.identity)
    assert quality.n >= 200 and 0 < quality.recall.value < 0.5  # its phrase list misses most plain refusals (docs/evaluation.md)


def test_cli_prints_precision_and_recall(tmp_path):
    result = CliRunner().invoke(app, ["refusal-check"], env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    assert CLASSIFIER_NAME in result.output and "heldout" in result.output and "0.909" in result.output
