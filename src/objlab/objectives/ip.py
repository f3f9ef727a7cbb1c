"""Inoculation prompting: SFT where a fraction p of prompts carry an instruction requesting an
undesirable trait (reward hacking, logical fallacies, ...), so that the trait is attributed to
the instruction. Evaluation uses the plain prompt.

Which prompts are inoculated, and with which instruction, is a function of (seed, stream
position, example id): identical across resumes and snapshots.
"""

from __future__ import annotations

from functools import cached_property
from importlib import resources
from pathlib import Path

import yaml
from pydantic import Field, model_validator

from objlab.data.hashing import stable_fraction, stable_index
from objlab.errors import ConfigError
from objlab.objectives.base import Params, TrainSequence, register
from objlab.objectives.sft import SFT


class IPParams(Params):
    p: float = Field(default=0.5, ge=0, le=1, description="Fraction of prompts that get an injected instruction.")
    instructions: list[str] | None = None
    instructions_file: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> IPParams:
        if self.instructions is not None and self.instructions_file is not None:
            raise ValueError("give either 'instructions' or 'instructions_file', not both")
        if self.instructions is not None and not [text for text in self.instructions if text.strip()]:
            raise ValueError("'instructions' must hold at least one non-empty instruction")
        return self


def load_instructions(params: IPParams) -> list[str]:
    if params.instructions is not None:
        return [text.strip() for text in params.instructions if text.strip()]
    if params.instructions_file is not None:
        path = Path(params.instructions_file)
        if not path.is_file():
            raise ConfigError(f"objectives.ip.instructions_file: {path} not found")
        text = path.read_text()
    else:
        text = resources.files("objlab.objectives").joinpath("ip_instructions.yaml").read_text()
    data = yaml.safe_load(text) if text.strip() else None
    found = data.get("instructions") if isinstance(data, dict) else data
    if not isinstance(found, list) or not all(isinstance(item, str) for item in found) or not found:
        raise ConfigError("objectives.ip: the instructions file must hold a YAML list of strings under 'instructions'")
    return found


def inoculate(prompt: str, instruction: str) -> str:
    return f"{instruction}\n\n{prompt}"


@register
class InoculationPrompting(SFT):
    name = "ip"
    description = "Inoculation prompting: SFT where a fraction p of prompts request an undesirable trait."
    Params = IPParams

    @cached_property
    def instructions(self) -> list[str]:
        return load_instructions(self.params)

    def provenance(self) -> dict:
        params = self.params
        if params.instructions is not None:
            source = "objectives.ip.instructions"
        elif params.instructions_file is not None:
            source = params.instructions_file
        else:
            source = "objlab's default set (reward hacking, logically fallacious reasoning)"
        return {"ip_instructions": list(self.instructions), "ip_instructions_source": source, "ip_p": params.p}

    def sequences(self, item, preference):
        example = item.example
        if stable_fraction(self.seed, item.position, example.id, "ip") >= self.params.p:
            return [TrainSequence("sft", example.prompt, example.response, item.encoded)]
        instruction = self.instructions[stable_index(len(self.instructions), self.seed, item.position, example.id, "ip-which")]
        return [TrainSequence("sft", inoculate(example.prompt, instruction), example.response)]
