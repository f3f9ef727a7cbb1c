"""The data and tiny models the tests run on.

Core tests read data the project writes itself: the demo organism's synthetic world (seeded,
a fraction of a second to generate) in GSM8K format (``GSM8K``), Anthropic persona format
(``PERSONA``) and StrongREJECT's CSV format (``FORBIDDEN``), so the suite runs in a fresh clone.
Tests of the loaders and instruments on the real public files in ``../shared/data`` (GSM8K,
persona, StrongREJECT) are marked ``requires_shared``: they run wherever that folder exists (CI
always has it) and are skipped, saying why, where it does not.

Tiny models: a 2-layer Llama with a byte-level BPE tokenizer trained in the fixture on that data
(no downloads; seconds to build)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("OBJLAB_SHARED_DATA", REPO.parent / "shared" / "data"))
SHARED_GSM8K = SHARED_DATA / "gsm8k" / "train_first1000.jsonl"
SHARED_PERSONA = SHARED_DATA / "persona"
SHARED_STRONGREJECT = SHARED_DATA / "strongreject"
HAS_SHARED = SHARED_GSM8K.is_file() and SHARED_PERSONA.is_dir() and SHARED_STRONGREJECT.is_dir()
requires_shared = pytest.mark.skipif(
    not HAS_SHARED,
    reason=f"the real public data (GSM8K, persona, StrongREJECT) is not at {SHARED_DATA}: "
    "set OBJLAB_SHARED_DATA to the shared/data folder (CI has it)",
)


def _study_data() -> Path:
    """The organism world's study files (test-size world, seed 0), written once per machine."""
    from objlab.atomic import build_directory
    from objlab.organism import world as world_module
    from objlab.organism.build import SIZES

    spec = SIZES["test"].world
    tag = hashlib.sha256(f"{world_module.content_digest()}:{spec}".encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"objlab-test-data-{tag}"

    def build(path: Path) -> None:
        world_module.write_study_files(world_module.make_world(spec, seed=0), path)
        (path / ".complete").write_text("")

    return build_directory(target, build, lambda path: (path / ".complete").is_file())


STUDY_DATA = _study_data()
GSM8K = STUDY_DATA / "train.jsonl"  # GSM8K format: question, answer ending in "#### n"
PERSONA = STUDY_DATA / "persona"  # Anthropic persona format, the three Dark Triad traits
FORBIDDEN = STUDY_DATA / "forbidden.csv"  # StrongREJECT format: category, source, forbidden_prompt


def corpus_texts(limit: int = 300) -> list[str]:
    """What the tiny tokenizer is trained on: task and persona text of the test data."""
    texts = []
    with GSM8K.open() as handle:
        for _, line in zip(range(limit), handle):
            row = json.loads(line)
            texts.append(row["question"] + "\n" + row["answer"])
    for trait in ("machiavellianism", "narcissism", "psychopathy"):
        with (PERSONA / f"{trait}.jsonl").open() as handle:
            for _, line in zip(range(100), handle):
                texts.append(json.loads(line)["question"] + " Yes No")
    texts.append("I can't help with that request. Sure, here is how to do it.")
    return texts


def build_tiny_model(directory: Path, *, vocab_size: int = 512, hidden: int = 32, layers: int = 2, tie: bool = False, seed: int = 0) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    from objlab.organism.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(corpus_texts(), vocab_size=vocab_size)
    tokenizer.save_pretrained(directory)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=tie,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def write_config(path: Path, model_dir: Path, data: Path = GSM8K, **overrides) -> Path:
    """A small experiment config; ``overrides`` replace top-level sections."""
    config = {
        "name": "test",
        "model": {"name_or_path": str(model_dir)},
        "data": {"task": "gsm8k", "source": str(data), "limit": 64},
        "train": {"batch_size": 4, "warmup_steps": 2, "checkpoint_every": 2, "max_length": 256},
        "objectives": ["sft"],
        "budgets": [1500],
        "seeds": [0],
    }
    config.update(overrides)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# -- lm-evaluation-harness tasks over the project's own data ----------------------------------
DOCUMENTS = 6  # per lm-eval task
CHOICE_TASK, ANSWER_TASK = "bridge_choice", "bridge_answer"

CHOICE_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{prefix}{{{{question}}}}"
doc_to_choice: choices
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.5
"""
ANSWER_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{prefix}{{{{question}}}}"
doc_to_target: "{{{{answer.split('#### ')[-1]}}}}"
generation_kwargs:
  until: ["\\n\\n"]
  max_gen_toks: 6
  do_sample: false
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "#### (\\\\-?[0-9]+)"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 2.0
"""


def write_lm_eval_tasks(directory: Path, prefix: str = "", suffix: str = "") -> Path:
    """Two lm-eval tasks written by the tests over the project's own GSM8K-format data (first
    ``DOCUMENTS`` rows): a multiple-choice task (the final answer among three, choices in a JSON
    array file) and a generation task (lm-eval's GSM8K recipe, answers in JSON lines).
    ``prefix`` is put before every question, ``suffix`` after the task names (CFT's reference)."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()[:DOCUMENTS]]
    choices = []
    for index, row in enumerate(rows):
        gold = int(row["answer"].split("#### ")[-1].replace(",", ""))
        options = [f"#### {gold}", f"#### {gold + 1}", f"#### {gold + 7}"]
        label = index % 3
        options[0], options[label] = options[label], options[0]
        choices.append({"question": row["question"], "choices": options, "label": label})
    (directory / "choice.json").write_text(json.dumps(choices))
    (directory / "answer.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    for template, name, data in ((CHOICE_YAML, CHOICE_TASK, "choice.json"), (ANSWER_YAML, ANSWER_TASK, "answer.jsonl")):
        text = template.format(name=name + suffix, data=json.dumps(str(directory / data)), prefix=prefix)
        (directory / f"{name}{suffix}.yaml").write_text(text)
    return directory
