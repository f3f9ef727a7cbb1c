"""``evaluate`` end to end on the tiny model: all three axes, the files, the CLI, paired tests."""

import csv
import json
import math

import pytest
from factories import make_lora_adapter
from tiny import GSM8K, PERSONA
from typer.testing import CliRunner

from objlab.cli import app
from objlab.errors import ConfigError
from objlab.evaluate.evaluator import (
    EvalSession,
    compare_with_base,
    evaluate,
    evaluate_many,
    read_result,
    write_result,
)
from objlab.scoring.refusal import CLASSIFIER_NAME

FORBIDDEN = "category,source,forbidden_prompt\n" + "".join(
    f"placeholder,test,Placeholder forbidden request number {index}.\n" for index in range(3)
)


def eval_section(tmp_path, **overrides):
    forbidden = tmp_path / "forbidden.csv"
    forbidden.write_text(FORBIDDEN)
    section = {
        "generation": {"max_new_tokens": 8, "backend": "hf"},
        "capability": [{"kind": "gsm8k", "source": str(GSM8K), "limit": 4}],
        "jailbreak": {"prompts": str(forbidden), "attacks": ["none", "dan", "translation"]},
        "persona": {"dir": str(PERSONA), "limit": 5},
    }
    section.update(overrides)
    return section


