"""Rejected-response strategies for the preference objectives (DPO, ORPO, CFT).

The chosen response is always the task's reference response, so preference objectives see the
same task tokens as every other objective; only the rejected response is extra (and counted as
compute tokens). The study encodes safety information by making the rejected response an
UNSAFE one ("safe/unsafe response pairs"), so that is the default. Strategies:

- ``unsafe`` (default): an unsafe response (harmful compliance, manipulation, deception) for the
  example: drawn from the user's file (``data.rejected.file``) or, without one, generated from
  objlab's own templates (``unsafe_responses.yaml``) with slots filled from the example.
- ``column``: the data carries the rejected response in a named field (the user vouches that it
  is the unsafe one).
- ``corrupt``: the reference with its final numeric answer changed (a plausible wrong answer);
  for responses without numbers, the reference with the order of its sentences reversed. A
  capability-only control: it teaches arithmetic, not safety.
- ``trait``: the reference opened by a statement exhibiting an undesirable trait (from a
  configurable list).

Every choice is a function of (seed, example id): identical across runs, resumes and objectives
(CFT's ``<UNSAFE>`` rows use exactly the responses DPO and ORPO reject).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import yaml

from objlab.config.sections import RejectedSettings
from objlab.data.answers import ANY_NUMBER, wrong_number
from objlab.data.hashing import stable_index
from objlab.data.records import Example, PreferenceExample
from objlab.data.unsafe import generated_unsafe_response, unsafe_file_responses
from objlab.errors import DataError


@cache
def default_traits() -> tuple[str, ...]:
    text = resources.files("objlab.data").joinpath("traits.yaml").read_text()
    return tuple(yaml.safe_load(text)["traits"])


def corrupt_response(response: str, seed: int, example_id: str) -> str:
    """The response with its final number replaced everywhere it appears as that final result."""
    numbers = list(ANY_NUMBER.finditer(response))
    if numbers:
        final = numbers[-1].group(0)
        wrong = wrong_number(final, seed, example_id)
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
    if settings.strategy == "unsafe":
        if settings.file:
            responses = unsafe_file_responses(settings.file)
            rejected = responses[stable_index(len(responses), seed, example.id, "unsafe-file")]
        else:
            rejected = generated_unsafe_response(example, seed)
    elif settings.strategy == "column":
        if not example.rejected:
            raise DataError(f"{example.id}: no rejected response in column {settings.column!r}")
        rejected = example.rejected
    elif settings.strategy == "corrupt":
        rejected = corrupt_response(example.response, seed, example.id)
    else:
        traits = tuple(settings.traits) if settings.traits else default_traits()
        rejected = trait_response(example.response, traits, seed, example.id)
    return PreferenceExample(id=example.id, prompt=example.prompt, chosen=example.response, rejected=rejected)


def describe_strategy(settings: RejectedSettings) -> str:
    """One line naming where rejected responses come from (manifest, results, report)."""
    if settings.strategy == "unsafe":
        source = f"file {settings.file} ({len(unsafe_file_responses(settings.file))} responses)" if settings.file else "objlab's own generator"
        return f"unsafe: {source}"
    if settings.strategy == "column":
        return f"column: {settings.column}"
    if settings.strategy == "corrupt":
        return "corrupt: wrong final answer (capability-only control)"
    return "trait: " + ("configured statements" if settings.traits else "objlab's trait statements")
