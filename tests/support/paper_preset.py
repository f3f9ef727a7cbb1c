"""The `objective-matters` preset's text for tests: its models, the preset with the `models:`
list replaced by one `model:` section (for a schema or a plan that takes one model), and its
commented domain blocks parsed."""

import re
from importlib import resources

import yaml

PAPER_MODELS = [
    "meta-llama/Llama-3.1-8B-Instruct",
    "google/gemma-2-2b-it",
    "google/gemma-2-9b-it",
    "Qwen/Qwen2.5-7B-Instruct",
    "Qwen/Qwen3-4B",
]
MODELS_BLOCK = re.compile(r"^models:\n((?:  .*\n)+)", re.MULTILINE)


def preset_text() -> str:
    return resources.files("objlab.templates").joinpath("objective_matters.yaml").read_text()


def models_block(text: str) -> list[dict]:
    """The `models:` list as YAML reads it."""
    match = MODELS_BLOCK.search(text)
    assert match, "the preset has no top-level models: list"
    return yaml.safe_load("models:\n" + match.group(1))["models"]


def with_one_model(text: str, index: int = 0) -> str:
    """The preset with its `models:` list replaced by `model:` = the list's entry ``index``."""
    entry = models_block(text)[index]
    section = "model:\n" + "".join(f"  {key}: {value}\n" for key, value in entry.items())
    return MODELS_BLOCK.sub(lambda _: section, text, count=1)


def domain_blocks(text: str) -> dict[str, dict]:
    """The commented `# >>> domain NAME` ... `# <<<` blocks, uncommented and parsed."""
    blocks = {}
    for name, body in re.findall(r"^# >>> domain (\S+)\n((?:#.*\n)*?)# <<<", text, re.MULTILINE):
        blocks[name] = yaml.safe_load("".join(line[2:] + "\n" for line in body.splitlines()))
    return blocks


def toxicity_block(text: str) -> dict:
    """The commented ``eval.toxicity`` block, uncommented and parsed (its section's mapping)."""
    match = re.search(r"^  # toxicity:.*\n((?:  #   .*\n)+)", text, re.MULTILINE)
    assert match, "the preset has no commented eval.toxicity block"
    body = "".join(line.replace("  # ", "", 1) + "\n" for line in match.group(1).splitlines())
    return yaml.safe_load(body)


def with_toxicity(text: str) -> str:
    """The preset with its commented ``eval.toxicity`` block uncommented."""
    return re.sub(r"^  # (toxicity:.*\n)((?:  #   .*\n)+)",
                  lambda m: "  " + m.group(1) + "".join(line.replace("  # ", "  ", 1) + "\n" for line in m.group(2).splitlines()),
                  text, count=1, flags=re.MULTILINE)
