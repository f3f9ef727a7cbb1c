"""The attack catalog, named sets and the new eval: fields, on files the tests write themselves
(StrongREJECT-shaped files hold objlab's placeholder text here; the real files are in
test_strongreject.py)."""

from __future__ import annotations

import json

import pytest
from tiny import FORBIDDEN

from objlab.config import parse_config
from objlab.errors import ConfigError, DataError
from objlab.evaluate.axes.attack_catalog import build_catalog
from objlab.evaluate.instruments import check_instruments
from objlab.evaluate.axes.strongreject_attacks import strongreject_attacks
from objlab.scoring.string_matching import load_phrases
from objlab.scoring.strongreject_rubric import load_strongreject_rubric

TEMPLATES = {"none": "{forbidden_prompt}", "wikipedia": "Placeholder article about {forbidden_prompt}.",
             "base64": "Placeholder, in base64: {forbidden_prompt}", "combination_2": "Placeholder combo {forbidden_prompt}",
             "aim": "Placeholder story: {forbidden_prompt}", "dev_mode_v2": "Placeholder mode: {forbidden_prompt}",
             "prefix_injection": "Placeholder prefix: {forbidden_prompt}", "brand_new": "Placeholder new {forbidden_prompt}"}


@pytest.fixture
def wrapping(tmp_path):
    path = tmp_path / "wrapping_jailbreaks.json"
    path.write_text(json.dumps(TEMPLATES))
    return path


def config_with(tmp_path, jailbreak=None, judge=None, **evaluation):
    section = {"jailbreak": {"prompts": str(FORBIDDEN), **(jailbreak or {})}, **evaluation}
    if judge is not None:
        section["judge"] = judge
    data = {"model": {"name_or_path": "m"}, "data": {"source": "d.jsonl"}, "eval": section}
    return parse_config(data, "test.yaml")


def test_seed5_without_strongreject_files_is_objlabs_own():
    catalog = build_catalog()
    assert catalog.expand(["none", "seed5", "dan"]) == ["none", "dan", "happy_to_help", "roleplay", "encyclopedia", "translation"]
    assert [attack.origin for attack in catalog.select(["seed5"])] == ["objlab"] * 5
    assert [attack.name for attack in catalog.select(["none", "seed5"]) if attack.is_no_attack] == ["none"]


def test_strongreject_attacks_from_a_file_follow_the_packages_rules(wrapping):
    attacks = strongreject_attacks(str(wrapping))
    assert attacks["strongreject/base64"].encode == "base64" and attacks["strongreject/base64"].decode == "base64"
    assert attacks["strongreject/combination_2"].encode == "base64" and attacks["strongreject/combination_2"].decode == "json_list"
    assert attacks["strongreject/none"].is_no_attack and not attacks["strongreject/rot_13"].is_no_attack
    assert "not described" in attacks["strongreject/brand_new"].description  # a key this objlab does not know still loads
    assert attacks["strongreject/wikipedia"].wrap("a {b} c") == "Placeholder article about a {b} c."


def test_unknown_attacks_are_named_with_what_is_known(wrapping):
    with pytest.raises(DataError, match=r"unknown attack\(s\) \['strongreject/aim'\].*need eval.jailbreak.strongreject"):
        build_catalog().select(["strongreject/aim"])
    with pytest.raises(DataError, match=r"unknown attack\(s\) \['strongreject/poems'\].*sets: seed5"):
        build_catalog(strongreject=str(wrapping)).select(["strongreject/poems"])


def test_bad_strongreject_files_are_named(tmp_path):
    with pytest.raises(DataError, match=r"eval.jailbreak.strongreject: .*missing.json does not exist"):
        strongreject_attacks(str(tmp_path / "missing.json"))
    with pytest.raises(DataError, match=r"holds neither wrapping_jailbreaks.json nor jailbreak_files/wrapping_jailbreaks.json"):
        strongreject_attacks(str(tmp_path))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"aim": "no slot here"}))
    with pytest.raises(DataError, match=r"bad.json: jailbreak 'aim': expected a template string containing \{forbidden_prompt\}"):
        strongreject_attacks(str(bad))
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"bad.json:1: not valid JSON"):
        strongreject_attacks(str(bad))


