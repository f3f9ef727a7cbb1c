"""Alignment-aware fine-tuning with an adaptive per-sample gate (after Bhatt et al. 2026,
arXiv 2602.02258, "Alignment-Aware Model Adaptation via Feedback-Guided Optimization").

For each task example x with reference y, objlab samples K responses y_k ~ pi_theta(. | x) and
scores them with a pluggable external alignment scorer, s_k in [0, 1] (1 = aligned). With
m = mean_k s_k and u = std_k s_k (population std):

- gate g = min(1, (1 - m) + u): 0 for well-aligned examples (they follow plain SFT), larger for
  misaligned or uncertain ones;
- supervised term: (1 - g) * NLL(y | x), token-mean over the step;
- policy-gradient regulariser: -g * (1/K) sum_k (s_k - m) * mean_t log pi(y_k,t | x, y_k,<t),
  REINFORCE with the mean score as baseline and length-normalised log-probs, mean over items,
  weighted by ``lambda_pg``;
- abstention: when every sample scores below ``misaligned_below`` the input counts as fully
  misaligned; its target becomes the conservative ``abstention`` response, trained with plain
  NLL (gate 0), so abstention is learned into the model.

The paper's abstract defines these mechanisms but its exact equations were not available to
us; the formulas above are objlab's reading, fixed here and tested against hand computation.
Samples whose advantage is zero carry no gradient and are not forwarded (pure saving).
"""

from __future__ import annotations

import statistics
from functools import cached_property
from typing import Any

import torch
from pydantic import Field

from objlab.objectives.alignment import build_scorer
from objlab.objectives.base import (
    Batch,
    ForwardOutput,
    ItemSequences,
    LossOutput,
    Objective,
    Params,
    StepContext,
    TrainSequence,
    step_token_mean,
)
from objlab.objectives.registry import register


class AwareParams(Params):
    samples: int = Field(default=2, ge=2, description="Responses sampled per example (K).")
    max_new_tokens: int = Field(default=64, gt=0)
    temperature: float = Field(default=1.0, gt=0)
    scorer: str = "lexicon"
    scorer_options: dict[str, Any] = Field(default_factory=dict)
    lambda_pg: float = Field(default=1.0, ge=0)
    misaligned_below: float = Field(default=0.5, gt=0, le=1)
    abstention: str = "I can't help with that request."


def gate_value(scores: list[float]) -> float:
    mean = statistics.fmean(scores)
    return min(1.0, (1.0 - mean) + statistics.pstdev(scores))


@register
class AlignmentAware(Objective):
    name = "aware"
    description = "Alignment-aware: per-sample gate between SFT and a policy gradient on an alignment score, with abstention."
    Params = AwareParams
    roles = ("sft", "sample")

    @cached_property
    def scorer(self):
        return build_scorer(self.params.scorer, dict(self.params.scorer_options))

    def prepare(self, items, preferences, context: StepContext) -> list[ItemSequences]:
        params = self.params
        prompts = [item.example.prompt for item in items]
        samples = context.sample(prompts, params.samples, params.max_new_tokens, params.temperature)
        flat_prompts = [prompt for prompt, drawn in zip(prompts, samples) for _ in drawn]
        flat_scores = self.scorer.score(flat_prompts, [text for drawn in samples for text in drawn])
        prepared, offset = [], 0
        for item, drawn in zip(items, samples):
            scores = flat_scores[offset : offset + len(drawn)]
            offset += len(drawn)
            mean = statistics.fmean(scores)
            abstain = all(score < params.misaligned_below for score in scores)
            gate = 0.0 if abstain else gate_value(scores)
            example = item.example
            if abstain:
                sequences = [TrainSequence("sft", example.prompt, params.abstention)]
            else:
                sequences = [TrainSequence("sft", example.prompt, example.response, item.encoded)]
            advantages = []
            for text, score in zip(drawn, scores):
                if score != mean and gate > 0:
                    sequences.append(TrainSequence("sample", example.prompt, text))
                    advantages.append(score - mean)
            values = {"gate": gate, "abstain": abstain, "mean_score": mean, "advantages": advantages}
            prepared.append(ItemSequences(item, sequences, values))
        return prepared

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
                "alignment_score": sum(entry.values["mean_score"] for entry in batch.items) / n,
                "abstain": sum(entry.values["abstain"] for entry in batch.items) / n,
            },
        )
