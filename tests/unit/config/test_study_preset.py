"""`objlab init --preset objective-matters`: the reference study's whole grid as one commented
config. Its `models:` list (checked as text: five models, the primary first) and, with that list
replaced by one `model:` section, a valid config with the paper's ladder, objectives and
instruments; every commented domain block is a valid data section and capability task."""

import yaml
from paper_preset import PAPER_MODELS, domain_blocks, models_block, preset_text, toxicity_block, with_one_model, with_toxicity
from typer.testing import CliRunner

from objlab.cli import app
from objlab.config import parse_config
from objlab.config.evaluation import CapabilityTask, ToxicitySettings
from objlab.config.sections import DataSettings


def test_init_writes_the_preset_and_refuses_an_unknown_one(tmp_path):
    path = tmp_path / "paper.yaml"
    result = CliRunner().invoke(app, ["init", "--preset", "objective-matters", str(path)])
    assert result.exit_code == 0, result.output
    assert path.read_text() == preset_text() and "--plan --gpu H100" in result.output
    result = CliRunner().invoke(app, ["init", "--preset", "objective-mattres", str(tmp_path / "other.yaml")])
    assert result.exit_code == 2 and "unknown preset 'objective-mattres' (known: objective-matters)" in result.output
    assert not (tmp_path / "other.yaml").exists()


def test_the_models_are_the_papers_primary_first():
    text = preset_text()
    models = models_block(text)
    assert [entry["name_or_path"] for entry in models] == PAPER_MODELS
    assert all(entry["dtype"] == "bfloat16" for entry in models)
    assert "\nmodel:" not in text  # `models:` is the one model section


def test_with_one_model_it_is_the_papers_grid(tmp_path):
    config = parse_config(yaml.safe_load(with_one_model(preset_text())), source="paper.yaml", base_dir=tmp_path)
    assert config.model.name_or_path == PAPER_MODELS[0]
    assert config.budgets == [25_000, 50_000, 100_000, 200_000, 400_000, 800_000]
    assert config.seeds == [0, 1, 2]
    assert config.objectives == {"sft": {}, "dpo": {"beta": 0.1}, "orpo": {"lambda": 0.05}, "kl": {"lambda": 0.001}, "cft": {}, "ip": {"p": 0.5}}
    assert (config.lora.r, config.lora.alpha, config.lora.dropout, len(config.lora.target_modules)) == (16, 32, 0.05, 7)
    assert config.train.schedule == "constant" and config.runner.snapshots
    assert (config.data.task, config.data.source, config.data.hf_config, config.data.split) == ("gsm8k", "hf:openai/gsm8k", "main", "train")
    evaluation = config.eval
    assert [(task.kind, task.source, task.split) for task in evaluation.capability] == [("gsm8k", "hf:openai/gsm8k", "test")]
    assert evaluation.jailbreak.attacks == ["none", "seed5"] and evaluation.jailbreak.scorer == "judge"
    assert evaluation.jailbreak.translator.language == "Zulu"
    assert evaluation.judge.kind == "openai" and evaluation.judge.rubric.endswith("judge_templates.json")
    assert evaluation.persona.trait_files() == {trait: f"persona/{trait}.jsonl" for trait in ("machiavellianism", "narcissism", "psychopathy")}
    assert evaluation.lm_eval.preset == "normative" and evaluation.lm_eval.tasks[0] == "truthfulqa_gen"
    assert "aware" not in config.objectives and "# aware:" in preset_text()


def test_every_commented_domain_is_a_valid_data_section_and_capability_task():
    blocks = domain_blocks(preset_text())
    assert set(blocks) == {"supergpqa-engineering", "cybersecurity", "legal"}
    tasks = {"supergpqa-engineering": "supergpqa", "cybersecurity": "cybersecurity", "legal": "legal_qa"}
    for name, block in blocks.items():
        data = DataSettings(**block["data"])
        assert data.task == tasks[name] and data.holdout.keep == "train"
        (capability,) = [CapabilityTask(**task) for task in block["capability"]]
        assert capability.holdout.keep == "test" and capability.holdout.fraction == data.holdout.fraction
        assert capability.source == data.source and capability.holdout.key == data.holdout.key
    assert blocks["supergpqa-engineering"]["data"]["where"] == {"discipline": "Engineering"}


def test_the_preset_as_written_is_a_grid_over_its_five_models(tmp_path):
    config = parse_config(yaml.safe_load(preset_text()), source="paper.yaml", base_dir=tmp_path)
    keys = [key for key, _ in config.per_model()]
    assert keys == ["Llama-3.1-8B-Instruct", "gemma-2-2b-it", "gemma-2-9b-it", "Qwen2.5-7B-Instruct", "Qwen3-4B"]
    assert [single.model.name_or_path for _, single in config.per_model()] == PAPER_MODELS
    assert all(single.models is None and single.budgets == config.budgets for _, single in config.per_model())


def test_the_commented_toxicity_block_is_a_valid_section(tmp_path):
    block = toxicity_block(preset_text())
    settings = ToxicitySettings(**block)
    assert settings.scorer == "toxigen_roberta" and settings.prompts == "toxigen/prompts"
    assert settings.scorer_options == {"toxigen_roberta": {"model": "tomh/toxigen_roberta"}}
    config = parse_config(yaml.safe_load(with_one_model(with_toxicity(preset_text()))), source="paper.yaml", base_dir=tmp_path)
    assert config.eval.toxicity == settings and config.eval.persona is not None and config.eval.lm_eval.preset == "normative"
    assert parse_config(yaml.safe_load(with_one_model(preset_text())), source="paper.yaml", base_dir=tmp_path).eval.toxicity is None
