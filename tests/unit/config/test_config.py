from pathlib import Path

import pytest
import yaml

from objlab.config import load_config, parse_config
from objlab.errors import ConfigError

MINIMAL = {"model": {"name_or_path": "some/model"}, "data": {"source": "train.jsonl"}}


def test_defaults_are_the_studys():
    config = parse_config(MINIMAL)
    assert (config.lora.r, config.lora.alpha, config.lora.dropout) == (16, 32, 0.05)
    assert config.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert config.train.schedule == "constant"
    assert config.objectives == {"sft": {}}


def test_missing_field_is_named():
    with pytest.raises(ConfigError, match=r"model: required \(or models:, a list of models\)"):
        parse_config({"data": {"source": "x.jsonl"}}, source="study.yaml")


def test_unknown_field_is_named_with_its_path():
    with pytest.raises(ConfigError, match=r"train\.batchsize: unknown field"):
        parse_config({**MINIMAL, "train": {"batchsize": 4}})


def test_wrong_value_names_field_and_expectation():
    with pytest.raises(ConfigError, match=r"train\.batch_size: Input should be greater than 0 \(got 0\)"):
        parse_config({**MINIMAL, "train": {"batch_size": 0}})


def test_unknown_objective_lists_known_ones():
    with pytest.raises(ConfigError, match=r"unknown objective 'rlhf' \(known: sft, dpo, orpo, kl, cft, ip, aware\)"):
        parse_config({**MINIMAL, "objectives": ["rlhf"]})


def test_objective_params_validated():
    with pytest.raises(ConfigError, match=r"objectives\.dpo: beta: Input should be greater than 0"):
        parse_config({**MINIMAL, "objectives": {"dpo": {"beta": -1}}})
    config = parse_config({**MINIMAL, "objectives": [{"name": "orpo", "lambda": 0.2}, "sft"]})
    assert config.objectives == {"orpo": {"lambda": 0.2}, "sft": {}}


def test_budgets_sorted_and_positive():
    assert parse_config({**MINIMAL, "budgets": [50, 25, 50]}).budgets == [25, 50]
    with pytest.raises(ConfigError, match="budgets must be positive"):
        parse_config({**MINIMAL, "budgets": [0]})


def test_yaml_error_names_line(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  name_or_path: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: not valid YAML"):
        load_config(path)


def test_relative_paths_resolve_against_config_file(tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"model": {"name_or_path": "org/hub-model"}, "data": {"source": "data/train.jsonl"}}))
    config = load_config(path)
    assert config.data.source == str(tmp_path / "data" / "train.jsonl")
    assert config.model.name_or_path == "org/hub-model"  # not a local path: a hub id stays


def test_example_config_is_valid(tmp_path: Path):
    from typer.testing import CliRunner

    from objlab.cli import app

    target = tmp_path / "objlab.yaml"
    result = CliRunner().invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    config = parse_config(yaml.safe_load(target.read_text()))
    assert set(config.objectives) == {"sft", "dpo", "orpo", "kl", "cft", "ip", "aware"}
    assert config.budgets[0] == 25000 and config.budgets[-1] == 800000


def test_fingerprint_changes_with_config():
    assert parse_config(MINIMAL).fingerprint() == parse_config(MINIMAL).fingerprint()
    assert parse_config(MINIMAL).fingerprint() != parse_config({**MINIMAL, "seeds": [1]}).fingerprint()


