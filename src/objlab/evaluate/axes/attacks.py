"""Jailbreak attacks as data: each attack is a template around the forbidden prompt.

objlab ships its own attack texts (``attack_templates/*.yaml``: none, dan, happy_to_help,
roleplay, encyclopedia, translation); a researcher adds an attack by writing another YAML
file in a directory named by ``eval.jailbreak.attacks_dir``, no code needed. StrongREJECT's
jailbreaks come from the user's copy of its files (``strongreject_attacks``); the catalog of
everything available, and the named sets such as ``seed5``, is ``attack_catalog``.

Fields of an attack YAML file:

- ``name``: how configs and reports refer to it (no ``/``: that marks StrongREJECT's names);
- ``description``: one line for the report;
- ``template``: text containing ``{prompt}`` exactly once;
- ``requires_translator`` (optional, default false): the prompt is first translated into the
  configured low-resource language (or ``language``) and the answer translated back before
  scoring;
- ``encode`` / ``decode`` (optional): a prompt encoding applied before wrapping and a decoder
  applied to the answer before scoring, by name (``attack_transforms``: base64, rot_13,
  disemvowel / base64, json_list).

An attack that leaves the prompt as it is (template = placeholder, no encoding, decoding or
translation) is the no-attack condition: its ASR is the base rate, reported on its own and
left out of the macro ASR.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml

from objlab.errors import DataError
from objlab.evaluate.axes.attack_transforms import DECODERS, ENCODERS

PLACEHOLDER = "{prompt}"
ATTACK_FIELDS = ("name", "description", "template", "requires_translator", "encode", "decode", "language")
Origin = Literal["objlab", "strongreject", "user"]


@dataclass(frozen=True)
class Attack:
    """One attack: how a forbidden prompt is turned into what the model reads, and back.

    ``source`` is the file the text was read from; ``origin`` says whose text it is.
    """

    name: str
    description: str
    template: str
    requires_translator: bool = False
    source: str = "builtin"
    origin: Origin = "objlab"
    placeholder: str = PLACEHOLDER
    encode: str | None = None
    decode: str | None = None
    language: str | None = None  # translation target; None: the configured translator's language

    def wrap(self, prompt: str) -> str:
        """The attacked prompt: encoded, then put into the template (``str.replace``, so braces
        in the prompt are safe, and every occurrence of the placeholder is filled)."""
        text = ENCODERS.get(self.encode)(prompt) if self.encode else prompt
        return self.template.replace(self.placeholder, text)

    def decoded(self, response: str) -> str:
        """The answer as it is scored (decoded when the attack asked for an encoded answer)."""
        return DECODERS.get(self.decode)(response) if self.decode else response

    @property
    def is_no_attack(self) -> bool:
        """True when the attack leaves the prompt and answer as they are (the base rate)."""
        return self.template == self.placeholder and not (self.encode or self.decode or self.requires_translator)


def _yaml_mapping(text: str, source: str) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise DataError(f"{source}{where}: not valid YAML: {getattr(error, 'problem', error)}") from None
    if not isinstance(data, dict):
        raise DataError(f"{source}: an attack file must be a mapping with name, description, template")
    return data


def _check_fields(data: dict, source: str) -> None:
    unknown = set(data) - set(ATTACK_FIELDS)
    if unknown:
        raise DataError(f"{source}: unknown field(s) {sorted(unknown)} (expected {', '.join(ATTACK_FIELDS)})")
    for field in ("name", "description", "template"):
        if not isinstance(data.get(field), str) or not data[field].strip():
            raise DataError(f"{source}: field {field!r} must be a non-empty string")
    if "/" in data["name"]:
        raise DataError(f"{source}: field 'name' must not contain '/' (reserved for StrongREJECT's strongreject/<key>)")
    if data["template"].count(PLACEHOLDER) != 1:
        raise DataError(f"{source}: field 'template' must contain {PLACEHOLDER} exactly once")
    if not isinstance(data.get("requires_translator", False), bool):
        raise DataError(f"{source}: field 'requires_translator' must be true or false")
    for field, known in (("encode", ENCODERS), ("decode", DECODERS)):
        if data.get(field) is not None and data[field] not in known:
            raise DataError(f"{source}: field {field!r} must be one of {', '.join(known)}, got {data[field]!r}")
    if data.get("language") is not None and not (isinstance(data["language"], str) and data.get("requires_translator")):
        raise DataError(f"{source}: field 'language' must be a language name, and needs requires_translator: true")


def parse_attack(text: str, source: str, origin: Origin = "objlab") -> Attack:
    """An attack from the text of its YAML file; every problem names the file and the field."""
    data = _yaml_mapping(text, source)
    _check_fields(data, source)
    return Attack(
        data["name"], data["description"].strip(), data["template"], data.get("requires_translator", False),
        source, origin, PLACEHOLDER, data.get("encode"), data.get("decode"), data.get("language"),
    )


def builtin_attacks() -> dict[str, Attack]:
    """objlab's own attacks (its own text), by name."""
    folder = resources.files("objlab.evaluate.axes").joinpath("attack_templates")
    attacks = {}
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".yaml"):
            attack = parse_attack(entry.read_text(), f"objlab/evaluate/axes/attack_templates/{entry.name}")
            attacks[attack.name] = attack
    return attacks


def user_attacks(extra_dir: str) -> dict[str, Attack]:
    """Every ``*.yaml`` attack in the user's ``eval.jailbreak.attacks_dir``."""
    folder = Path(extra_dir)
    if not folder.is_dir():
        raise DataError(f"eval.jailbreak.attacks_dir: {extra_dir} is not a directory")
    attacks = {}
    for path in sorted(folder.glob("*.yaml")):
        attack = parse_attack(path.read_text(), str(path), "user")
        attacks[attack.name] = attack
    return attacks


def load_attacks(extra_dir: str | None = None) -> dict[str, Attack]:
    """Built-in attacks plus every ``*.yaml`` in ``extra_dir`` (which may override a built-in)."""
    return {**builtin_attacks(), **(user_attacks(extra_dir) if extra_dir else {})}
