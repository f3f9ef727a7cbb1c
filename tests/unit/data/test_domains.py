"""The reference study's other domains: SuperGPQA (one discipline, multiple choice), a
cybersecurity instruction set and a legal QA set, each read from a few rows in its real format
(fields as the public datasets publish them), with row selection, a fixed held-out split,
field mapping, and bad rows named by file and line."""

import json
from pathlib import Path

import pytest

from objlab.config import DataSettings
from objlab.config.evaluation import CapabilityTask
from objlab.config.sections import HoldoutSettings
from objlab.data.choice import choice_prompt
from objlab.data.loaders import hub_data_file, read_rows
from objlab.data.select import holdout_position, select_rows
from objlab.data.tasks import load_examples
from objlab.errors import ConfigError, DataError
from objlab.evaluate.axes.capability import choice_prompt as eval_choice_prompt
from objlab.evaluate.axes.capability import load_task_items

OPTIONS = ["1 kN", "2 kN", "4 kN", "8 kN", "16 kN", "32 kN", "64 kN", "128 kN", "256 kN", "512 kN"]


def supergpqa_row(uuid: str, discipline: str, letter: str = "C", **changes) -> dict:
    """A row as m-a-p/SuperGPQA publishes it (every field of its one `train` split)."""
    index = "ABCDEFGHIJ".index(letter)
    row = {
        "uuid": uuid, "question": f"What load does beam {uuid} carry?", "options": OPTIONS,
        "answer": OPTIONS[index], "answer_letter": letter, "discipline": discipline,
        "field": "Mechanical Engineering" if discipline == "Engineering" else "Physics",
        "subfield": "Solid Mechanics" if discipline == "Engineering" else "Thermodynamics",
        "difficulty": "middle", "is_calculation": True,
    }
    return {**row, **changes}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def supergpqa(tmp_path) -> Path:
    rows = [supergpqa_row(f"e{i}", "Engineering", "ABCDEFGHIJ"[i % 10]) for i in range(40)]
    rows += [supergpqa_row(f"s{i}", "Science") for i in range(5)]
    return write_jsonl(tmp_path / "SuperGPQA-all.jsonl", rows)


def test_supergpqa_engineering_rows_become_lettered_questions(supergpqa):
    examples = load_examples(DataSettings(task="supergpqa", source=str(supergpqa), where={"discipline": "Engineering"}))
    assert len(examples) == 40
    first = examples[0]
    assert first.prompt == choice_prompt("What load does beam e0 carry?", OPTIONS)
    assert first.prompt.splitlines()[2] == "A. 1 kN" and first.prompt.endswith("Answer with the letter of the correct option.")
    assert (first.response, first.answer) == ("The answer is (A).", "A")
    assert examples[2].answer == "C" and examples[2].id == "SuperGPQA-all.jsonl:3"


def test_supergpqa_trains_on_the_text_the_evaluation_shows(supergpqa):
    """The training prompt of a row equals the multiple_choice evaluation's prompt of that row."""
    train = load_examples(DataSettings(task="supergpqa", source=str(supergpqa), where={"discipline": "Engineering"}))
    task = CapabilityTask(kind="multiple_choice", source=str(supergpqa), where={"discipline": "Engineering"})
    items = load_task_items(task, seed=0).items
    assert [eval_choice_prompt(item) for item in items] == [example.prompt for example in train]
    assert [item.answer for item in items] == [example.answer for example in train]


def test_supergpqa_bad_rows_named_by_file_and_line(tmp_path):
    rows = [supergpqa_row("e0", "Engineering"), supergpqa_row("e1", "Engineering", options="A or B"),
            supergpqa_row("e2", "Engineering", answer_letter="Z", answer="none of these")]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError) as error:
        load_examples(DataSettings(task="supergpqa", source=str(path)))
    message = str(error.value)
    assert "2 bad row(s)" in message
    assert f"{path}:2: field 'options' must be a list of 2 to 26 option texts" in message
    assert f"{path}:3: field 'answer' must be a letter A-J or one option's text" in message
    with pytest.raises(ConfigError, match=r"data\.response_field: task supergpqa builds the response"):
        load_examples(DataSettings(task="supergpqa", source=str(path), response_field="answer"))


def test_a_misspelt_discipline_lists_the_values_seen(supergpqa):
    with pytest.raises(DataError, match=r"no row matches where \{'discipline': 'Enginering'\} .*discipline: Engineering, Science"):
        load_examples(DataSettings(task="supergpqa", source=str(supergpqa), where={"discipline": "Enginering"}))
    rows = [supergpqa_row("e0", "Engineering"), {"question": "no discipline"}]
    path = write_jsonl(supergpqa.parent / "missing.jsonl", rows)
    with pytest.raises(DataError, match=r"missing\.jsonl:2: missing field 'discipline' \(used to select rows\)"):
        load_examples(DataSettings(task="supergpqa", source=str(path), where={"discipline": "Engineering"}))


