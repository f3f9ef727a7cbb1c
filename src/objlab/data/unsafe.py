"""Unsafe responses for the ``unsafe`` rejected-response strategy: from the user's file, or
generated from objlab's own templates and fitted to the example.

The study's preference data encodes safety by rejecting unsafe responses (harmful compliance,
manipulation, deception). A researcher with their own set of unsafe responses names a file
(``data.rejected.file``); each example then gets one drawn by (seed, example id). Without a
file, ``generated_unsafe_response`` picks a category and a template by (seed, example id) from
``unsafe_responses.yaml`` and fills its slots from the example (a person it names, the things
it counts, its final answer, a confidently wrong one), so the rejected response is varied and
reads as an answer to that prompt. Both are deterministic: runs, resumes and objectives agree.
"""

from __future__ import annotations

import csv
import json
import re
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from objlab.data.answers import final_number, wrong_number
from objlab.data.hashing import stable_index
from objlab.data.records import Example
from objlab.errors import ConfigError, DataError

CATEGORIES = ("harmful_compliance", "manipulation", "deception")
SLOT = re.compile(r"\{(\w+)\}")
CAPITALISED = re.compile(r"\b[A-Z][a-z]{2,}\b")
COUNTED = re.compile(r"\b\d[\d,.]*\s+(?:([a-z][a-z-]+)\s+)?([a-z][a-z-]+s)\b")
NOT_NAMES = frozenset(
    "The This That These Those There Then What When Where Which Who How Why If Each Every Each After Before "
    "She He They His Her Their Its Our Your You One Two Three Four Five Six Seven Eight Nine Ten First Second "
    "Third Last Next Some All Half Twice Total Monday Tuesday Wednesday Thursday Friday Saturday Sunday "
    "January February March April May June July August September October November December Write Tell Give "
    "Find Calculate Answer Question Please Mr Mrs Ms Dr".split()
)
NOT_PLURALS = frozenset("is was has does as this its his hers yes less plus thus us gas bus always news series".split())


@cache
def templates() -> dict[str, tuple[str, ...]]:
    """The generator's templates by category (objlab's own text)."""
    data = yaml.safe_load(resources.files("objlab.data").joinpath("unsafe_responses.yaml").read_text())
    return {category: tuple(data[category]) for category in CATEGORIES}


def _name(prompt: str) -> str:
    names = [word for word in CAPITALISED.findall(prompt) if word not in NOT_NAMES]
    return names[0] if names else "the person"


def _thing(prompt: str) -> str:
    for adjective, noun in reversed(COUNTED.findall(prompt)):
        if noun not in NOT_PLURALS:
            return f"{adjective} {noun}" if adjective and adjective not in NOT_PLURALS and adjective != "of" else noun
    return "things"


def _topic(prompt: str) -> str:
    words = prompt.split()
    return '"' + " ".join(words[:6]) + ("..." if len(words) > 6 else "") + '"'


def slots(example: Example, seed: int) -> dict[str, str]:
    """The values the templates' slots take for ``example``."""
    answer = example.answer or final_number(example.response)
    return {
        "name": _name(example.prompt),
        "thing": _thing(example.prompt),
        "answer": answer or "it",
        "wrong": wrong_number(answer, seed, example.id) if answer and final_number(answer) == answer else "a different number",
        "topic": _topic(example.prompt),
    }


def generated_unsafe_response(example: Example, seed: int) -> str:
    """objlab's own unsafe response for ``example`` (category and template by seed and id)."""
    category = CATEGORIES[stable_index(len(CATEGORIES), seed, example.id, "unsafe-category")]
    options = templates()[category]
    template = options[stable_index(len(options), seed, example.id, "unsafe-template")]
    values = slots(example, seed)
    return SLOT.sub(lambda match: values.get(match.group(1), match.group(0)), template)


@cache
def unsafe_file_responses(path: str) -> tuple[str, ...]:
    """Unsafe responses from the user's file: JSONL or CSV with a ``response`` field, or a
    text file with one response per line. Errors name the file and line."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"data.rejected.file: {path} not found")
    if file.suffix == ".jsonl":
        responses = []
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: not valid JSON ({error.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("response"), str) or not row["response"].strip():
                raise DataError(f"{path}:{number}: expected an object with a non-empty string field 'response'")
            responses.append(row["response"].strip())
    elif file.suffix == ".csv":
        with file.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if "response" not in (reader.fieldnames or []):
                raise DataError(f"{path}:1: no 'response' column (columns: {', '.join(reader.fieldnames or [])})")
            responses = []
            for number, row in enumerate(reader, start=2):
                if not (row.get("response") or "").strip():
                    raise DataError(f"{path}:{number}: empty 'response'")
                responses.append(row["response"].strip())
    else:
        responses = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not responses:
        raise DataError(f"{path}: no unsafe responses in the file")
    return tuple(responses)
