"""`limit` draws seeded samples stratified by category, recorded in the evaluation info; hf:
evaluation sources take a config and a split."""

from __future__ import annotations

import json

import pytest
from tiny import FORBIDDEN, GSM8K, PERSONA

from objlab.config.evaluation import CapabilityTask
from objlab.data.records import LoadedRows
from objlab.evaluate.axes.capability import load_task_items
from objlab.evaluate.axes.sources import (
    load_choice,
    load_forbidden_prompts,
    load_numeric,
    load_persona,
)
from objlab.evaluate.axes.subsets import allocate, sample_rows


@pytest.mark.parametrize(("sizes", "limit", "expected"), [
    ({"a": 10, "b": 10, "c": 10}, 6, {"a": 2, "b": 2, "c": 2}),
    ({"a": 50, "b": 30, "c": 20}, 10, {"a": 5, "b": 3, "c": 2}),
    ({"a": 5, "b": 3, "c": 2}, 5, {"a": 3, "b": 1, "c": 1}),  # 2.5/1.5/1.0: the remainders go to a (seen first), then b
    ({"a": 97, "b": 2, "c": 1}, 3, {"a": 1, "b": 1, "c": 1}),  # proportional gives 3/0/0: every category keeps one
    ({"a": 97, "b": 2, "c": 1}, 2, {"a": 2, "b": 0, "c": 0}),  # fewer items than categories: proportional only
])
def test_allocation_by_hand(sizes, limit, expected):
    assert allocate(sizes, limit) == expected
    assert sum(allocate(sizes, limit).values()) == limit


def test_sample_is_seeded_in_file_order_and_recorded():
    rows = [{"category": "xy"[i % 2], "text": str(i)} for i in range(40)]
    loaded = LoadedRows("data.jsonl", rows, list(range(1, 41)))
    first, info = sample_rows(loaded, 10, 0, "category")
    again, _ = sample_rows(loaded, 10, 0, "category")
    other, _ = sample_rows(loaded, 10, 1, "category")
    assert first.lines == again.lines and first.lines != other.lines
    assert first.lines == sorted(first.lines) and len(first.lines) == 10
    assert info.strata == {"x": 5, "y": 5} and info.item_ids == [f"data.jsonl:{line}" for line in first.lines]
    whole, whole_info = sample_rows(loaded, None, 0, "category")
    assert whole == loaded and whole_info.item_ids == [] and whole_info.rows == 40
    plain, plain_info = sample_rows(LoadedRows("p.jsonl", [{"t": str(i)} for i in range(9)], list(range(1, 10))), 3, 0, "category")
    assert plain_info.stratified_by is None and len(plain.rows) == 3  # no category field: one stratum, still seeded


def test_every_loader_samples_and_records():
    prompts = load_forbidden_prompts(str(FORBIDDEN), limit=10)
    categories = {item.category for item in load_forbidden_prompts(str(FORBIDDEN))}
    assert len(prompts) == 10 and {item.category for item in prompts} == categories and prompts.info.stratified_by == "category"
    persona = load_persona(str(PERSONA / "narcissism.jsonl"), limit=8)
    assert sum(item.matching == "Yes" for item in persona) == persona.info.strata.get("Yes", 0)
    numeric = load_numeric(str(GSM8K), limit=5)
    assert len(numeric) == 5 and numeric.info.stratified_by is None and numeric.info.item_ids == [item.item_id for item in numeric]
    assert [item.item_id for item in load_numeric(str(GSM8K), limit=5)] == numeric.info.item_ids


def test_multiple_choice_items_stratify_by_their_category(tmp_path):
    path = tmp_path / "mc.jsonl"
    rows = [{"question": f"Q{i}?", "options": ["a", "b"], "answer": "A", "category": ["physics", "law", "art"][i % 3]} for i in range(30)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    items = load_choice(str(path), limit=6, seed=3)
    assert items.info.strata == {"physics": 2, "law": 2, "art": 2}
    task = CapabilityTask(kind="multiple_choice", source=str(path), limit=6)
    assert [item.item_id for item in load_task_items(task, 3)] == items.info.item_ids


def test_hf_sources_take_config_and_split(tmp_path, monkeypatch):
    """A local dataset directory whose README declares two configurations with their splits."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    root = tmp_path / "dataset"
    for config, split, number in (("main", "train", 1), ("main", "test", 2), ("socratic", "test", 3)):
        (root / config).mkdir(parents=True, exist_ok=True)
        (root / config / f"{split}.jsonl").write_text(json.dumps({"question": f"What is {number}+{number}?", "answer": f"#### {2 * number}"}) + "\n")
    (root / "README.md").write_text(
        "---\nconfigs:\n- config_name: main\n  data_files:\n  - split: train\n    path: main/train.jsonl\n"
        "  - split: test\n    path: main/test.jsonl\n- config_name: socratic\n  data_files:\n  - split: test\n    path: socratic/test.jsonl\n---\n"
    )
    source = f"hf:{root}"
    assert [item.gold for item in load_numeric(source, hf_config="main", split="test")] == ["4"]
    assert [item.gold for item in load_numeric(source, hf_config="socratic", split="test")] == ["6"]
    assert [item.gold for item in load_numeric(source, hf_config="main")] == ["2"]  # split defaults to train
    task = CapabilityTask(kind="gsm8k", source=source, hf_config="main", split="test")
    assert [item.gold for item in load_task_items(task, 0)] == ["4"]
