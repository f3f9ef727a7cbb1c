"""Experiment config: the YAML schema (pydantic), loading, and validation with clear errors.

One file describes one study: the base model, the task data, the LoRA and optimizer settings
that every cell shares, the objectives with their hyperparameters, the token budgets and seeds
of the grid, and the evaluation. It is validated once, when it is loaded; every error names the
field (as a dotted path) and what was expected, so the core code can trust what it receives.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from objlab.config.evaluation import EvalSettings
from objlab.errors import ConfigError

DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettings(Strict):
    """Which causal LM to fine-tune: a hub id or a local directory in Hugging Face format."""

    name_or_path: str
    revision: str | None = None
    trust_remote_code: bool = False
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    chat_template: str | None = Field(
        default=None,
        description="Jinja chat template (or a path to a .jinja file) for tokenizers without one.",
    )
    attn_implementation: str | None = None


class LoraSettings(Strict):
    """LoRA shape shared by every cell. Defaults are the study's (r=16, alpha=32, dropout=0.05)."""

    r: int = Field(default=16, gt=0)
    alpha: int = Field(default=32, gt=0)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: list(DEFAULT_LORA_TARGETS)
    )


class TrainSettings(Strict):
    """Optimizer, schedule and batching: identical for every objective in a grid.

    ``schedule: constant`` (linear warm-up, then constant) is the default because it makes the
    learning rate at any step independent of the budget: a run to the largest budget then
    passes through exactly the state of a separate run to every smaller budget, so one run
    per (objective, seed) yields every budget as a snapshot. ``linear`` and ``cosine`` decay to
    the end of each cell's own budget, so each cell must then be its own run.
    """

    learning_rate: float = Field(default=1e-4, gt=0)
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(default=10, ge=0)
    batch_size: int = Field(default=8, gt=0)
    micro_batch_size: int | None = Field(
        default=None, gt=0, description="Split each batch into micro-batches (gradient accumulation)."
    )
    max_grad_norm: float | None = Field(default=1.0, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    adam_beta1: float = Field(default=0.9, ge=0, lt=1)
    adam_beta2: float = Field(default=0.999, ge=0, lt=1)
    adam_eps: float = Field(default=1e-8, gt=0)
    max_length: int = Field(default=1024, gt=8)
    checkpoint_every: int = Field(default=50, gt=0, description="Optimizer steps between resume checkpoints.")
    gradient_checkpointing: bool = False
    logits_chunk_tokens: int = Field(default=2048, gt=0)


class RejectedSettings(Strict):
    """How preference objectives (DPO, ORPO, CFT) get a dispreferred response per example.

    ``unsafe`` (default) rejects an unsafe response, as the study does: from ``file`` (JSONL/CSV
    with a ``response`` field, or one per line in .txt; drawn per example by the seed) or from
    objlab's own generator. ``column`` reads it from the data; ``corrupt`` (a wrong final
    answer) is a capability-only control; ``trait`` opens the reference with a trait statement.
    """

    strategy: Literal["unsafe", "column", "corrupt", "trait"] = "unsafe"
    file: str | None = Field(default=None, description="Unsafe responses for the 'unsafe' strategy (default: objlab's generator).")
    column: str | None = None
    traits: list[str] | None = Field(
        default=None, description="Trait statements for the 'trait' strategy (default: objlab's list)."
    )

    @model_validator(mode="after")
    def _fields_fit_strategy(self) -> RejectedSettings:
        if self.strategy == "column" and not self.column:
            raise ValueError("strategy 'column' needs 'column': the name of the rejected-response field")
        if self.file is not None and self.strategy != "unsafe":
            raise ValueError(f"'file' is for strategy 'unsafe', not {self.strategy!r}")
        return self


class DataSettings(Strict):
    """The task data stream every objective consumes.

    ``source`` is a JSONL or CSV file path, or ``hf:NAME`` for a ``datasets`` dataset (with
    ``hf_config`` and ``split``). ``task`` picks the adapter that turns rows into examples.
    """

    task: str = "gsm8k"
    source: str
    hf_config: str | None = None
    split: str = "train"
    prompt_field: str | None = None
    response_field: str | None = None
    limit: int | None = Field(default=None, gt=0)
    rejected: RejectedSettings = Field(default_factory=RejectedSettings)


class RunnerSettings(Strict):
    """How the grid executes. ``snapshots`` trains once per (objective, seed) when the
    schedule allows it (see TrainSettings)."""

    snapshots: bool = True
    gpus_per_cell: float = Field(default=1.0, ge=0)


class ExperimentConfig(Strict):
    """A whole study: one model, one task stream, a grid of objectives x budgets x seeds."""

    name: str = "objlab-study"
    model: ModelSettings
    data: DataSettings
    lora: LoraSettings = Field(default_factory=LoraSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    objectives: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"sft": {}})
    budgets: list[int] = Field(default_factory=lambda: [25_000])
    seeds: list[int] = Field(default_factory=lambda: [0])
    eval: EvalSettings = Field(default_factory=EvalSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    toy: bool = Field(default=False, description="Marks runs on a toy model (the report says so).")

    @field_validator("budgets")
    @classmethod
    def _budgets_positive_sorted(cls, budgets: list[int]) -> list[int]:
        if not budgets:
            raise ValueError("at least one token budget is needed")
        if any(b <= 0 for b in budgets):
            raise ValueError(f"budgets must be positive token counts, got {budgets}")
        return sorted(set(budgets))

    @field_validator("seeds")
    @classmethod
    def _seeds_unique(cls, seeds: list[int]) -> list[int]:
        if not seeds:
            raise ValueError("at least one seed is needed")
        return sorted(set(seeds))

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives_list_or_map(cls, value: Any) -> Any:
        """Accept ``[sft, dpo]`` as well as ``{sft: {}, dpo: {beta: 0.1}}``."""
        if isinstance(value, list):
            out: dict[str, Any] = {}
            for entry in value:
                if isinstance(entry, str):
                    out[entry] = {}
                elif isinstance(entry, dict) and "name" in entry:
                    entry = dict(entry)
                    out[entry.pop("name")] = entry
                else:
                    raise ValueError(f"each objective is a name or a mapping with 'name', got {entry!r}")
            return out
        if isinstance(value, dict):
            return {name: (params or {}) for name, params in value.items()}
        return value

    @model_validator(mode="after")
    def _objectives_known(self) -> ExperimentConfig:
        from objlab.objectives import registry

        if not self.objectives:
            raise ValueError("objectives: at least one objective is needed")
        for name, params in self.objectives.items():
            registry.validate_params(name, params, self)
        return self

    def objective_params(self, name: str) -> dict[str, Any]:
        """The configured hyperparameters of one objective (defaults when not configured)."""
        return dict(self.objectives.get(name, {}))

    def fingerprint(self) -> str:
        """A stable hash of the whole config.

        Sections added to the schema later (``LATER_SECTIONS``) are left out while unset, so a
        config that does not use them keeps the fingerprint it had before they existed."""
        dumped = self.model_dump(mode="json")
        for section, key in LATER_SECTIONS:
            if dumped[section].get(key) is None:
                del dumped[section][key]
        return _hash(dumped)

    def training_fingerprint(self, objective: str) -> str:
        """A hash of everything that determines one objective's training trajectory: model,
        data, LoRA, optimizer and the objective's own parameters -- not the grid axes or the
        evaluation, so extending a grid never invalidates a half-finished training run."""
        dumped = self.model_dump(mode="json", include={"model", "data", "lora", "train"})
        return _hash({**dumped, "objective": objective, "params": self.objective_params(objective)})


LATER_SECTIONS = (("eval", "lm_eval"),)  # (section, key) added after configs were first stored


def _hash(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:16]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def format_validation_error(error: ValidationError, source: str) -> str:
    """Turn pydantic's error list into lines that name each field by its dotted path."""
    lines = [f"{source}: invalid config"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "required field is missing"
        elif item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; see `objlab init` for the schema)"
        got = item.get("input")
        quiet = item["type"] in ("missing", "extra_forbidden", "value_error") or isinstance(got, dict)
        got_text = "" if quiet else f" (got {got!r})"
        lines.append(f"  {where}: {message}{got_text}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "<config>", base_dir: Path | None = None) -> ExperimentConfig:
    """Validate a config mapping. Relative file paths in it are resolved against ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a YAML mapping, got {type(data).__name__}")
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None
    if base_dir is not None:
        config = resolve_paths(config, base_dir)
    return config


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment config YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {getattr(error, 'problem', error)}") from None
    return parse_config(data, source=str(path), base_dir=path.parent)


def _resolve(value: str | None, base_dir: Path) -> str | None:
    if value is None or value.startswith("hf:") or value.startswith("builtin:"):
        return value
    candidate = Path(value).expanduser()
    if candidate.is_absolute():
        return str(candidate)
    resolved = (base_dir / candidate).resolve()
    return str(resolved) if resolved.exists() else value


def resolve_paths(config: ExperimentConfig, base_dir: Path) -> ExperimentConfig:
    """Make relative data and model paths relative to the config file, not the working directory.

    A model id that does not exist as a local path is left alone (it is a hub id).
    """
    rejected = config.data.rejected.model_copy(update={"file": _resolve(config.data.rejected.file, base_dir)})
    data = config.data.model_copy(update={"source": _resolve(config.data.source, base_dir), "rejected": rejected})
    model = config.model.model_copy(update={"name_or_path": _resolve(config.model.name_or_path, base_dir)})
    evaluation = config.eval.resolve_paths(lambda value: _resolve(value, base_dir))
    return config.model_copy(update={"data": data, "model": model, "eval": evaluation})
