"""Experiment config: the YAML schema (pydantic), loading, and validation with clear errors.

One file describes one study: the base model, the task data, the LoRA and optimizer settings
that every cell shares, the objectives with their hyperparameters, the token budgets and seeds
of the grid, and the evaluation. It is validated once, when it is loaded; every error names the
field (as a dotted path) and what was expected, so the core code can trust what it receives.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from objlab.config.evaluation import EvalSettings
from objlab.config.sections import (
    DataSettings,
    LoraSettings,
    ModelEntry,
    ModelSettings,
    RunnerSettings,
    Strict,
    TrainSettings,
)
from objlab.errors import ConfigError


class ExperimentConfig(Strict):
    """A whole study: a model (or several, ``models:``), one task stream, a grid of objectives x
    budgets x seeds."""

    name: str = "objlab-study"
    model: ModelSettings | None = None
    models: list[ModelEntry] | None = Field(default=None, description="Several models, one grid each, one store (instead of model).")
    data: DataSettings
    lora: LoraSettings = Field(default_factory=LoraSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    objectives: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"sft": {}})
    budgets: list[int] = Field(default_factory=lambda: [25_000])
    seeds: list[int] = Field(default_factory=lambda: [0])
    eval: EvalSettings = Field(default_factory=EvalSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    toy: bool = Field(default=False, description="Marks runs on a toy model (the report says so).")

    @model_validator(mode="after")
    def _one_model_or_several(self) -> ExperimentConfig:
        if (self.model is None) == (self.models is None):
            raise ValueError("model: name one model (model:) or several (models:), not both" if self.model is not None
                             else "model: required (or models:, a list of models)")
        if self.models is not None:
            if not self.models:
                raise ValueError("models: at least one model is needed")
            keys = [entry.cell_key for entry in self.models]
            twice = sorted({key for key in keys if keys.count(key) > 1})
            if twice:
                raise ValueError(f"models: two models have the key {', '.join(twice)} (set key: on one of them)")
        return self

    @property
    def several_models(self) -> bool:
        return self.models is not None

    def per_model(self) -> list[tuple[str | None, ExperimentConfig]]:
        """(model key, the config of that model's grid): ``[(None, self)]`` for one model; for
        ``models:``, each model's own config, with its training and decoding batch overrides."""
        if self.models is None:
            return [(None, self)]
        configs = []
        for entry in self.models:
            train = self.train.model_copy(update={
                **({"batch_size": entry.batch_size} if entry.batch_size else {}),
                **({"micro_batch_size": entry.micro_batch_size} if entry.micro_batch_size else {}),
            })
            generation = self.eval.generation.model_copy(update={"batch_size": entry.eval_batch_size} if entry.eval_batch_size else {})
            evaluation = self.eval.model_copy(update={"generation": generation})
            configs.append((entry.cell_key, self.model_copy(update={"model": entry.settings(), "models": None, "train": train, "eval": evaluation})))
        return configs

    def for_model(self, key: str | None) -> ExperimentConfig:
        """The config of one model's grid (``key`` None: the only model)."""
        for found, config in self.per_model():
            if found == key or (key is None and len(self.per_model()) == 1):
                return config
        keys = ", ".join(str(found) for found, _ in self.per_model())
        raise ConfigError(f"--model: this config has no model {key!r} (its models: {keys})")

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

    @model_validator(mode="after")
    def _scorers_known(self) -> ExperimentConfig:
        """The jailbreak axis's scorers are registered, decide attack success and have what they
        need (a judge, a phrase file): refused when the config is loaded, not hours into a grid."""
        from objlab.scoring.specs import check_jailbreak, check_overrefusal, check_toxicity

        try:
            check_jailbreak(self.eval)
            check_overrefusal(self.eval)
            check_toxicity(self.eval)
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return self

    def objective_params(self, name: str) -> dict[str, Any]:
        """The configured hyperparameters of one objective (defaults when not configured)."""
        return dict(self.objectives.get(name, {}))

    def fingerprint(self) -> str:
        """A stable hash of the whole config.

        Fields added to the schema later (``LATER_FIELDS``) are left out while unset (None or
        empty), so a config that does not use them keeps the fingerprint it had before they
        existed."""
        return _hash(without_unset_later_fields(self.model_dump(mode="json")))

    def training_fingerprint(self, objective: str) -> str:
        """A hash of everything that determines one objective's training trajectory: model,
        data, LoRA, optimizer and the objective's own parameters -- not the grid axes or the
        evaluation, so extending a grid never invalidates a half-finished training run."""
        dumped = without_unset_later_fields(self.model_dump(mode="json", include={"model", "data", "lora", "train"}))
        return _hash({**dumped, "objective": objective, "params": self.objective_params(objective)})


# Fields added after configs were first stored, as paths ("*": every item of a list). Left out
# of the fingerprints while unset (None or empty), so an older config keeps its fingerprints and
# is no change against a stored config that lacks them.
LATER_FIELDS = (
    ("models",),
    ("eval", "lm_eval"),
    ("eval", "lm_eval", "preset"),
    ("eval", "overrefusal"),
    ("eval", "toxicity"),
    ("eval", "jailbreak", "scorers"),
    ("eval", "jailbreak", "scorer_options"),
    ("eval", "capability", "*", "where"),
    ("eval", "capability", "*", "holdout"),
    ("eval", "capability", "*", "fields"),
    ("data", "where"),
    ("data", "holdout"),
)
UNSET = (None, {}, [])


def _drop_unset(value: Any, path: tuple[str, ...]) -> None:
    if not path or value is None:
        return
    head, rest = path[0], path[1:]
    if head == "*":
        for item in value if isinstance(value, list) else []:
            _drop_unset(item, rest)
    elif isinstance(value, dict) and head in value:
        if not rest:
            if value[head] in UNSET:
                del value[head]
        else:
            _drop_unset(value[head], rest)


def without_unset_later_fields(dumped: dict) -> dict:
    """``dumped`` (a config's JSON value, changed in place) without the later fields it leaves unset."""
    for path in LATER_FIELDS:
        _drop_unset(dumped, path)
    return dumped


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
        named = re.match(r"([\w.]+): (.*)", message, re.DOTALL)
        if where == "(top level)" and named:  # a cross-field check names its own field
            where, message = named.groups()
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
    model = config.model and config.model.model_copy(update={"name_or_path": _resolve(config.model.name_or_path, base_dir)})
    models = config.models and [entry.model_copy(update={"name_or_path": _resolve(entry.name_or_path, base_dir)}) for entry in config.models]
    evaluation = config.eval.resolve_paths(lambda value: _resolve(value, base_dir))
    return config.model_copy(update={"data": data, "model": model, "models": models, "eval": evaluation})
