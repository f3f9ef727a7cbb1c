"""The objective API: what an objective declares, and the records it receives and returns.

An objective is small and pure. It declares the sequences it wants forwarded for each task
example (``sequences``: SFT wants the pair itself; DPO the chosen and the rejected response;
CFT both behind control tokens), whether it needs the reference policy (the base model with
the adapter disabled) and in what form, and a ``loss`` computed from per-token log-probs. It
never touches the optimizer, the data order or the budget: the single training loop owns those.

Normalisation rule: ``loss`` and every logged component are divided by totals of the whole
optimizer step (``Batch.step_items``, ``Batch.step_response_tokens``), never of the micro-batch,
so micro-batch results add up exactly to the full-batch value (gradient accumulation is then
the same computation, not an approximation).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict

from objlab.data.records import EncodedPair, PreferenceExample, StreamItem
from objlab.lm.packing import PackedRows
from objlab.registry import Registry


class Params(BaseModel):
    """Base for an objective's hyperparameters (validated from the config's ``objectives:``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class TrainSequence:
    """One (prompt, response) to forward. ``encoded`` is set when the stream already tokenised it."""

    role: str
    prompt: str
    response: str
    encoded: EncodedPair | None = None


@dataclass
class ItemSequences:
    """The sequences one task example contributes to a step, plus per-item values an
    objective computed while preparing them (e.g. ``aware``'s alignment scores)."""

    item: StreamItem
    sequences: list[TrainSequence]
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    """A padded (micro-)batch: every sequence of every item, one row each, role-major (all of
    the first role, then all of the next), so chosen and rejected go through one forward pass.
    When ``packed`` is set, the forward runs the same sequences with shared prefixes computed
    once (``lm.packing``, chosen by ``train.batching``); the rows here stay the sequences
    objectives index by role, and the log-probs they receive are the same."""

    input_ids: torch.Tensor  # [rows, length]
    attention_mask: torch.Tensor  # [rows, length]
    response_mask: torch.Tensor  # [rows, length] True where the token is a trained response token
    rows: dict[str, torch.Tensor]  # role -> row indices, in item order
    items: list[ItemSequences]
    step_items: int
    step_response_tokens: dict[str, int]
    packed: PackedRows | None = None

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def tokens(self) -> int:
        """Tokens the forward pass processes (a shared prefix counts once)."""
        return self.packed.tokens if self.packed is not None else int(self.attention_mask.sum())


@dataclass
class ForwardOutput:
    """Per-token log-probs at response positions (flattened over the batch).

    ``token_logps[i]`` is log pi(token | prefix) for response position i, which belongs to row
    ``token_rows[i]``. ``hidden`` holds the final hidden states at those positions when the
    objective needs full distributions (KL); ``head`` maps them to logits.
    """

    token_logps: torch.Tensor  # [M] float32
    token_rows: torch.Tensor  # [M] long
    n_rows: int
    hidden: torch.Tensor | None = None
    head: Any = None

    def row_sum(self, values: torch.Tensor | None = None) -> torch.Tensor:
        """Per-row sum of ``values`` (default: the token log-probs) -> [rows]."""
        values = self.token_logps if values is None else values
        out = torch.zeros(self.n_rows, dtype=values.dtype, device=values.device)
        return out.index_add(0, self.token_rows, values)

    def row_count(self) -> torch.Tensor:
        ones = torch.ones_like(self.token_logps)
        return torch.zeros(self.n_rows, dtype=ones.dtype, device=ones.device).index_add(0, self.token_rows, ones)

    def row_mean(self) -> torch.Tensor:
        return self.row_sum() / self.row_count().clamp(min=1)

    def role_mask(self, rows: torch.Tensor) -> torch.Tensor:
        """Boolean mask over tokens that belong to the given rows."""
        wanted = torch.zeros(self.n_rows, dtype=torch.bool, device=self.token_rows.device)
        wanted[rows] = True
        return wanted[self.token_rows]


@dataclass
class LossOutput:
    """The loss to backpropagate and its named components (floats, for the training log)."""

    loss: torch.Tensor
    components: dict[str, float]


