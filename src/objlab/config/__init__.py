"""The experiment config: schema (pydantic), loading and validation with named errors.

``experiment`` holds the study-level schema and loading; ``evaluation`` the ``eval:`` section.
Everything a caller needs is importable from ``objlab.config``.
"""

from objlab.config.evaluation import (
    CapabilityTask,
    EvalSettings,
    GenerationSettings,
    JailbreakSettings,
    JudgeSettings,
    PersonaSettings,
    TranslatorSettings,
)
from objlab.config.experiment import (
    DEFAULT_LORA_TARGETS,
    DataSettings,
    ExperimentConfig,
    LoraSettings,
    ModelSettings,
    RejectedSettings,
    RunnerSettings,
    Strict,
    TrainSettings,
    canonical_json,
    format_validation_error,
    load_config,
    parse_config,
    resolve_paths,
)

__all__ = [
    "DEFAULT_LORA_TARGETS",
    "CapabilityTask",
    "DataSettings",
    "EvalSettings",
    "ExperimentConfig",
    "GenerationSettings",
    "JailbreakSettings",
    "JudgeSettings",
    "LoraSettings",
    "ModelSettings",
    "PersonaSettings",
    "RejectedSettings",
    "RunnerSettings",
    "Strict",
    "TrainSettings",
    "TranslatorSettings",
    "canonical_json",
    "format_validation_error",
    "load_config",
    "parse_config",
    "resolve_paths",
]
