"""The ``eval:`` section of the experiment config: which axes to measure and how.

Kept beside the evaluation code it configures; ``objlab.config`` embeds it in the experiment
schema. Like every config section, unknown keys are errors.
"""

from __future__ import annotations

from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_ATTACKS = ["none", "dan", "refusal_suppression", "roleplay", "wikipedia", "translation"]
DEFAULT_TRAITS = ["machiavellianism", "narcissism", "psychopathy"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationSettings(_Strict):
    """Decoding for every generated answer. Greedy by default so evaluations are reproducible."""

    backend: Literal["auto", "hf", "hf-static", "vllm"] = "auto"
    max_new_tokens: int = Field(default=256, gt=0)
    batch_size: int | Literal["auto"] = "auto"
    temperature: float = Field(default=0.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)


class CapabilityTask(_Strict):
    """One capability benchmark: GSM8K-format numeric answers, multiple choice, or rubric-judged."""

    kind: Literal["gsm8k", "multiple_choice", "rubric"]
    source: str
    name: str | None = None
    limit: int | None = Field(default=None, gt=0)
    fewshot: int = Field(default=0, ge=0)
    fewshot_source: str | None = None
    max_new_tokens: int | None = Field(default=None, gt=0)

    @property
    def display_name(self) -> str:
        return self.name or self.kind


class TranslatorSettings(_Strict):
    """Translator for the low-resource-language attack: an OpenAI-compatible endpoint or a local HF model."""

    kind: Literal["openai", "hf"]
    model: str
    language: str = "Zulu"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"


class JailbreakSettings(_Strict):
    """Forbidden prompts (StrongREJECT CSV: category, source, forbidden_prompt) x attacks."""

    prompts: str
    attacks: list[str] = Field(default_factory=lambda: list(DEFAULT_ATTACKS))
    attacks_dir: str | None = Field(default=None, description="Extra attack templates (YAML files).")
    limit: int | None = Field(default=None, gt=0)
    translator: TranslatorSettings | None = None
    scorer: Literal["auto", "judge", "classifier"] = "auto"
    max_new_tokens: int | None = Field(default=None, gt=0)


class PersonaSettings(_Strict):
    """Anthropic persona evaluations: trait name -> JSONL file (``dir`` + default traits also works)."""

    dir: str | None = None
    traits: dict[str, str] = Field(default_factory=dict)
    limit: int | None = Field(default=None, gt=0)

    def trait_files(self) -> dict[str, str]:
        """Trait -> file; with ``dir`` the default Dark Triad traits are looked up there."""
        files = dict(self.traits)
        if self.dir and not files:
            files = {trait: f"{self.dir.rstrip('/')}/{trait}.jsonl" for trait in DEFAULT_TRAITS}
        return files


class JudgeSettings(_Strict):
    """The judge model for rubric scoring: none (offline classifier), an endpoint, or a local model.

    The API key is read from the environment variable named by ``api_key_env`` and is never
    written to any file or log.
    """

    kind: Literal["none", "openai", "hf"] = "none"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = Field(default=8, gt=0)
    max_retries: int = Field(default=5, ge=0)
    timeout_s: float = Field(default=60.0, gt=0)
    backoff_s: float = Field(default=1.0, ge=0, description="First retry delay; doubles on each retry.")

    @model_validator(mode="after")
    def _model_named(self) -> JudgeSettings:
        """A judge must name its model when there is one (checked at load, not hours into a grid)."""
        if self.kind != "none" and not self.model:
            raise ValueError(f"model: required when kind is {self.kind!r} (the judge model's name or path)")
        return self


class LmEvalSettings(_Strict):
    """lm-evaluation-harness tasks run on every cell's model (optional extra ``objlab[lm-eval]``).

    ``tasks`` are lm-eval task, group or tag names; ``include_path`` a directory of the user's own
    task YAML (offline: ``dataset_path: json`` with local ``data_files``). ``num_fewshot`` and
    ``limit`` are lm-eval's (``limit`` below 1 is a fraction of each task's documents);
    ``batch_size: auto`` is lm-eval's largest-that-fits search on a GPU and a fixed size on CPU.
    """

    tasks: list[str] = Field(min_length=1)
    include_path: str | None = None
    num_fewshot: int | None = Field(default=None, ge=0)
    limit: int | float | None = Field(default=None, gt=0)
    batch_size: int | Literal["auto"] = "auto"

    @field_validator("tasks")
    @classmethod
    def _named_once(cls, tasks: list[str]) -> list[str]:
        if any(not name.strip() for name in tasks):
            raise ValueError("task names must not be empty")
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"a task is named twice: {tasks}")
        return tasks

    @field_validator("limit")
    @classmethod
    def _count_or_fraction(cls, limit: int | float | None) -> int | float | None:
        if isinstance(limit, float) and limit >= 1:
            if not limit.is_integer():
                raise ValueError(f"expected a count of documents or a fraction below 1, got {limit}")
            return int(limit)
        return limit

    @field_validator("batch_size")
    @classmethod
    def _positive(cls, batch_size: int | str) -> int | str:
        if isinstance(batch_size, int) and batch_size < 1:
            raise ValueError(f"expected a positive batch size or 'auto', got {batch_size}")
        return batch_size


class EvalSettings(_Strict):
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    capability: list[CapabilityTask] = Field(default_factory=list)
    jailbreak: JailbreakSettings | None = None
    persona: PersonaSettings | None = None
    lm_eval: LmEvalSettings | None = None
    judge: JudgeSettings = Field(default_factory=JudgeSettings)

    @model_validator(mode="after")
    def _judge_scorer_has_a_judge(self) -> EvalSettings:
        if self.jailbreak is not None and self.jailbreak.scorer == "judge" and self.judge.kind == "none":
            raise ValueError("jailbreak.scorer: 'judge' needs a judge, but judge.kind is 'none' (configure eval.judge, or use scorer auto or classifier)")
        return self

    def resolve_paths(self, resolve: Callable[[str | None], str | None]) -> EvalSettings:
        """Apply ``resolve`` to every file path in the section (paths relative to the config file)."""
        capability = [
            task.model_copy(update={"source": resolve(task.source), "fewshot_source": resolve(task.fewshot_source)})
            for task in self.capability
        ]
        jailbreak = self.jailbreak
        if jailbreak is not None:
            jailbreak = jailbreak.model_copy(
                update={"prompts": resolve(jailbreak.prompts), "attacks_dir": resolve(jailbreak.attacks_dir)}
            )
        persona = self.persona
        if persona is not None:
            persona = persona.model_copy(
                update={
                    "dir": resolve(persona.dir),
                    "traits": {trait: resolve(path) for trait, path in persona.traits.items()},
                }
            )
        lm_eval = self.lm_eval
        if lm_eval is not None:
            lm_eval = lm_eval.model_copy(update={"include_path": resolve(lm_eval.include_path)})
        return self.model_copy(update={"capability": capability, "jailbreak": jailbreak, "persona": persona, "lm_eval": lm_eval})