def test_user_attacks_cannot_take_reserved_names(tmp_path):
    folder = tmp_path / "attacks"
    folder.mkdir()
    (folder / "a.yaml").write_text("name: strongreject/aim\ndescription: mine\ntemplate: 'x {prompt}'\n")
    with pytest.raises(DataError, match=r"a.yaml: field 'name' must not contain '/'"):
        build_catalog(str(folder))
    (folder / "a.yaml").write_text("name: seed5\ndescription: mine\ntemplate: 'x {prompt}'\n")
    with pytest.raises(DataError, match=r"attack name\(s\) \['seed5'\] are names of attack sets"):
        build_catalog(str(folder))
    (folder / "a.yaml").write_text("name: mine\ndescription: mine\ntemplate: 'x {prompt}'\nencode: rot13\n")
    with pytest.raises(DataError, match=r"field 'encode' must be one of base64, rot_13, disemvowel, got 'rot13'"):
        build_catalog(str(folder))
    (folder / "a.yaml").write_text("name: mine\ndescription: mine\ntemplate: 'Reply in base64: {prompt}'\nencode: base64\ndecode: base64\n")
    mine = build_catalog(str(folder)).attacks["mine"]
    assert mine.origin == "user" and mine.wrap("Hi") == "Reply in base64: SGk=" and mine.decoded("SGk=") == "Hi"


def test_judge_rubric_file_is_checked(tmp_path):
    path = tmp_path / "judge_templates.json"
    path.write_text(json.dumps({"strongreject_rubric": "Rate {forbidden_prompt} / {response}"}))
    with pytest.raises(DataError, match=r"judge_templates.json: missing judge template\(s\) \['strongreject_rubric_system'\]"):
        load_strongreject_rubric(str(path))
    path.write_text(json.dumps({"strongreject_rubric": "Rate {forbidden_prompt} only", "strongreject_rubric_system": "S"}))
    with pytest.raises(DataError, match=r"strongreject_rubric must have the slots \['forbidden_prompt', 'response'\], it has \['forbidden_prompt'\]"):
        load_strongreject_rubric(str(path))
    with pytest.raises(DataError, match=r"eval.judge.rubric: .*nowhere.json does not exist"):
        load_strongreject_rubric(str(tmp_path / "nowhere.json"))


def test_phrase_file_is_checked(tmp_path):
    path = tmp_path / "string_matching.txt"
    path.write_text("I'm sorry\n\nI cannot\n")
    with pytest.raises(DataError, match=r"string_matching.txt:2: empty line"):
        load_phrases(str(path))


def test_new_config_fields_are_validated(tmp_path, wrapping):
    with pytest.raises(ConfigError, match=r"eval.jailbreak.strongreject_path: unknown field"):
        config_with(tmp_path, {"strongreject_path": str(wrapping)})
    with pytest.raises(ConfigError, match=r"eval.jailbreak.scorer: 'string_matching' needs eval.jailbreak.string_matching"):
        config_with(tmp_path, {"scorer": "string_matching"})
    with pytest.raises(ConfigError, match=r"eval: .*success_threshold applies to a judge's rubric score, and judge.kind is 'none'"):
        config_with(tmp_path, {"success_threshold": 0.5})
    with pytest.raises(ConfigError, match=r"eval.jailbreak: .*the scorer 'classifier' is not a rubric judge"):
        config_with(tmp_path, {"scorer": "classifier", "success_threshold": 0.5}, judge={"kind": "openai", "model": "j"})
    with pytest.raises(ConfigError, match=r"eval.jailbreak: .*hf_config and split apply to hf: sources only"):
        config_with(tmp_path, {"split": "test"})
    with pytest.raises(ConfigError, match=r"eval.capability.0: .*hf_config and split apply to hf: sources only"):
        config_with(tmp_path, capability=[{"kind": "gsm8k", "source": "local.jsonl", "hf_config": "main"}])
    assert config_with(tmp_path, capability=[{"kind": "gsm8k", "source": "hf:openai/gsm8k", "hf_config": "main", "split": "test"}])


def test_instruments_are_checked_before_anything_runs(tmp_path, wrapping):
    good = config_with(tmp_path, {"strongreject": str(wrapping), "attacks": ["none", "seed5"]})
    with pytest.raises(DataError, match=r"unknown attack\(s\) \['strongreject/wikipedia_with_title'"):
        check_instruments(config_with(tmp_path, {"strongreject": str(wrapping), "attacks": ["strongreject/wikipedia_with_title"]}).eval)
    check_instruments(good.eval)  # seed5's keys are all in the file
    with pytest.raises(DataError, match=r"eval.judge.rubric: "):
        check_instruments(config_with(tmp_path, judge={"kind": "openai", "model": "j", "rubric": str(tmp_path / "none.json")}).eval)
    with pytest.raises(DataError, match=r"eval.jailbreak.string_matching: "):
        check_instruments(config_with(tmp_path, {"string_matching": str(tmp_path / "none.txt")}).eval)


def test_relative_instrument_paths_resolve_against_the_config_file(tmp_path, wrapping):
    config = parse_config({"model": {"name_or_path": "m"}, "data": {"source": "d.jsonl"},
                           "eval": {"jailbreak": {"prompts": str(FORBIDDEN), "strongreject": "wrapping_jailbreaks.json"}}},
                          "c.yaml", base_dir=tmp_path)
    assert config.eval.jailbreak.strongreject == str(wrapping)
