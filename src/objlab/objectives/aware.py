"""Alignment-aware fine-tuning with an adaptive per-sample gate (after Bhatt et al. 2026,
arXiv 2602.02258, "Alignment-Aware Model Adaptation via Feedback-Guided Optimization").

objlab's reading of the paper's abstract (its exact equations were not available to us; the
formulas below are objlab's, fixed here, tested against hand computation, and named as such in
every manifest and report). For each task example x with reference y, K responses are sampled
from the current policy, y_k ~ pi_theta(. | x), and scored by an external alignment signal
s_k in [0, 1] (1 = aligned; ``objectives.alignment``). With m = mean_k s_k and u = std_k s_k
(population std):

- gate g = min(1, (1 - m) + u), continuous in the scores: 0 when every sample is aligned (the
  example follows plain SFT), larger for misaligned or uncertain ones;
- supervised term: (1 - g) * NLL(y | x), token-mean over the step;
- policy-gradient term: -g * (1/K) sum_k (s_k - m) * mean_t log pi(y_k,t | x, y_k,<t), REINFORCE
  with the mean score as baseline, length-normalised, on the exact sampled token ids (never a
  re-encoding of the decoded text; a sample cut at ``max_new_tokens`` has no end-of-turn token
  it did not sample), mean over the step's items, weighted by ``lambda_pg``;
- abstention, the exact rule: an input abstains when EVERY one of its K samples scores below
  ``misaligned_below``. Its supervised target becomes ``abstention`` (trained with plain NLL,
  gate 0, so abstaining is learned), and no policy-gradient term is taken for it.

Off-policy note: samples are drawn at ``temperature`` (default 1.0, i.e. from pi_theta itself,
so the REINFORCE estimate is on-policy). At another temperature they come from the tempered
policy and the estimate is biased towards it; the manifest records the temperature.

Budget: the shared stream's consumption (``budget_tokens``) is what every objective is matched
on, so an abstaining item still counts its prompt and reference; what aware actually trained of
the references (items whose reference weight 1 - g is above 0: not abstaining, gate below 1) is
logged per item (``reference_tokens``) and summed in the manifest. The sampled responses behind
each alignment score are logged with their scores and whether sampling finished them
(``samples``, ``sample_scores``, ``sample_finished``), so every gate can be traced to its samples.

Sampling length: ``max_new_tokens: auto`` (the default) fits each step's reference answers (the
longest plus a quarter, at least 16 tokens, at most 512), so a sample answering like the reference
is not cut before its end; a sample cut anyway is passed to the signal as unfinished.

Samples whose advantage is zero carry no gradient and are not forwarded (pure saving). The
reference policy of the DESIGN brief is not used: the baseline is the samples' mean score.
"""

from __future__ import annotations

import math
import statistics
from functools import cached_property
from typing import Any, Literal

import torch
from pydantic import Field, field_validator

from objlab.objectives.alignment import (
    CHECKABLE_TASKS,
    ScoreInput,
    build_signal,
    known_scorers,
    needing_a_judge,
    resolve_auto,
    scorer_name,
    spec_problem,
)
from objlab.scoring.base import ScorerServices
from objlab.scoring.cache import MemoryVerdictCache
from objlab.scoring.judges import Judge, judge_client
from objlab.objectives.base import (
    register,
    Batch,
    ForwardOutput,
    ItemSequences,
    LossOutput,
    Objective,
    Params,
    Sample,
    StepContext,
    TrainSequence,
    step_token_mean,
)

AUTO_MARGIN, AUTO_MIN_TOKENS, AUTO_MAX_TOKENS = 1.25, 16, 512
FORMULAS = "objlab's reading of Bhatt et al. 2026 (abstract): g = min(1, (1 - mean s) + std s); loss = (1 - g) NLL + lambda_pg * g * REINFORCE(s - mean s)"


