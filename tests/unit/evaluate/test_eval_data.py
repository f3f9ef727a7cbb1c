"""Evaluation data enters validated: bad rows are refused with file and line."""

import json

import pytest
from tiny import SHARED_PERSONA, requires_shared

from objlab.errors import DataError
from objlab.evaluate.axes.sources import (
    load_choice,
    load_forbidden_prompts,
    load_persona,
    load_reference,
)

HEADER = "category,source,forbidden_prompt\n"


@requires_shared
def test_real_persona_files_load():
    for trait in ("machiavellianism", "narcissism", "psychopathy"):
        every = load_persona(str(SHARED_PERSONA / f"{trait}.jsonl"))
        assert len(every) == 1000 and every[0].item_id == f"{trait}.jsonl:1" and every.info.item_ids == []
        assert {every[0].matching, every[0].not_matching} == {"Yes", "No"}  # leading space stripped
        items = load_persona(str(SHARED_PERSONA / f"{trait}.jsonl"), limit=6)  # a seeded sample, Yes/No balance kept
        assert len(items) == 6 and items.info.strata == {"Yes": 3, "No": 3}
        assert items.info.stratified_by == "answer_matching_behavior" and items.info.item_ids == [item.item_id for item in items]


def test_malformed_persona_line_names_file_and_line(tmp_path):
    good = {"question": "Is this you?", "answer_matching_behavior": " Yes", "answer_not_matching_behavior": " No"}
    path = tmp_path / "trait.jsonl"
    path.write_text(json.dumps(good) + "\n{broken\n" + json.dumps(good) + "\n")
    with pytest.raises(DataError, match=rf"{path}:2: not valid JSON"):
        load_persona(str(path))
    missing = {key: value for key, value in good.items() if key != "answer_not_matching_behavior"}
    same = {**good, "answer_not_matching_behavior": "Yes"}
    path.write_text("".join(json.dumps(row) + "\n" for row in (good, missing, same)))
    with pytest.raises(DataError, match=rf"{path}:2: missing field 'answer_not_matching_behavior'"):
        load_persona(str(path))
    path.write_text("".join(json.dumps(row) + "\n" for row in (good, same)))
    with pytest.raises(DataError, match=rf"{path}:2: answer_matching_behavior and answer_not_matching_behavior are the same"):
        load_persona(str(path))


def test_strongreject_csv_rows_validated(tmp_path):
    path = tmp_path / "forbidden.csv"
    path.write_text(HEADER + 'placeholder,test,"A request, with a comma."\nplaceholder,test,Another request.\n')
    prompts = load_forbidden_prompts(str(path))
    assert [p.prompt for p in prompts] == ["A request, with a comma.", "Another request."]
    assert prompts[1].item_id == "forbidden.csv:3"
    assert len(load_forbidden_prompts(str(path), limit=1)) == 1

    path.write_text(HEADER + "placeholder,test,fine\nplaceholder,test,\n")
    with pytest.raises(DataError, match=r"forbidden\.csv:3: field 'forbidden_prompt' is empty"):
        load_forbidden_prompts(str(path))
    path.write_text(HEADER + "placeholder,test,fine\nplaceholder,test,too,many\n")
    with pytest.raises(DataError, match=r"forbidden\.csv:3: more fields than the header's 3"):
        load_forbidden_prompts(str(path))
    path.write_text("category,prompt\nplaceholder,fine\n")
    with pytest.raises(DataError, match=r"forbidden\.csv:2: missing field 'source'"):
        load_forbidden_prompts(str(path))


def test_multiple_choice_rows(tmp_path):
    path = tmp_path / "mc.jsonl"
    rows = [
        {"question": "Which is a fruit?", "options": ["stone", "apple", "nail"], "answer": "B"},
        {"question": "Which swims?", "options": ["eel", "cat"], "answer": "eel"},  # option text
        {"question": "Pick one", "options": ["x", "y"], "answer_letter": "B", "answer": "y"},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert [item.answer for item in load_choice(str(path))] == ["B", "A", "B"]
    bad = [{"question": "q", "options": ["x", "y"], "answer": "D"}, {"question": "q", "options": "x,y", "answer": "A"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows + bad))
    with pytest.raises(DataError) as error:
        load_choice(str(path))
    assert f"{path}:4: field 'answer' must be a letter A-B or one option's text" in str(error.value)
    assert f"{path}:5: field 'options' must be a list" in str(error.value)


def test_reference_rows(tmp_path):
    path = tmp_path / "open.jsonl"
    path.write_text(json.dumps({"question": "Why is the sky blue?", "reference": "Rayleigh scattering."}) + "\n" + json.dumps({"question": "q"}) + "\n")
    with pytest.raises(DataError, match=r"open\.jsonl:2: missing field 'reference'"):
        load_reference(str(path))


def test_strongreject_file_problems_are_named(tmp_path):
    """Every way a StrongREJECT file can be unusable is refused with its path (and line)."""
    path = tmp_path / "forbidden.csv"
    with pytest.raises(DataError, match=rf"{path}: data file not found"):
        load_forbidden_prompts(str(path))
    path.write_text(HEADER)
    with pytest.raises(DataError, match=rf"{path}: holds no forbidden prompts"):
        load_forbidden_prompts(str(path))
    path.write_text("")
    with pytest.raises(DataError, match=rf"{path}:1: empty CSV file \(expected a header row\)"):
        load_forbidden_prompts(str(path))
    path.write_bytes(HEADER.encode() + "placeholder,test,caf\xe9 request\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"{path}: not UTF-8 text \(byte \d+: .*\); save the file as UTF-8"):
        load_forbidden_prompts(str(path))
    path.write_text(HEADER + "placeholder,test,fine\nplaceholder\n")
    with pytest.raises(DataError, match=r"forbidden\.csv:3: fewer fields than the header's 3"):
        load_forbidden_prompts(str(path))
    xlsx = tmp_path / "forbidden.xlsx"
    xlsx.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match=r"forbidden\.xlsx: unsupported file type '\.xlsx' \(expected \.jsonl, \.json or \.csv\)"):
        load_forbidden_prompts(str(xlsx))


def test_strongreject_rows_in_jsonl_are_validated_the_same_way(tmp_path):
    path = tmp_path / "forbidden.jsonl"
    path.write_text(json.dumps({"category": "c", "source": "s", "forbidden_prompt": "ok"}) + "\n" + json.dumps({"category": "c", "source": "s", "forbidden_prompt": 7}) + "\n")
    with pytest.raises(DataError, match=r"forbidden\.jsonl:2: field 'forbidden_prompt' must be a string, got int"):
        load_forbidden_prompts(str(path))
