"""The sections of the experiment config that the packages below the config read (model,
LoRA, training, data, runner): plain pydantic schema that imports nothing of objlab's.

``lm/``, ``data/`` and ``train/`` import their settings from here, never from
``objlab.config`` itself, whose loader validates a whole config against what is registered
(objectives, task adapters, scorers) and so sits above those packages.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


MODEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ModelEntry(ModelSettings):
    """One model of a grid over several models (``models:``): its model section, the key its
    cells are named by (``<key>/sft/seed-0/budget-25000``; default: the last part of its name or
    path), and what may differ between models of one study: the training batch (a 9B model may
    need a smaller one, or micro-batches) and the evaluation's decoding batch."""

    key: str | None = None
    batch_size: int | None = Field(default=None, gt=0, description="train.batch_size for this model.")
    micro_batch_size: int | None = Field(default=None, gt=0, description="train.micro_batch_size for this model.")
    eval_batch_size: int | Literal["auto"] | None = Field(default=None, description="eval.generation.batch_size for this model.")

    @property
    def cell_key(self) -> str:
        if self.key:
            return self.key
        last = self.name_or_path.rstrip("/").rsplit("/", 1)[-1]
        return re.sub(r"[^A-Za-z0-9._-]+", "-", last).strip("-.") or "model"

    @model_validator(mode="after")
    def _key_is_a_name(self) -> ModelEntry:
        if self.key is not None and not MODEL_KEY.match(self.key):
            raise ValueError(f"key must be letters, digits, '.', '_' or '-' (it names cells and folders), got {self.key!r}")
        return self

    def settings(self) -> ModelSettings:
        """The model section alone (what loading and fingerprints read)."""
        return ModelSettings(**self.model_dump(include=set(ModelSettings.model_fields)))


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


class HoldoutSettings(Strict):
    """A fixed held-out share of a source that publishes one split only (SuperGPQA, most
    domain instruction sets): training keeps ``keep: train``, the capability evaluation of the
    same source ``keep: test``, and no row is in both.

    A row is held out when a hash of its ``key`` field (the whole row when unset) falls below
    ``fraction``: the split depends on the rows alone, never on a seed or on the order, so the
    training and evaluation sides of a config agree by construction.
    """

    fraction: float = Field(gt=0, lt=1, description="Share of the rows held out for evaluation.")
    keep: Literal["train", "test"]
    key: str | None = Field(default=None, description="The field that identifies a row (e.g. SuperGPQA's uuid); default: the whole row.")


RowValues = dict[str, str | list[str]]


class DataSettings(Strict):
    """The task data stream every objective consumes.

    ``source`` is a JSONL or CSV file path, or ``hf:NAME`` for a ``datasets`` dataset (with
    ``hf_config`` and ``split``). ``task`` picks the adapter that turns rows into examples.
    ``where`` keeps the rows whose fields have the given values (``{discipline: Engineering}``)
    and ``holdout`` keeps one side of a fixed held-out split, both before ``limit``.
    """

    task: str = "gsm8k"
    source: str
    hf_config: str | None = None
    split: str = "train"
    prompt_field: str | None = None
    response_field: str | None = None
    where: RowValues | None = Field(default=None, description="Keep rows whose field equals the value (or one of the values).")
    holdout: HoldoutSettings | None = None
    limit: int | None = Field(default=None, gt=0)
    rejected: RejectedSettings = Field(default_factory=RejectedSettings)


class RunnerSettings(Strict):
    """How the grid executes. ``snapshots`` trains once per (objective, seed) when the
    schedule allows it (see TrainSettings)."""

    snapshots: bool = True
    gpus_per_cell: float = Field(default=1.0, ge=0)
