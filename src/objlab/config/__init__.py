"""The experiment config: schema (pydantic), loading and validation with named errors.

``sections`` holds the model, LoRA, training, data and runner sections, ``evaluation`` the
``eval:`` section, ``experiment`` the whole config, its loading and its validation against the
registries. Everything a caller needs is importable from ``objlab.config``; the packages that
the loader validates against (``data``, ``lm``, ``objectives``, ``scoring``) import
``config.sections`` and ``config.evaluation`` directly, so no import runs in a circle.
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
from objlab.config.sections import (
    DEFAULT_LORA_TARGETS,
    DataSettings,
    LoraSettings,
    ModelEntry,
    ModelSettings,
    RejectedSettings,
    RunnerSettings,
    Strict,
    TrainSettings,
)
from objlab.config.experiment import (
    ExperimentConfig,
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
    "ModelEntry",
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