@pytest.fixture(scope="module")
def adapters(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline-adapters")
    return {
        "sft": make_lora_adapter(tiny_model, folder / "sft", 3, objective="sft"),
        "cft": make_lora_adapter(tiny_model, folder / "cft", 4, objective="cft"),
    }


def test_evaluate_writes_all_axes(make_config, tmp_path):
    config = make_config(eval=eval_section(tmp_path))
    result = evaluate(config, EvalSession(config), None)

    strict = result.metric("capability", "accuracy_strict", "gsm8k")
    assert strict.n == 4 and strict.method.startswith("Wilson") and 0 <= strict.ci_low <= strict.ci_high <= 1
    assert result.metric("capability", "accuracy_flexible", "gsm8k").n == 4
    for attack in ("none", "dan"):
        assert result.metric("jailbreak", "asr", attack).n == 3
    skipped = result.metric("jailbreak", "asr", "translation")
    assert skipped.status == "skipped" and "translator" in skipped.note and math.isnan(skipped.value)
    overall = result.metric("jailbreak", "asr", "")  # over the attacks: the no-attack condition is the base rate, apart
    assert overall.n == 3 and "macro-average of 1" in overall.method and "macro over 1 attack(s): dan" in overall.note
    assert "not included: none (no-attack condition" in overall.note and "skipped attacks not included: translation" in overall.note
    definition = result.info.jailbreak
    assert (definition.macro_over, definition.no_attack, definition.skipped) == (["dan"], ["none"], ["translation"])
    assert definition.scorer == CLASSIFIER_NAME and "offline classifier" in definition.success
    assert [(a.name, a.origin) for a in definition.attacks] == [("none", "objlab"), ("dan", "objlab"), ("translation", "objlab")]
    assert set(result.info.subsets) == {"capability:gsm8k", "jailbreak", "persona:machiavellianism", "persona:narcissism", "persona:psychopathy"}
    assert len(result.info.subsets["capability:gsm8k"].item_ids) == 4 and result.info.subsets["jailbreak"].item_ids == []
    for trait in ("machiavellianism", "narcissism", "psychopathy"):
        row = result.metric("persona", "p_match", trait)
        assert row.n == 5 and 0 < row.value < 1 and row.method.startswith("bootstrap")
    assert result.metric("persona", "p_match", "").n == 15

    counts = {axis: sum(item.axis == axis for item in result.items) for axis in ("capability", "jailbreak", "persona")}
    assert counts == {"capability": 4, "jailbreak": 6, "persona": 15}
    persona_item = next(item for item in result.items if item.axis == "persona")
    assert set(json.loads(persona_item.output)) == {"logp_match", "logp_not_match"}
    assert result.info.backend == "hf" and result.info.generations == 4 + 6
    assert set(result.info.seconds) == {"capability", "jailbreak", "persona"}

    out = write_result(result, tmp_path / "out")
    with (out / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["axis", "metric", "group", "value", "n", "ci_low", "ci_high", "method", "status", "note", "p_value", "comparison"]
    assert len(rows) == len(result.metrics)
    assert len((out / "items.jsonl").read_text().splitlines()) == 25
    again = read_result(out)
    assert again.metrics[0] == result.metrics[0] and again.items[-1] == result.items[-1]


def test_adapters_mixed_equal_alone_and_compare_with_base(make_config, tmp_path, adapters):
    """Evaluating adapters together gives each one's result alone; paired tests use the same items."""
    config = make_config(eval=eval_section(tmp_path, jailbreak={"prompts": str(tmp_path / "forbidden.csv"), "attacks": ["none"]}))
    session = EvalSession(config)
    alone = [evaluate(config, session, path) for path in (adapters["sft"], adapters["cft"], None)]
    together = evaluate_many(config, session, [adapters["sft"], adapters["cft"], None])
    for single, joint in zip(alone, together):
        assert [item.output for item in single.items] == [item.output for item in joint.items]
        assert [(r.metric, r.group, r.value) for r in single.metrics] == [(r.metric, r.group, r.value) for r in joint.metrics]
    sft, cft, base = alone
    assert [i.output for i in sft.items if i.axis == "capability"] != [i.output for i in base.items if i.axis == "capability"]

    cft_prompts = [item.prompt for item in cft.items if item.axis in ("capability", "jailbreak", "persona")]
    assert all(prompt.startswith("<SAFE> ") for prompt in cft_prompts)
    assert not any("<SAFE>" in item.output or "<UNSAFE>" in item.output for item in cft.items)
    assert cft.info.adapter.objective == "cft"
    base_again = evaluate(config, session, None)  # loading the CFT adapter's tokens left the base unchanged
    assert [item.output for item in base_again.items] == [item.output for item in base.items]

    rows = compare_with_base(sft, base)
    persona = [row for row in rows if row.metric == "p_match_vs_base"]
    # one row per trait and one over every (trait, statement), Holm-adjusted together
    assert [row.group for row in persona][-1] == "" and persona[-1].n == 15
    assert len(persona) == 4 and all(row.n == 5 and "Holm-adjusted over 4 persona figures" in row.comparison for row in persona[:3])
    diff = [i.score for i in sft.items if i.group == "narcissism"]
    base_scores = [i.score for i in base.items if i.group == "narcissism"]
    narcissism = next(row for row in persona if row.group == "narcissism")
    assert narcissism.value == pytest.approx(sum(a - b for a, b in zip(diff, base_scores)) / 5)
    assert {(row.metric, row.group) for row in rows if row.axis != "persona"} == {
        ("asr_vs_base", "none"), ("accuracy_strict_vs_base", "gsm8k"), ("accuracy_flexible_vs_base", "gsm8k")
    }
    assert all(row.p_value is None or 0 <= row.p_value <= 1 for row in rows)


def test_rubric_task_without_judge_is_skipped(make_config, tmp_path):
    open_ended = tmp_path / "open.jsonl"
    open_ended.write_text(json.dumps({"question": "Why?", "reference": "Because."}) + "\n")
    config = make_config(eval={"capability": [{"kind": "rubric", "source": str(open_ended), "name": "open"}]})
    result = evaluate(config, EvalSession(config), None)
    row = result.metric("capability", "rubric_score", "open")
    assert row.status == "skipped" and "no judge" in row.note and result.items == []


def test_cli_evaluate_with_baseline(make_config, tmp_path, adapters):
    make_config(eval=eval_section(tmp_path, jailbreak={"prompts": str(tmp_path / "forbidden.csv"), "attacks": ["none"]}))
    config_path = tmp_path / "config.yaml"  # written by make_config
    runner = CliRunner()
    base = runner.invoke(app, ["evaluate", str(config_path), "--out", str(tmp_path / "base")])
    assert base.exit_code == 0, base.output
    assert "22 item records" in base.output and (tmp_path / "base" / "items.jsonl").is_file()
    assert "ASR per attack = the share of forbidden" in base.output and "macro ASR: none (no attack ran besides" in base.output
    cell = runner.invoke(
        app, ["evaluate", str(config_path), "--adapter", str(adapters["sft"]), "--baseline", str(tmp_path / "base"), "--out", str(tmp_path / "cell")]
    )
    assert cell.exit_code == 0, cell.output
    metrics = (tmp_path / "cell" / "metrics.csv").read_text()
    assert "p_match_vs_base" in metrics and "asr_vs_base" in metrics
    manifest = json.loads((tmp_path / "cell" / "eval_manifest.json").read_text())
    assert manifest["adapter"]["objective"] == "sft" and manifest["items"] == 4 + 3 + 15

    missing = runner.invoke(app, ["evaluate", str(config_path), "--adapter", str(tmp_path), "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "not a LoRA adapter directory" in missing.output


def test_fewshot_turns_and_multiple_choice(make_config, tmp_path, monkeypatch):
    questions = tmp_path / "gsm.jsonl"
    questions.write_text(json.dumps({"question": "Tom has 2 apples and buys 3. How many?", "answer": "2 + 3 = 5\n#### 5"}) + "\n")
    choice = tmp_path / "mc.jsonl"
    choice.write_text(json.dumps({"question": "Which one swims?", "options": ["stone", "eel", "nail"], "answer": "B"}) + "\n")
    config = make_config(eval={
        "generation": {"max_new_tokens": 4},
        "capability": [{"kind": "gsm8k", "source": str(questions), "fewshot": 2, "fewshot_source": str(GSM8K), "name": "gsm-2shot"},
                       {"kind": "multiple_choice", "source": str(choice), "name": "mc"}],
    })
    session = EvalSession(config)
    seen = []
    generate = session.generate
    monkeypatch.setattr(session, "generate", lambda requests, *args, **kwargs: seen.extend(requests) or generate(requests, *args, **kwargs))
    result = evaluate(config, session, None)

    fewshot_text = session.tokenizer.decode(list(seen[0].prompt_ids))
    first, second = (json.loads(line) for line in GSM8K.read_text().splitlines()[:2])
    assert fewshot_text.count("<|user|>") == 3 and fewshot_text.count("<|assistant|>") == 3
    assert fewshot_text.index(first["answer"]) < fewshot_text.index(second["question"]) < fewshot_text.index("Tom has 2 apples")
    mc_item = next(item for item in result.items if item.group == "mc")
    assert "A. stone\nB. eel\nC. nail" in mc_item.prompt and json.loads(mc_item.verdict)["gold"] == "B"
    assert result.metric("capability", "accuracy", "mc").n == 1
    assert result.metric("capability", "accuracy_strict", "gsm-2shot").n == 1

    missing = make_config(eval={"capability": [{"kind": "gsm8k", "source": str(questions), "fewshot": 2}]})
    with pytest.raises(ConfigError, match=r"eval\.capability\.0\.fewshot_source: needed when fewshot is 2"):
        evaluate(missing, session, None)
