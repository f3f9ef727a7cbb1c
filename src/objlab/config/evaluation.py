"""The ``eval:`` section of the experiment config: which axes to measure and how.

Kept beside the evaluation code it configures; ``objlab.config`` embeds it in the experiment
schema. Like every config section, unknown keys are errors.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from objlab.config.lm_eval_presets import expand
from objlab.config.python_ref import load_callable
from objlab.config.sections import HoldoutSettings, RowValues

# The no-attack condition (reported on its own) and the reference study's five jailbreaks
# (a named set: StrongREJECT's templates when eval.jailbreak.strongreject is given, objlab's own otherwise).
DEFAULT_ATTACKS = ["none", "seed5"]
DEFAULT_TRAITS = ["machiavellianism", "narcissism", "psychopathy"]
HF_SPLIT_DEFAULT = "train"
SCORER_CHOICES = ("auto", "judge")  # resolved by the evaluation against eval.judge; any other name is a registered scorer
PYTHON_SCORER = "python:"
RUBRIC_SCORERS = ("auto", "judge", "strongreject_rubric", "objlab_rubric")  # the scorers success_threshold applies to
SCORER_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# What open-instruct's ToxiGen evaluation puts before each prompt for a chat model, so the
# model continues the statements instead of commenting on them.
TOXICITY_INSTRUCTION = "Complete the following: "


def check_scorer_name(name: str) -> str:
    """A scorer name as written: a registered scorer's name (checked against the registry when
    the evaluation's instruments are checked) or ``python:module:function`` (imported now, so
    a typo fails at load)."""
    if name.startswith(PYTHON_SCORER):
        load_callable(name[len(PYTHON_SCORER):])
        return name
    if not SCORER_NAME.match(name):
        raise ValueError(f"{name!r} is not a scorer name; expected a registered scorer (see `objlab scorers`) or 'python:module:function'")
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _HFSource(_Strict):
    """A section whose rows may come from a ``datasets`` dataset (``hf:NAME``): then ``hf_config``
    and ``split`` pick the configuration and split (e.g. GSM8K's ``main`` config, ``test`` split)."""

    hf_config: str | None = None
    split: str | None = Field(default=None, description=f"Dataset split for hf: sources (default {HF_SPLIT_DEFAULT}).")

    def _source_path(self) -> str:
        raise NotImplementedError

    @model_validator(mode="after")
    def _hf_options_need_hf_source(self):
        if (self.hf_config is not None or self.split is not None) and not self._source_path().startswith("hf:"):
            raise ValueError(f"hf_config and split apply to hf: sources only (the source is {self._source_path()!r})")
        return self

    @property
    def hf_split(self) -> str:
        return self.split or HF_SPLIT_DEFAULT


class GenerationSettings(_Strict):
    """Decoding for every generated answer. Greedy by default so evaluations are reproducible."""

    backend: Literal["auto", "hf", "hf-static", "vllm"] = "auto"
    max_new_tokens: int = Field(default=256, gt=0)
    batch_size: int | Literal["auto"] = "auto"
    temperature: float = Field(default=0.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)


class CapabilityTask(_HFSource):
    """One capability benchmark: GSM8K-format numeric answers, multiple choice, or rubric-judged.

    ``limit`` draws a seeded sample (``eval.subset_seed``), stratified by the rows' ``category``
    field where they have one; few-shot examples are the first rows of ``fewshot_source``.
    ``where`` and ``holdout`` choose rows as ``data.where`` and ``data.holdout`` do (``keep:
    test`` evaluates the side a ``keep: train`` training config never sees); ``fields`` maps
    the names the kind reads to the source's columns (``{question: user, reference: assistant}``).
    """

    kind: Literal["gsm8k", "multiple_choice", "rubric"]
    source: str
    name: str | None = None
    where: RowValues | None = Field(default=None, description="Keep rows whose field equals the value (or one of the values).")
    holdout: HoldoutSettings | None = None
    fields: dict[str, str] | None = Field(default=None, description="name the kind reads -> the source's column.")
    limit: int | None = Field(default=None, gt=0)
    fewshot: int = Field(default=0, ge=0)
    fewshot_source: str | None = None
    max_new_tokens: int | None = Field(default=None, gt=0)

    @property
    def display_name(self) -> str:
        return self.name or self.kind

    def _source_path(self) -> str:
        return self.source


class TranslatorSettings(_Strict):
    """Translator for the low-resource-language attacks: an OpenAI-compatible endpoint, a local HF
    model, or a Python translator.

    ``kind: python`` with ``function: "module:callable"``: the callable (a class or a factory,
    called with no arguments) returns an object with ``to_language(text, language) -> str`` and
    ``to_english(text, language) -> str`` (``objlab.scoring.python_translator``). The
    name is imported when the config is loaded, so a wrong one is a config error at once.
    """

    kind: Literal["openai", "hf", "python"]
    model: str | None = Field(default=None, description="The chat model (openai, hf).")
    function: str | None = Field(default=None, description="'module:callable' returning the translator (python).")
    language: str = "Zulu"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"

    @model_validator(mode="after")
    def _fields_of_kind(self) -> TranslatorSettings:
        if self.kind != "python":
            if not self.model:
                raise ValueError(f"kind {self.kind!r} needs 'model': the chat model that translates")
            if self.function is not None:
                raise ValueError(f"'function' applies to kind 'python' only (the kind is {self.kind!r})")
            return self
        if not self.function:
            raise ValueError("kind 'python' needs 'function': 'module:callable' returning an object with to_language and to_english")
        if self.model is not None or self.base_url is not None:
            raise ValueError("'model' and 'base_url' apply to the openai and hf kinds; kind 'python' takes 'function'")
        try:
            load_callable(self.function)
        except ValueError as error:
            raise ValueError(f"function: {error}") from None
        return self


class _ScoredPrompts(_HFSource):
    """A prompt file whose answers a configured scorer reads (``scorer``, ``scorer_options`` as
    for the jailbreak axis); ``limit`` draws a seeded stratified sample."""

    prompts: str
    limit: int | None = Field(default=None, gt=0)
    scorer: str
    scorer_options: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Options per scorer name, e.g. {llama_guard: {model: PATH}}.")
    max_new_tokens: int | None = Field(default=None, gt=0)

    def _source_path(self) -> str:
        return self.prompts

    @field_validator("scorer")
    @classmethod
    def _scorer_name(cls, scorer: str) -> str:
        return check_scorer_name(scorer)


class JailbreakSettings(_ScoredPrompts):
    """Forbidden prompts (StrongREJECT CSV: category, source, forbidden_prompt) x attacks.

    ``attacks`` names attacks and named sets (``seed5``); ``strongreject`` points at the user's
    copy of StrongREJECT's ``wrapping_jailbreaks.json`` (or a directory holding it, directly or
    in ``jailbreak_files/``), which adds every ``strongreject/<key>`` attack. ``scorer`` picks
    the primary scorer, which decides attack success: ``auto`` (the judge when one is
    configured, else the classifier), ``judge`` (the configured judge with StrongREJECT's rubric
    or objlab's), any registered scorer (``objlab scorers``: ``classifier``,
    ``string_matching`` with the phrase file in ``string_matching``, the published judges) or
    ``python:module:function``, the user's own harmfulness check: ``function(prompt, response)
    -> bool``, true when the answer carries out the forbidden request (imported when the config
    is loaded). ``scorers``: the scorers reported beside it (default: the classifier, and
    string matching when its file is given); ``scorer_options``: options per scorer name.
    ``success_threshold`` (judge only): an item succeeds when its rubric score is at least
    this, instead of "the judge says not refused".
    """

    attacks: list[str] = Field(default_factory=lambda: list(DEFAULT_ATTACKS))
    attacks_dir: str | None = Field(default=None, description="Extra attack templates (YAML files).")
    strongreject: str | None = Field(default=None, description="StrongREJECT's wrapping_jailbreaks.json, or a directory holding it.")
    string_matching: str | None = Field(default=None, description="StrongREJECT's string_matching.txt (refusal phrases).")
    translator: TranslatorSettings | None = None
    scorer: str = Field(default="auto", description="auto | judge | a registered scorer (objlab scorers) | python:module:function")
    scorers: list[str] | None = Field(default=None, description="Scorers reported beside the primary one (default: classifier, and string_matching when its file is given).")
    success_threshold: float | None = Field(default=None, gt=0, le=1)

    @field_validator("scorer")
    @classmethod
    def _scorer_name(cls, scorer: str) -> str:
        return scorer if scorer in SCORER_CHOICES else check_scorer_name(scorer)

    @field_validator("scorers")
    @classmethod
    def _scorer_names(cls, scorers: list[str] | None) -> list[str] | None:
        if scorers is None:
            return None
        if len(set(scorers)) != len(scorers):
            raise ValueError(f"a scorer is named twice: {scorers}")
        return [check_scorer_name(name) for name in scorers]

    @model_validator(mode="after")
    def _threshold_for_a_rubric(self) -> JailbreakSettings:
        if self.success_threshold is not None and self.scorer not in RUBRIC_SCORERS:
            raise ValueError(f"success_threshold applies to a judge's rubric score; the scorer {self.scorer!r} is not a rubric judge")
        return self


class OverRefusalSettings(_ScoredPrompts):
    """Over-refusal: safe prompts that sound unsafe (and unsafe contrasts), and whether the model
    refuses them. ``prompts``: XSTest's CSV (``prompt``, ``type``, ``label`` safe/unsafe) or any
    file with a label column (``prompt_field``, ``label_field``, ``type_field``; ``safe_label``
    names the safe rows, every other label is an unsafe contrast). ``limit`` draws a seeded
    sample stratified by type. ``scorer``: any scorer that says whether an answer refused
    (``classifier`` by default; ``string_matching``, a rubric judge, ``wildguard``);
    ``scorer_options`` as for the jailbreak axis.
    """

    scorer: str = Field(default="classifier", description="A scorer that says whether an answer refused (objlab scorers).")
    prompt_field: str = "prompt"
    label_field: str = "label"
    type_field: str | None = Field(default="type", description="The column of the prompt's type (strata and per-type figures); null for none.")
    safe_label: str = "safe"


class ToxicitySettings(_ScoredPrompts):
    """Toxicity of the model's own generations on ToxiGen's prompts. ``prompts``: ToxiGen's
    ``prompts/`` folder (its text files ``hate_<group>_1k.txt`` / ``neutral_<group>_1k.txt``,
    one prompt a line), one such file, or a CSV/JSONL (or ``hf:``) source with the fields
    ``prompt_field``, ``group_field`` and ``label_field`` (null: no label). ``limit`` draws a
    seeded sample stratified by target group. ``instruction`` goes before each prompt ("" for
    the prompt alone). ``scorer``: any scorer that says whether a text is toxic (a success
    verdict): ToxiGen's RoBERTa classifier (``toxigen_roberta``) by default; ``scorer_options``
    as for the jailbreak axis, e.g. ``{toxigen_roberta: {model: PATH}}``.
    """

    scorer: str = Field(default="toxigen_roberta", description="A scorer that says whether a generation is toxic (objlab scorers).")
    instruction: str = Field(default=TOXICITY_INSTRUCTION, description="Put before each prompt (open-instruct's wording); '' for none.")
    prompt_field: str = "prompt"
    group_field: str = "group"
    label_field: str | None = Field(default="label", description="The column of the prompt's label (hate / neutral); null for none.")


class PersonaSettings(_Strict):
    """Anthropic persona evaluations: trait name -> JSONL file (``dir`` + default traits also works).

    ``limit`` draws a seeded sample stratified by the matching answer (Yes / No), so the sample
    keeps the file's balance between statements a trait endorses and ones it rejects.
    """

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
    written to any file or log. ``rubric``: StrongREJECT's ``judge_templates.json`` (the user's
    copy); its ``strongreject_rubric`` prompts are then used verbatim for the jailbreak axis
    (metric ``strongreject_score``); without it objlab's own rubric text is used
    (``objlab_rubric_score``).
    """

    kind: Literal["none", "openai", "hf"] = "none"
    rubric: str | None = Field(default=None, description="StrongREJECT's judge_templates.json (the package's rubric, verbatim).")
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

    ``tasks`` are lm-eval task, group or tag names; ``preset`` a named list of them
    (``normative``: the reference studies' normative companions, ``config.lm_eval_presets``),
    expanded into ``tasks`` when the config is read (the preset's first, then the user's).
    ``include_path`` a directory of the user's own task YAML (offline: ``dataset_path: json``
    with local ``data_files``). ``num_fewshot`` and ``limit`` are lm-eval's (``limit`` below 1
    is a fraction of each task's documents); ``batch_size: auto`` is lm-eval's
    largest-that-fits search on a GPU and a fixed size on CPU.
    """

    preset: str | None = Field(default=None, description="A named task list (normative), expanded into tasks.")
    tasks: list[str] = Field(min_length=1)
    include_path: str | None = None
    num_fewshot: int | None = Field(default=None, ge=0)
    limit: int | float | None = Field(default=None, gt=0)
    batch_size: int | Literal["auto"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _expand_preset(cls, data: Any) -> Any:
        """``preset`` becomes its tasks, before the user's (expanding twice changes nothing)."""
        if not isinstance(data, dict) or data.get("preset") is None:
            return data
        try:
            tasks = expand(data["preset"], list(data.get("tasks") or []))
        except (ValueError, TypeError) as error:
            raise ValueError(f"preset: {error}") from None
        return {**data, "tasks": tasks}

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
    overrefusal: OverRefusalSettings | None = None
    toxicity: ToxicitySettings | None = None
    persona: PersonaSettings | None = None
    lm_eval: LmEvalSettings | None = None
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    subset_seed: int = Field(default=0, description="Seed of the stratified samples that `limit` draws.")

    @model_validator(mode="after")
    def _threshold_needs_judge(self) -> EvalSettings:
        jailbreak = self.jailbreak
        if jailbreak is not None and jailbreak.success_threshold is not None and self.judge.kind == "none":
            raise ValueError("jailbreak.success_threshold applies to a judge's rubric score, and judge.kind is 'none'")
        return self

    def resolve_paths(self, resolve: Callable[[str | None], str | None]) -> EvalSettings:
        """Apply ``resolve`` to every file path in the section (paths relative to the config file)."""
        capability = [
            task.model_copy(update={"source": resolve(task.source), "fewshot_source": resolve(task.fewshot_source)})
            for task in self.capability
        ]
        jailbreak = self.jailbreak
        if jailbreak is not None:
            jailbreak = jailbreak.model_copy(update={
                field: resolve(getattr(jailbreak, field)) for field in ("prompts", "attacks_dir", "strongreject", "string_matching")
            })
        overrefusal = self.overrefusal
        if overrefusal is not None:
            overrefusal = overrefusal.model_copy(update={"prompts": resolve(overrefusal.prompts)})
        toxicity = self.toxicity
        if toxicity is not None:
            toxicity = toxicity.model_copy(update={"prompts": resolve(toxicity.prompts)})
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
        judge = self.judge.model_copy(update={"rubric": resolve(self.judge.rubric)})
        return self.model_copy(update={"capability": capability, "jailbreak": jailbreak, "overrefusal": overrefusal, "toxicity": toxicity,
                                       "persona": persona, "lm_eval": lm_eval, "judge": judge})
