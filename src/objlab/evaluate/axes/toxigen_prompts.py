"""ToxiGen's prompts, read from the user's copy, for the toxicity axis.

ToxiGen (Hartvigsen et al. 2022, github.com/microsoft/TOXIGEN) publishes its generation prompts
as text files in ``prompts/``, one per target group and kind: ``hate_asian_1k.txt``,
``neutral_asian_1k.txt``, ... Each **line is one prompt**: a list of statements about the group,
each started by "- ", ending with a bare "-" for the model to continue, written by its
``make_prompts.py`` as the string's ``repr`` -- its line breaks are the two characters ``\\n``
on the file's line. objlab reads them as open-instruct's ToxiGen evaluation does
(``eval/toxigen/run_eval.py``): every line stripped, ``\\\\`` turned into ``\\`` and ``\\n``
into a line break; the label is the file name's first word (``hate`` / ``neutral``), the group
the rest (the ``_1k`` size tag dropped). Blank lines are no prompts.

Accepted sources (``eval.toxicity.prompts``):

- a directory: every ``*.txt`` file in it (not in its subfolders), in name order;
- one such ``.txt`` file;
- a CSV/JSONL file (or ``hf:`` source) with the fields ``prompt``, ``group`` and ``label`` (the
  names configurable; no label field is allowed): ToxiGen's prompts in a table, or the user's own.

Item ids are ``file:line``, stable across runs, so a cell's generations pair with the base
model's. ``limit`` draws a seeded sample stratified by target group (by group and label where
the prompts have several labels), so a subset covers every group (``subsets``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from objlab.config.evaluation import HF_SPLIT_DEFAULT, ToxicitySettings
from objlab.data.loaders import LoadedRows, read_rows, require_text_fields, row_id
from objlab.errors import DataError
from objlab.evaluate.axes.subsets import Sampled, sample_positions

PROMPT_FILE = re.compile(r"^(?P<label>[^_]+)_(?P<group>.+?)(?:_\d+k)?\.txt$")
STRATUM = "_stratum"


@dataclass(frozen=True)
class ToxicityPrompt:
    """One prompt: its text (line breaks restored), the target group, its label ("hate",
    "neutral"; "" when the source has none)."""

    item_id: str
    prompt: str
    group: str
    label: str


def unescape(line: str) -> str:
    """A prompt file's line as open-instruct reads it: ``\\\\`` -> ``\\``, then ``\\n`` -> a line break."""
    return line.strip().replace("\\\\", "\\").replace("\\n", "\n")


def _file_name_parts(path: Path) -> tuple[str, str]:
    match = PROMPT_FILE.match(path.name)
    if match is None:
        raise DataError(f"{path}: not a ToxiGen prompt file name: expected <label>_<group>[_1k].txt, e.g. hate_asian_1k.txt")
    return match["label"], match["group"]


def read_prompt_file(path: Path) -> list[ToxicityPrompt]:
    """Every prompt of one ToxiGen prompt file (one a line), its label and group from its name."""
    label, group = _file_name_parts(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    prompts = [ToxicityPrompt(f"{path.name}:{number}", unescape(line), group, label)
               for number, line in enumerate(lines, 1) if line.strip()]
    if not prompts:
        raise DataError(f"{path}: holds no prompts (one a line expected)")
    return prompts


def _read_text_prompts(source: str) -> list[ToxicityPrompt]:
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(file for file in path.glob("*.txt") if file.is_file())
        if not files:
            raise DataError(f"{path}: no ToxiGen prompt files (*.txt, e.g. hate_asian_1k.txt) in this directory")
        return [prompt for file in files for prompt in read_prompt_file(file)]
    return read_prompt_file(path)


def _read_table_prompts(settings: ToxicitySettings) -> list[ToxicityPrompt]:
    loaded = read_rows(settings.prompts, hf_config=settings.hf_config, split=settings.split or HF_SPLIT_DEFAULT)
    if not loaded.rows:
        raise DataError(f"{loaded.source}: holds no toxicity prompts")
    fields = [settings.prompt_field, settings.group_field] + ([settings.label_field] if settings.label_field else [])
    require_text_fields(loaded, fields)
    return [
        ToxicityPrompt(row_id(loaded, line), unescape(row[settings.prompt_field]), row[settings.group_field].strip(),
                       row[settings.label_field].strip() if settings.label_field else "")
        for row, line in zip(loaded.rows, loaded.lines)
    ]


def _is_text_source(source: str) -> bool:
    path = Path(source).expanduser()
    return not source.startswith("hf:") and (path.is_dir() or path.suffix.lower() == ".txt")


def load_toxicity_prompts(settings: ToxicitySettings, *, seed: int = 0) -> Sampled[ToxicityPrompt]:
    """The configured prompts (see the module docstring); ``limit`` draws a seeded sample
    stratified by group (and label, where there are several)."""
    source = settings.prompts
    if not source.startswith("hf:") and not Path(source).expanduser().exists():
        raise DataError(f"{source}: not found (eval.toxicity.prompts: ToxiGen's prompts/ directory, one of its files, or a CSV/JSONL)")
    prompts = _read_text_prompts(source) if _is_text_source(source) else _read_table_prompts(settings)
    several_labels = len({prompt.label for prompt in prompts}) > 1
    strata = [f"{prompt.group} ({prompt.label})" if several_labels else prompt.group for prompt in prompts]
    loaded = LoadedRows(source, [{STRATUM: stratum} for stratum in strata], list(range(1, len(prompts) + 1)))
    chosen, info = sample_positions(loaded, settings.limit, seed, STRATUM)
    if info.item_ids:  # the drawn prompts' own ids (file:line), not positions in the concatenation
        info = info.model_copy(update={"item_ids": [prompts[i].item_id for i in chosen],
                                       "stratified_by": "group and label" if several_labels else "group"})
    return Sampled([prompts[i] for i in chosen], info)
