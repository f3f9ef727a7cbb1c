"""`objlab refusal-check` on XSTest's labelled completions (shared data): it prints and writes
per file and per scorer precision, recall, their intervals and the partial refusals' split."""

from __future__ import annotations

import json

import pytest
from tiny import SHARED_DATA, SHARED_STRONGREJECT, requires_shared
from typer.testing import CliRunner

from objlab.cli import app
from objlab.scoring.refusal import CLASSIFIER_NAME

XSTEST = SHARED_DATA / "xstest" / "completions_mistralguard.csv"


@requires_shared
@pytest.mark.skipif(not XSTEST.is_file(), reason=f"XSTest's labelled completions are not at {XSTEST}")
def test_refusal_check_reads_xstest_and_writes_json(tmp_path):
    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["refusal-check", "--labelled", str(XSTEST), "--string-matching",
                                      str(SHARED_STRONGREJECT / "string_matching.txt"), "--json", str(out)], env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    assert "xstest" in result.output and CLASSIFIER_NAME in result.output and "strongreject-string-matching" in result.output
    figures = json.loads(out.read_text())[str(XSTEST)]
    classifier = figures[CLASSIFIER_NAME]
    assert {"n", "precision", "precision_ci", "recall", "recall_ci", "tp", "fp", "fn", "tn", "partial"} <= set(classifier)
    assert classifier["precision"] >= 0.9 and classifier["recall"] >= 0.85 and classifier["partial"]["n"] == 41


def test_a_bad_xstest_row_names_file_and_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("id,type,prompt,completion,final_label\nv1,t,How?,No.,2_full_refusal\nv2,t,How?,Yes.,maybe\n")
    result = CliRunner().invoke(app, ["refusal-check", "--labelled", str(path)])
    assert result.exit_code == 2 and "x.csv:3" in result.output and "final_label" in result.output