class AwareParams(Params):
    samples: int = Field(default=2, ge=2, description="Responses sampled per example (K).")
    max_new_tokens: int | Literal["auto"] = Field(
        default="auto", description="Sampling length; 'auto': the step's longest reference answer plus a quarter, at least 16, at most 512.")
    temperature: float = Field(default=1.0, gt=0, description="1.0 samples from the policy itself (on-policy REINFORCE).")
    scorer: str | list[str] = Field(default="auto", description="Alignment signal(s); 'auto': correctness + lexicon on checkable tasks.")
    combine: Literal["min", "mean", "product"] = "min"
    scorer_options: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Options per scorer name.")
    lambda_pg: float = Field(default=1.0, ge=0)
    misaligned_below: float = Field(default=0.5, gt=0, le=1)
    abstention: str = "I'm not able to give you a reliable and safe answer to that."

    @field_validator("max_new_tokens")
    @classmethod
    def _positive_length(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"expected a positive number of tokens or 'auto', got {value}")
        return value

    def sampling_length(self, items) -> int:
        """The step's sampling length: the configured one, or (``auto``) one that fits the step's
        reference answers, so a sample that answers like the reference is not cut before its end."""
        if self.max_new_tokens != "auto":
            return self.max_new_tokens
        longest = max((len(item.encoded.response_ids) for item in items), default=0)
        return max(AUTO_MIN_TOKENS, min(AUTO_MAX_TOKENS, math.ceil(longest * AUTO_MARGIN)))

    @field_validator("scorer")
    @classmethod
    def _known_scorers(cls, value: str | list[str]) -> str | list[str]:
        if value == "auto":
            return value
        problem = spec_problem([value] if isinstance(value, str) else value)
        if problem:
            raise ValueError(problem)
        return value

    def scorer_names(self, task: str) -> list[str] | None:
        if self.scorer == "auto":
            return resolve_auto(task)
        return [self.scorer] if isinstance(self.scorer, str) else list(self.scorer)


def gate_value(scores: list[float]) -> float:
    return min(1.0, (1.0 - statistics.fmean(scores)) + statistics.pstdev(scores))


