"""Supervised fine-tuning: token-mean negative log-likelihood of the reference response."""

from __future__ import annotations

from objlab.objectives.base import (
    register,
    Batch,
    ForwardOutput,
    LossOutput,
    Objective,
    step_token_mean,
    token_nll,
)


@register
class SFT(Objective):
    name = "sft"
    description = "Supervised fine-tuning: token-mean NLL of the reference response given the prompt."

    def loss(self, batch: Batch, policy: ForwardOutput, reference: ForwardOutput | None) -> LossOutput:
        total, _ = token_nll(batch, policy, "sft")
        loss = step_token_mean(total, batch, "sft")
        return LossOutput(loss, {"nll": loss.item()})