def test_holdout_splits_a_source_into_disjoint_train_and_test_sides(supergpqa):
    where = {"discipline": ["Engineering"]}
    sides = {keep: load_examples(DataSettings(task="supergpqa", source=str(supergpqa), where=where,
                                              holdout=HoldoutSettings(fraction=0.25, keep=keep, key="uuid")))
             for keep in ("train", "test")}
    train_ids, test_ids = ({example.id for example in sides[keep]} for keep in ("train", "test"))
    assert train_ids.isdisjoint(test_ids) and len(train_ids | test_ids) == 40
    assert 4 <= len(test_ids) <= 16  # about a quarter of 40
    # the split depends on the key alone: reordering the file moves no row across it
    loaded = read_rows(str(supergpqa))
    reordered = type(loaded)(loaded.source, loaded.rows[::-1], loaded.lines[::-1])
    kept = select_rows(reordered, where, HoldoutSettings(fraction=0.25, keep="test", key="uuid"))
    assert {row["uuid"] for row in kept.rows} == {row["uuid"] for row in loaded.rows if row["discipline"] == "Engineering"
                                                 and holdout_position(row, "uuid") < 0.25}
    task = CapabilityTask(kind="multiple_choice", source=str(supergpqa), where=where,
                          holdout=HoldoutSettings(fraction=0.25, keep="test", key="uuid"))
    assert {item.item_id for item in load_task_items(task, seed=0).items} == test_ids


def trendyol_row(index: int, **changes) -> dict:
    """A row as Trendyol/Trendyol-Cybersecurity-Instruction-Tuning-Dataset publishes it."""
    row = {"system": "You are a senior cybersecurity analyst.",
           "user": f"How do I harden SSH on server {index}?",
           "assistant": f"Disable password logins on server {index}, use keys, and restrict AllowUsers."}
    return {**row, **changes}


def test_cybersecurity_instructions_and_their_bad_rows(tmp_path):
    path = write_jsonl(tmp_path / "cyber.jsonl", [trendyol_row(0), trendyol_row(1)])
    examples = load_examples(DataSettings(task="cybersecurity", source=str(path)))
    assert (examples[1].prompt, examples[1].response) == (trendyol_row(1)["user"], trendyol_row(1)["assistant"])
    assert all("senior cybersecurity analyst" not in example.prompt for example in examples)
    write_jsonl(path, [trendyol_row(0), trendyol_row(1, assistant="  "), trendyol_row(2, user=7)])
    with pytest.raises(DataError) as error:
        load_examples(DataSettings(task="cybersecurity", source=str(path)))
    assert f"{path}:2: field 'assistant' is empty" in str(error.value)
    assert f"{path}:3: field 'user' must be a string, got int" in str(error.value)
    renamed = write_jsonl(tmp_path / "other.jsonl", [{"instruction": "Explain CSRF.", "output": "A forged request ..."}])
    mapped = load_examples(DataSettings(task="cybersecurity", source=str(renamed), prompt_field="instruction", response_field="output"))
    assert mapped[0].prompt == "Explain CSRF."


def legal_row(index: int, **changes) -> dict:
    """A row as isaacus/open-australian-legal-qa publishes it (qa.jsonl)."""
    row = {"question": f"In case {index}, what did the court decide about costs?",
           "answer": f"In case {index}, the court ordered each party to bear its own costs.",
           "text": "The court orders that each party bear its own costs.",
           "prompt": "# Snippet\nThe court orders ...\n# Question\n...",
           "source": {"version_id": f"v{index}", "type": "decision", "jurisdiction": "commonwealth",
                      "source": "federal_court_of_australia", "citation": f"Case {index} [2020] FCA {index}",
                      "url": "https://example.org", "text": "..."}}
    return {**row, **changes}


def test_legal_qa_rows_and_their_bad_rows(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [legal_row(0), legal_row(1)])
    examples = load_examples(DataSettings(task="legal_qa", source=str(path)))
    assert (examples[0].prompt, examples[0].response) == (legal_row(0)["question"], legal_row(0)["answer"])
    write_jsonl(path, [legal_row(0), {key: value for key, value in legal_row(1).items() if key != "answer"}])
    with pytest.raises(DataError, match=rf"{path}:2: missing field 'answer' \(has: prompt, question, source, text\)"):
        load_examples(DataSettings(task="legal_qa", source=str(path)))


def test_rubric_evaluation_reads_the_domains_through_a_field_mapping(tmp_path):
    cyber = write_jsonl(tmp_path / "cyber.jsonl", [trendyol_row(i) for i in range(6)])
    task = CapabilityTask(kind="rubric", source=str(cyber), fields={"question": "user", "reference": "assistant"})
    items = load_task_items(task, seed=0).items
    assert [(item.question, item.reference) for item in items] == [(trendyol_row(i)["user"], trendyol_row(i)["assistant"]) for i in range(6)]
    legal = write_jsonl(tmp_path / "qa.jsonl", [legal_row(0), {"question": "q", "text": "no answer"}])
    task = CapabilityTask(kind="rubric", source=str(legal), fields={"reference": "answer"})
    with pytest.raises(DataError, match=rf"{legal}:2: missing field 'answer' \(read as reference; has: question, text\)"):
        load_task_items(task, seed=0)


def test_hub_data_files_of_script_datasets():
    """A hub dataset whose repository holds a loading script is read from its data file."""
    assert hub_data_file("isaacus/open-australian-legal-qa/qa.jsonl") == "hf://datasets/isaacus/open-australian-legal-qa/qa.jsonl"
    assert hub_data_file("openai/gsm8k") is None
    assert hub_data_file("m-a-p/SuperGPQA") is None