@dataclass(frozen=True)
class Sample:
    """A response sampled from the policy: its text, and the exact token ids that were drawn.

    ``token_ids`` are the sampled ids as the model emitted them (the end-of-turn token included
    when it was sampled; a sample cut at ``max_new_tokens`` has none), after the prompt's
    ``prompt_ids``. A policy-gradient term must score these ids, never a re-encoding of the text.
    """

    text: str
    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    finished: bool

    @property
    def encoded(self) -> EncodedPair:
        return EncodedPair(prompt_ids=self.prompt_ids, response_ids=self.token_ids)


class StepContext:
    """What an objective may ask of the loop while preparing a step (only ``aware`` does):
    sampling responses from the current policy. Implemented by the training loop.

    ``planning`` is true when the step is only being counted (``objlab run --plan``): samples
    are empty placeholders of the longest length, and objectives must not call external
    signals (a judge) but assume the most expensive case."""

    planning: bool = False

    def sample(
        self, prompts: list[str], n: int, max_new_tokens: int, temperature: float
    ) -> list[list[Sample]]:  # pragma: no cover - interface
        """``n`` samples per prompt from the current policy (adapter on, dropout off)."""
        raise NotImplementedError

    def add_compute_tokens(self, count: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class Objective(ABC):
    """Base class for a fine-tuning objective. Subclasses register with ``@register``."""

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[Params]] = Params
    roles: ClassVar[tuple[str, ...]] = ("sft",)
    reference: ClassVar[Literal[None, "logps", "distribution"]] = None
    needs_preference: ClassVar[bool] = False
    control_tokens: ClassVar[tuple[str, ...]] = ()
    # Per-item values (from ``ItemSequences.values``) the loop logs as evidence that the objective
    # did what its paper says (aware's gate, abstentions, alignment scores).
    evidence_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: Params, seed: int = 0) -> None:
        self.params = params
        self.seed = seed

    def bind(self, config: Any) -> None:
        """Called by the loop with the ``ExperimentConfig`` before training: objectives that need
        more of the study than their own parameters (aware's judge settings, the task) read it
        here. Default: nothing."""

    def provenance(self) -> dict[str, Any]:
        """What the objective drew on beyond its parameters, for the adapter manifest (IP's
        instruction set, aware's scorer). Default: nothing."""
        return {}

    @classmethod
    def check_config(cls, params: Params, config: Any) -> None:
        """Cross-checks of the objective's parameters against the rest of the config (raise
        ``ValueError`` naming the field), run at config validation. Default: none."""

    def sequences(self, item: StreamItem, preference: PreferenceExample | None) -> list[TrainSequence]:
        """The sequences to forward for one example (default: the task pair itself)."""
        example = item.example
        return [TrainSequence("sft", example.prompt, example.response, item.encoded)]

    def prepare(
        self, items: list[StreamItem], preferences: list[PreferenceExample | None], context: StepContext
    ) -> list[ItemSequences]:
        """All items of one optimizer step. Override when preparing needs the whole step."""
        return [ItemSequences(item, self.sequences(item, pref)) for item, pref in zip(items, preferences)]

    @abstractmethod
    def loss(self, batch: Batch, policy: ForwardOutput, reference: ForwardOutput | None) -> LossOutput:
        """The step's loss from policy (and reference) log-probs; see the normalisation rule."""

    def eval_prompt(self, prompt: str) -> str:
        """How evaluation presents a prompt to a model trained with this objective."""
        return prompt


def token_nll(batch: Batch, policy: ForwardOutput, role: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of token NLL over the role's rows, per-row NLL sums) -- the SFT building block."""
    rows = batch.rows[role]
    per_row = -policy.row_sum()[rows]
    return per_row.sum(), per_row


def step_token_mean(total: torch.Tensor, batch: Batch, *roles: str) -> torch.Tensor:
    """``total`` divided by the step's response tokens of ``roles`` (token-mean over the step)."""
    count = sum(batch.step_response_tokens[role] for role in roles)
    return total / max(count, 1)


OBJECTIVES: Registry[type[Objective]] = Registry("objective", base=Objective)


def register(cls: type[Objective]) -> type[Objective]:
    """Register an objective class under its ``name`` (``@register`` on the class)."""
    if not getattr(cls, "name", None) or not getattr(cls, "description", None):
        raise TypeError(f"{cls.__name__} needs a `name` and a one-line `description`")
    return OBJECTIVES.register(cls.name, cls, replace=True)
