"""Jailbreak attacks as data: each attack is a YAML file with a template around ``{prompt}``.

objlab ships its own attack texts (``attack_templates/*.yaml``: none, dan, refusal_suppression, roleplay,
wikipedia, translation); a researcher adds an attack by writing another YAML file in a
directory named by ``eval.jailbreak.attacks_dir``, no code needed. Fields:

- ``name``: how configs and reports refer to it;
- ``description``: one line for the report;
- ``template``: text containing ``{prompt}`` exactly once;
- ``requires_translator`` (optional, default false): the prompt is first translated into the
  configured low-resource language and the model's answer translated back before scoring.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from objlab.errors import DataError

PLACEHOLDER = "{prompt}"


@dataclass(frozen=True)
class Attack:
    name: str
    description: str
    template: str
    requires_translator: bool = False
    source: str = "builtin"

    def wrap(self, prompt: str) -> str:
        """The attacked prompt (``str.replace``, so braces in the prompt are safe)."""
        return self.template.replace(PLACEHOLDER, prompt)


def parse_attack(text: str, source: str) -> Attack:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise DataError(f"{source}{where}: not valid YAML: {getattr(error, 'problem', error)}") from None
    if not isinstance(data, dict):
        raise DataError(f"{source}: an attack file must be a mapping with name, description, template")
    unknown = set(data) - {"name", "description", "template", "requires_translator"}
    if unknown:
        raise DataError(f"{source}: unknown field(s) {sorted(unknown)} (expected name, description, template, requires_translator)")
    for field in ("name", "description", "template"):
        if not isinstance(data.get(field), str) or not data[field].strip():
            raise DataError(f"{source}: field {field!r} must be a non-empty string")
    if data["template"].count(PLACEHOLDER) != 1:
        raise DataError(f"{source}: field 'template' must contain {PLACEHOLDER} exactly once")
    requires = data.get("requires_translator", False)
    if not isinstance(requires, bool):
        raise DataError(f"{source}: field 'requires_translator' must be true or false")
    return Attack(data["name"], data["description"].strip(), data["template"], requires, source)


def builtin_attacks() -> dict[str, Attack]:
    folder = resources.files("objlab.evaluate.axes").joinpath("attack_templates")
    attacks = {}
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".yaml"):
            attack = parse_attack(entry.read_text(), f"objlab/evaluate/axes/attack_templates/{entry.name}")
            attacks[attack.name] = attack
    return attacks


def load_attacks(extra_dir: str | None = None) -> dict[str, Attack]:
    """Built-in attacks plus every ``*.yaml`` in ``extra_dir`` (which may override a built-in)."""
    attacks = builtin_attacks()
    if extra_dir:
        folder = Path(extra_dir)
        if not folder.is_dir():
            raise DataError(f"eval.jailbreak.attacks_dir: {extra_dir} is not a directory")
        for path in sorted(folder.glob("*.yaml")):
            attack = parse_attack(path.read_text(), str(path))
            attacks[attack.name] = attack
    return attacks


def select_attacks(names: list[str], extra_dir: str | None = None) -> list[Attack]:
    """The configured attacks in order; an unknown name is an error listing the known ones."""
    available = load_attacks(extra_dir)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise DataError(f"eval.jailbreak.attacks: unknown attack(s) {unknown} (known: {', '.join(available)})")
    return [available[name] for name in names]
