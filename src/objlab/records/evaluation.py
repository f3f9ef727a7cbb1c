"""The evaluation info: how one evaluation of the base model or an adapter was produced.

``objlab.evaluate`` builds an ``EvalInfo`` for every evaluated target; the result files
(``eval_manifest.json``), the results store and the report read it. This module is the only one
that writes or parses it, so a field added here is a field every reader sees.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from objlab.errors import DataError
from objlab.records.adapter import AdapterManifest

EVAL_INFO_FILE = "eval_manifest.json"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvaluatedAdapter(_Record):
    """What was evaluated: an adapter directory (with its manifest when objlab trained it), or
    the base model (``adapter`` None)."""

    adapter: str | None = None
    objective: str | None = None
    manifest: AdapterManifest | None = None


class VerdictCacheUse(_Record):
    hits: int
    misses: int


class LmEvalTask(_Record):
    """One lm-evaluation-harness task or group as it ran: its version, shots, documents and the
    full task config lm-eval resolved (prompt templates, filters, metrics, data files)."""

    name: str
    kind: Literal["task", "group"]
    version: str | None = None
    num_fewshot: int | None = None
    documents: int | None = None  # the split's documents before ``limit``
    evaluated: int | None = None  # documents evaluated
    subtasks: list[str] = []
    higher_is_better: dict[str, bool] = {}
    config: dict[str, Any] = {}


class LmEvalRun(_Record):
    """How the ``lm_eval`` axis of one evaluation was produced (``eval.lm_eval``)."""

    lm_eval_version: str
    requested: list[str]  # every task asked for, a preset expanded (its tasks first)
    preset: str | None = None  # the eval.lm_eval.preset the request was expanded from
    top_level: list[str]  # what the request resolved to at the top: tasks and groups, not their subtasks
    include_path: str | None = None
    num_fewshot: int | None = None
    limit: int | float | None = None
    batch_size: int | str
    apply_chat_template: bool = True
    fewshot_as_multiturn: bool = True
    prompt_transform: str | None = None  # how the adapter's objective changed the prompt (CFT: control token)
    vocab_limit: int | None = None  # log-probs and generation over the first N tokens (added control tokens excluded)
    bootstrap_iters: int
    seeds: dict[str, int | None] = {}
    tasks: list[LmEvalTask] = []
class SubsetInfo(_Record):
    """Which items of an evaluation file were used: all rows, or the seeded stratified sample
    that ``limit`` draws (its ids, so a reader can rebuild the exact subset)."""

    source: str
    rows: int  # rows in the file
    limit: int | None = None
    seed: int = 0
    stratified_by: str | None = None  # the category field, None for a plain seeded sample
    strata: dict[str, int] = {}  # items drawn per category
    item_ids: list[str] = []  # the ids drawn (empty when every row was used)


class AttackSource(_Record):
    """Where an attack's text comes from: objlab's own, StrongREJECT's (the user's copy), the user's."""

    name: str
    origin: Literal["objlab", "strongreject", "user"]
    source: str
    description: str


class ScorerRecord(_Record):
    """One scorer as it ran: registry name, versioned identity, whose instrument it is, its label
    in figures, and what it needed."""

    name: str
    identity: str
    origin: Literal["objlab", "published", "user"]
    label: str
    needs: str = "-"


class JailbreakDefinition(_Record):
    """How the jailbreak axis counts an attack success, and with which instruments.

    Every table that shows an ASR states these: the scorer, what counts as a success, any
    threshold, the rubric a judge used, and each attack's source. ``macro_over`` lists the
    attacks the macro ASR averages (the no-attack conditions and skipped attacks are not in it).
    """

    scorer: str
    success: str
    scorer_label: str = ""  # the scorer and whose instrument it is, in a few words (figures' axes); "" in older stores
    threshold: float | None = None
    rubric: str | None = None
    scorers: list[ScorerRecord] = []  # the primary scorer first, then those reported beside it; [] in older stores
    attacks: list[AttackSource] = []
    no_attack: list[str] = []
    macro_over: list[str] = []
    skipped: list[str] = []


class EvalInfo(_Record):
    """Backend, model, scorers, time per phase and counts of one evaluated target."""

    kind: Literal["evaluation"] = "evaluation"
    backend: str
    device: str
    dtype: str
    model: str
    model_fingerprint: str
    config_name: str
    config_fingerprint: str
    toy: bool = False
    adapter: EvaluatedAdapter = EvaluatedAdapter()
    judge: str | None = None  # the judge's identity (kind:model@endpoint), None without one
    translator: str | None = None
    seconds: dict[str, float] = {}
    evaluated_together: int = 1
    generations: int = 0
    generated_tokens: int = 0
    judge_errors: int = 0
    judge_calls: int = 0
    judge_retries: int = 0
    translator_calls: int = 0
    verdict_cache: VerdictCacheUse | None = None
    lm_eval: LmEvalRun | None = None
    jailbreak: JailbreakDefinition | None = None
    subsets: dict[str, SubsetInfo] = {}  # "capability:<task>", "jailbreak", "persona:<trait>"
    warnings: list[str] = []
    finished_at: str = ""
    environment: dict[str, Any] = {}

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))


class EvalInfoFile(EvalInfo):
    """``eval_manifest.json``: the info plus the names and sizes of the result files beside it."""

    metrics_file: str
    items_file: str
    metrics: int
    items: int


# Fields older versions wrote that are now derived elsewhere: the primary scorer lives in
# ``jailbreak.scorer`` only.
RETIRED_FIELDS = frozenset({"jailbreak_scorer"})


def parse_eval_info(data: Any, source: str) -> EvalInfo:
    """An ``EvalInfo`` from its JSON value (file fields, when present, and retired fields of
    older versions are dropped)."""
    if isinstance(data, dict):
        data = {key: value for key, value in data.items()
                if key not in RETIRED_FIELDS and (key not in EvalInfoFile.model_fields or key in EvalInfo.model_fields)}
    try:
        return EvalInfo.model_validate(data)
    except ValidationError as error:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in error.errors())
        raise DataError(f"{source}: not an objlab evaluation info ({fields})") from None


def eval_info_json(info: EvalInfo) -> dict[str, Any]:
    """The JSON value stored for ``info`` (in the results store and in result files)."""
    return info.model_dump(mode="json")


def write_eval_info(directory: Path, info: EvalInfo, *, metrics_file: str, items_file: str, metrics: int, items: int) -> str:
    """The text of ``eval_manifest.json`` for ``info`` (the caller writes it atomically)."""
    record = EvalInfoFile(**info.model_dump(), metrics_file=metrics_file, items_file=items_file, metrics=metrics, items=items)
    return json.dumps(record.model_dump(mode="json"), indent=1, sort_keys=True, allow_nan=False) + "\n"


def read_eval_info(directory: Path) -> EvalInfo:
    path = Path(directory, EVAL_INFO_FILE)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: not found (not an objlab evaluation directory)") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    return parse_eval_info(data, str(path))
