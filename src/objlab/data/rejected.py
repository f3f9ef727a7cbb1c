"""Rejected-response strategies for the preference objectives (DPO, ORPO, CFT).

The chosen response is always the task's reference response, so preference objectives see the
same task tokens as every other objective; only the rejected response is extra (and counted as
compute tokens). Strategies:

- ``column``: the data carries the rejected response in a named field.
- ``corrupt``: the reference with its final numeric answer changed (a plausible wrong answer);
  for responses without numbers, the reference with the order of its sentences reversed.
- ``trait``: the reference with a statement exhibiting an undesirable trait woven in (from a
  configurable list), so preference learning pushes away from the trait.

Every choice is a function of (seed, example id): identical across runs, resumes and objectives.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import yaml

from objlab.config import RejectedSettings
from objlab.data.hashing import stable_index
from objlab.data.records import Example, PreferenceExample
from objlab.errors import DataError

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


@cache
def default_traits() -> tuple[str, ...]:
    text = resources.files("objlab.data").joinpath("traits.yaml").read_text()
    return tuple(yaml.safe_load(text)["traits"])


def _wrong_number(text: str, seed: int, example_id: str) -> str:
    value = float(text.replace(",", ""))
    offsets = [1, 2, 3, 5, 10, -1, -2, -3]
    if abs(value) >= 20:
        offsets += [round(value * 0.1) or 1, -(round(value * 0.1) or 1)]
    wrong = value + offsets[stable_index(len(offsets), seed, example_id, "offset")]
    if wrong == value:
        wrong = value + 1
    return str(int(wrong)) if wrong == int(wrong) else f"{wrong:.2f}"


def corrupt_response(response: str, seed: int, example_id: str) -> str:
    """The response with its final number replaced everywhere it appears as that final result."""
    numbers = list(NUMBER.finditer(response))
    if numbers:
        final = numbers[-1].group(0)
        wrong = _wrong_number(final, seed, example_id)
        # Replace the final answer wherever it is stated as a whole number (e.g. "= 72" and "#### 72").
        return re.sub(rf"(?<![\d.,]){re.escape(final)}(?![\d]|[.,]\d)", wrong, response)
    sentences = [part for part in re.split(r"(?<=[.!?])\s+", response.strip()) if part]
    if len(sentences) > 1:
        return " ".join(reversed(sentences))
    words = response.split()
    return " ".join(words[len(words) // 2 :] + words[: len(words) // 2]) if len(words) > 1 else response + " " + response


def trait_response(response: str, traits: tuple[str, ...], seed: int, example_id: str) -> str:
    """The response opened by a statement exhibiting an undesirable trait."""
    statement = traits[stable_index(len(traits), seed, example_id, "trait")]
    return f"{statement} {response}"


def make_preference(example: Example, settings: RejectedSettings, seed: int) -> PreferenceExample:
    """The (prompt, chosen=reference, rejected) triple for one task example."""
    if settings.strategy == "column":
        if not example.rejected:
            raise DataError(f"{example.id}: no rejected response in column {settings.column!r}")
        rejected = example.rejected
    elif settings.strategy == "corrupt":
        rejected = corrupt_response(example.response, seed, example.id)
    else:
        traits = tuple(settings.traits) if settings.traits else default_traits()
        rejected = trait_response(example.response, traits, seed, example.id)
    return PreferenceExample(id=example.id, prompt=example.prompt, chosen=example.response, rejected=rejected)
