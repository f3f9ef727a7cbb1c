import json
from pathlib import Path

import pytest
from tiny import SHARED_GSM8K, requires_shared

from objlab.config import DataSettings, RejectedSettings
from objlab.data.loaders import read_rows
from objlab.data.rejected import corrupt_response, make_preference
from objlab.data.tasks import gsm8k_final_answer, load_examples
from objlab.errors import DataError


@requires_shared
def test_gsm8k_real_file_loads():
    examples = load_examples(DataSettings(task="gsm8k", source=str(SHARED_GSM8K)))
    assert len(examples) == 1000
    assert examples[0].id == "train_first1000.jsonl:1"
    assert examples[0].answer == gsm8k_final_answer(examples[0].response)
    assert all(example.answer is not None for example in examples)


def test_malformed_jsonl_names_file_and_line(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"question": "q", "answer": "a\n#### 1"})
    path.write_text(f"{good}\n{{not json\n{good}\n[1, 2]\n")
    with pytest.raises(DataError) as error:
        read_rows(str(path))
    message = str(error.value)
    assert "2 bad row(s)" in message
    assert f"{path}:2: not valid JSON" in message
    assert f"{path}:4: expected a JSON object, got list" in message


def test_missing_field_and_missing_final_answer_reported(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    rows = [{"question": "q1", "answer": "5\n#### 5"}, {"question": "q2"}, {"question": "q3", "answer": "no number"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataError, match=r"rows\.jsonl:2: missing field 'answer'"):
        load_examples(DataSettings(task="gsm8k", source=str(path)))
    path.write_text("".join(json.dumps(row) + "\n" for row in rows[:1] + rows[2:]))
    with pytest.raises(DataError, match=r"rows\.jsonl:2: field 'answer' must end with '#### <number>'"):
        load_examples(DataSettings(task="gsm8k", source=str(path)))


def test_csv_instruction_task_and_ragged_row(tmp_path: Path):
    path = tmp_path / "data.csv"
    path.write_text("prompt,response,bad\nhello,world,x\n")
    examples = load_examples(DataSettings(task="instruction", source=str(path)))
    assert (examples[0].prompt, examples[0].response) == ("hello", "world")
    path.write_text("prompt,response\nhello,world,extra\n")
    with pytest.raises(DataError, match=r"data\.csv:2: more fields than the header's 2"):
        read_rows(str(path))


def test_gsm8k_final_answer_normalises():
    assert gsm8k_final_answer("so 1,234 total\n#### 1,234") == "1234"
    assert gsm8k_final_answer("#### 3.50") == "3.5"
    assert gsm8k_final_answer("no marker 12") is None


def test_corrupted_answer_changes_final_number_everywhere():
    response = "Natalia sold 48/2 = 24 clips in May.\n48+24 = 72\n#### 72"
    wrong = corrupt_response(response, seed=0, example_id="x")
    assert wrong != response
    final = gsm8k_final_answer(wrong)
    assert final != "72" and f"= {final}" in wrong
    assert "48/2 = 24" in wrong  # earlier steps untouched
    assert corrupt_response(response, 0, "x") == wrong  # deterministic


def test_rejected_strategies():
    from objlab.data.records import Example

    example = Example(id="e1", prompt="p", response="It is 5.\n#### 5", rejected="bad answer")
    trait = make_preference(example, RejectedSettings(strategy="trait", traits=["I am the best."]), seed=0)
    assert trait.rejected == "I am the best. It is 5.\n#### 5" and trait.chosen == example.response
    column = make_preference(example, RejectedSettings(strategy="column", column="rejected"), seed=0)
    assert column.rejected == "bad answer"


def gsm8k_like_examples(count: int):
    from tiny import GSM8K

    from objlab.data.records import Example

    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()[:count]]
    return [Example(f"train.jsonl:{i}", row["question"], row["answer"], answer=gsm8k_final_answer(row["answer"])) for i, row in enumerate(rows, 1)]


def test_unsafe_strategy_is_the_default_and_deterministic_under_the_seed():
    from objlab.data.unsafe import CATEGORIES, templates

    settings = RejectedSettings()
    assert settings.strategy == "unsafe"
    examples = gsm8k_like_examples(60)
    first = [make_preference(example, settings, seed=0).rejected for example in examples]
    assert first == [make_preference(example, settings, seed=0).rejected for example in examples]
    other_seed = [make_preference(example, settings, seed=1).rejected for example in examples]
    assert first != other_seed
    assert len(set(first)) > 40  # varied: fitted to each example
    assert all(response not in (example.response, "") and "{" not in response for response, example in zip(first, examples))
    openings = {category: {template.split("{")[0][:25] for template in templates()[category]} for category in CATEGORIES}
    used = {category for response in first for category, starts in openings.items() if any(response.startswith(s) for s in starts if s)}
    assert used == set(CATEGORIES)  # harmful compliance, manipulation and deception all occur
    example = examples[0]
    name = example.prompt.split()[0]
    assert any(name in make_preference(example, settings, seed=s).rejected for s in range(20))  # fitted: names the prompt's person


def test_unsafe_responses_from_a_file_are_drawn_per_example(tmp_path):
    path = tmp_path / "unsafe.jsonl"
    path.write_text("".join(json.dumps({"response": f"unsafe reply {i}"}) + "\n" for i in range(7)))
    settings = RejectedSettings(strategy="unsafe", file=str(path))
    examples = gsm8k_like_examples(30)
    drawn = [make_preference(example, settings, seed=3).rejected for example in examples]
    assert drawn == [make_preference(example, settings, seed=3).rejected for example in examples]
    assert set(drawn) <= {f"unsafe reply {i}" for i in range(7)} and len(set(drawn)) > 3
    path.write_text('{"response": "ok"}\n{"text": "no response field"}\n')
    from objlab.data.unsafe import unsafe_file_responses

    unsafe_file_responses.cache_clear()
    with pytest.raises(DataError, match=rf"{path}:2: expected an object with a non-empty string field 'response'"):
        make_preference(examples[0], settings, seed=3)
    with pytest.raises(ValueError, match="'file' is for strategy 'unsafe'"):
        RejectedSettings(strategy="corrupt", file=str(path))