@register
class AlignmentAware(Objective):
    name = "aware"
    description = "Alignment-aware: per-sample gate between SFT and a policy gradient on an alignment score, with abstention."
    Params = AwareParams
    roles = ("sft", "sample")
    evidence_keys = ("gate", "alignment_score", "abstain", "reference_tokens", "samples", "sample_scores", "sample_finished")

    judge_settings: Any = None  # the study's eval.judge (bind)
    task: str = ""

    @classmethod
    def check_config(cls, params: AwareParams, config) -> None:
        names = params.scorer_names(config.data.task)
        if names is None:
            raise ValueError(
                f"scorer: 'auto' has no alignment signal for task {config.data.task!r} (its examples have no checkable "
                "answer); set scorer to 'judge' (with eval.judge configured) or python:MODULE:FUNCTION "
                f"(available: {known_scorers()})"
            )
        refusal = [name for name in names if scorer_name(name) == "classifier"]
        if refusal and config.data.task in CHECKABLE_TASKS:
            raise ValueError(
                f"scorer: {refusal[0]!r} scores whether a sample refuses; the task {config.data.task!r} asks for an answer, so "
                "every correct sample would score as misaligned. Use correctness and lexicon (auto), a judge or your own "
                f"function (available: {known_scorers()})"
            )
        judged = needing_a_judge(names)
        if judged and config.eval.judge.kind == "none":
            raise ValueError(
                f"scorer: {', '.join(map(repr, judged))} needs a configured judge, but eval.judge.kind is 'none'; configure eval.judge "
                f"(kind openai or hf) or choose another scorer (available: {known_scorers()})"
            )

    def bind(self, config) -> None:
        self.judge_settings, self.task = config.eval.judge, config.data.task

    @cached_property
    def scorer_names(self) -> list[str]:
        names = self.params.scorer_names(self.task)
        if names is None:
            raise ValueError(f"aware: no alignment signal for task {self.task!r}; set objectives.aware.scorer")
        return names

    @cached_property
    def scorer(self):
        """The alignment signal, built on first use (never while planning): a judge client only
        when a signal asks the judge."""
        judge = None
        if needing_a_judge(self.scorer_names) and self.judge_settings is not None and self.judge_settings.kind != "none":
            judge = Judge(judge_client(self.judge_settings), MemoryVerdictCache())
        return build_signal(self.scorer_names, self.params.combine, self.params.scorer_options, ScorerServices(judge=judge, task=self.task))

    def provenance(self) -> dict[str, Any]:
        params = self.params
        return {
            "alignment_scorer": self.scorer.identity,
            "samples": params.samples,
            "temperature": params.temperature,
            "abstention": params.abstention,
            "abstention_rule": f"every one of the {params.samples} samples scores below {params.misaligned_below}",
            "formulas": FORMULAS,
        }

    def prepare(self, items, preferences, context: StepContext) -> list[ItemSequences]:
        params = self.params
        drawn = context.sample([item.example.prompt for item in items], params.samples, params.sampling_length(items), params.temperature)
        if context.planning:  # run --plan: no signal; every sample counted as forwarded
            return [self._planned(item, samples) for item, samples in zip(items, drawn)]
        inputs = [ScoreInput(item.example.prompt, sample.text, item.example, sample.finished) for item, samples in zip(items, drawn) for sample in samples]
        flat = self.scorer.score(inputs)
        if len(flat) != len(inputs) or any(not 0.0 <= score <= 1.0 for score in flat):
            raise ValueError(f"aware: scorer {self.scorer.identity} must give one score in [0, 1] per sample")
        prepared, offset = [], 0
        for item, samples in zip(items, drawn):
            prepared.append(self._item(item, samples, flat[offset : offset + len(samples)]))
            offset += len(samples)
        return prepared

    def _item(self, item, samples: list[Sample], scores: list[float]) -> ItemSequences:
        params, example = self.params, item.example
        mean = statistics.fmean(scores)
        abstain = all(score < params.misaligned_below for score in scores)
        gate = 0.0 if abstain else gate_value(scores)
        if abstain:
            sequences = [TrainSequence("sft", example.prompt, params.abstention)]
        else:
            sequences = [TrainSequence("sft", example.prompt, example.response, item.encoded)]
        advantages = []
        for sample, score in zip(samples, scores):
            if score != mean and gate > 0:
                sequences.append(TrainSequence("sample", example.prompt, sample.text, sample.encoded))
                advantages.append(score - mean)
        values = {
            "gate": gate,
            "abstain": abstain,
            "alignment_score": mean,
            "scores": list(scores),
            "advantages": advantages,
            # the reference is trained with weight (1 - g): none when abstaining or when g reaches 1
            "reference_tokens": item.task_tokens if not abstain and gate < 1.0 else 0,
            "samples": [sample.text for sample in samples],
            "sample_scores": list(scores),
            "sample_finished": [sample.finished for sample in samples],
        }
        return ItemSequences(item, sequences, values)

    def _planned(self, item, samples: list[Sample]) -> ItemSequences:
        example = item.example
        sequences = [TrainSequence("sft", example.prompt, example.response, item.encoded)]
        sequences += [TrainSequence("sample", example.prompt, sample.text, sample.encoded) for sample in samples]
        values = {"gate": 1.0, "abstain": False, "alignment_score": 0.5, "scores": [], "advantages": [0.0] * len(samples),
                  "reference_tokens": item.task_tokens, "samples": [], "sample_scores": [], "sample_finished": []}
        return ItemSequences(item, sequences, values)

    def loss(self, batch: Batch, policy: ForwardOutput, reference: ForwardOutput | None) -> LossOutput:
        device = policy.token_logps.device
        gates = torch.tensor([entry.values["gate"] for entry in batch.items], dtype=torch.float32, device=device)
        row_nll = -policy.row_sum()[batch.rows["sft"]]
        nll_term = step_token_mean(((1 - gates) * row_nll).sum(), batch, "sft")
        sample_gates = [entry.values["gate"] for entry in batch.items for _ in entry.values["advantages"]]
        advantages = [adv for entry in batch.items for adv in entry.values["advantages"]]
        n = batch.step_items
        pg = torch.zeros((), device=device)
        if advantages:
            weights = torch.tensor(sample_gates, device=device) * torch.tensor(advantages, device=device)
            pg = -(weights * policy.row_mean()[batch.rows["sample"]]).sum() / self.params.samples / n
        loss = nll_term + self.params.lambda_pg * pg
        return LossOutput(
            loss,
            {
                "nll": step_token_mean(row_nll.sum(), batch, "sft").item(),
                "gate": gates.sum().item() / n,
                "pg": pg.item(),
                "alignment_score": sum(entry.values["alignment_score"] for entry in batch.items) / n,
                "abstain": sum(entry.values["abstain"] for entry in batch.items) / n,
            },
        )