@pytest.mark.parametrize(("evaluation", "message"), [
    ({"judge": {"kind": "openai"}}, r"eval\.judge: model: required when kind is 'openai'"),
    ({"judge": {"kind": "hf"}}, r"eval\.judge: model: required when kind is 'hf'"),
    ({"judge": {"kind": "gpt"}}, r"eval\.judge\.kind: Input should be 'none', 'openai' or 'hf'"),
    ({"judge": {"kind": "openai", "model": "m", "max_retries": -1}}, r"eval\.judge\.max_retries: Input should be greater than or equal to 0"),
    ({"judge": {"kind": "openai", "model": "m", "timeout_s": 0}}, r"eval\.judge\.timeout_s: Input should be greater than 0"),
    ({"judge": {"kind": "openai", "model": "m", "api_key": "sk-x"}}, r"eval\.judge\.api_key: unknown field"),
    ({"jailbreak": {"prompts": "f.csv", "scorer": "judge"}}, r"eval\.jailbreak\.scorer: 'judge' \(objlab_rubric\) needs a judge, but eval\.judge\.kind is 'none'"),
    ({"jailbreak": {"prompts": "f.csv", "scorer": "llm"}}, r"eval\.jailbreak\.scorer: unknown scorer 'llm' \(registered: classifier, string_matching, .*, or python:module:function\)"),
    ({"jailbreak": {"prompts": "f.csv", "translator": {"kind": "openai"}}}, r"eval\.jailbreak\.translator: kind 'openai' needs 'model'"),
    ({"jailbreak": {"scorer": "auto"}}, r"eval\.jailbreak\.prompts: required field is missing"),
])
def test_scorer_configs_are_checked_when_the_config_loads(evaluation, message):
    """A judge or scorer misconfiguration is refused at load time, naming the field, rather than
    when the first evaluation reaches it (possibly hours into a grid)."""
    with pytest.raises(ConfigError, match=message):
        parse_config({**MINIMAL, "eval": evaluation})


def test_a_config_stored_before_the_later_fields_keeps_its_fingerprint_and_resumes(make_config, tmp_path):
    import hashlib

    from objlab.config import canonical_json
    from objlab.runner.guard import config_changes
    from tiny import FORBIDDEN

    config = make_config(eval={"jailbreak": {"prompts": str(FORBIDDEN)}})
    stored = config.model_dump(mode="json")
    for key in ("scorers", "scorer_options"):  # absent from configs stored before they existed
        del stored["eval"]["jailbreak"][key]
    for key in ("lm_eval", "overrefusal", "toxicity"):
        del stored["eval"][key]
    del stored["data"]["where"], stored["data"]["holdout"], stored["models"]
    for task in stored["eval"]["capability"]:
        del task["where"], task["holdout"], task["fields"]
    assert config.fingerprint() == hashlib.sha256(canonical_json(stored).encode()).hexdigest()[:16]
    assert config_changes(stored, config.model_dump(mode="json")) == []
    with_scorers = make_config(eval={"jailbreak": {"prompts": str(FORBIDDEN), "scorers": ["classifier"]}})
    assert config_changes(stored, with_scorers.model_dump(mode="json")) == ["eval.jailbreak.scorers: '(absent)' -> ['classifier']"]


def test_fields_added_later_leave_older_fingerprints_alone():
    """A config that leaves the later fields (row selection, hold-out, field mapping, the lm-eval
    preset) unset keeps the fingerprints it had before they existed (values from that version),
    so stored runs resume; setting one changes them."""
    full = {**MINIMAL, "eval": {"capability": [{"kind": "gsm8k", "source": "hf:openai/gsm8k", "hf_config": "main", "split": "test", "limit": 5}],
                                "lm_eval": {"tasks": ["truthfulqa_mc2"]}}}
    assert (parse_config(MINIMAL).fingerprint(), parse_config(MINIMAL).training_fingerprint("sft")) == ("b01fd45f4d1b4ceb", "90ccb4c0a9ef51a3")
    assert parse_config(full).fingerprint() == "cf6c2788d9e1b20c"
    selected = parse_config({**MINIMAL, "data": {"source": "train.jsonl", "where": {"discipline": "Engineering"}}})
    assert selected.training_fingerprint("sft") != "90ccb4c0a9ef51a3" and selected.fingerprint() != "b01fd45f4d1b4ceb"
