"""Odds Ratio Preference Optimization (Hong et al. 2024), reference-free.

loss = NLL(y+) - lambda * log sigmoid(log odds(y+) - log odds(y-)), where odds(y) = P / (1 - P)
with P the length-normalised (token-mean) probability of the response, as in the paper and in
TRL's ORPOTrainer (whose ``beta`` is this ``lambda``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field

from objlab.objectives.base import (
    register,
    Batch,
    ForwardOutput,
    LossOutput,
    Objective,
    Params,
    step_token_mean,
)
from objlab.objectives.dpo import preference_sequences


class ORPOParams(Params):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    lam: float = Field(default=0.05, alias="lambda", gt=0, description="Weight of the odds-ratio term.")


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, numerically stable on both sides of -log 2."""
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


@register
class ORPO(Objective):
    name = "orpo"
    description = "Odds Ratio Preference Optimization: NLL on chosen plus a log-odds-ratio penalty, no reference."
    Params = ORPOParams
    roles = ("chosen", "rejected")
    needs_preference = True

    def sequences(self, item, preference):
        return preference_sequences(item, preference)

    def loss(self, batch: Batch, policy: ForwardOutput, reference: ForwardOutput | None) -> LossOutput:
        chosen, rejected = batch.rows["chosen"], batch.rows["rejected"]
        mean_logps = policy.row_mean()
        chosen_logps, rejected_logps = mean_logps[chosen], mean_logps[rejected]
        log_odds = (chosen_logps - rejected_logps) - (log1mexp(chosen_logps) - log1mexp(rejected_logps))
        ratio = F.logsigmoid(log_odds)
        nll = step_token_mean(-policy.row_sum()[chosen].sum(), batch, "chosen")
        odds_term = ratio.sum() / batch.step_items
        loss = nll - self.params.lam * odds_term
        n = batch.step_items
        return LossOutput(
            loss,
            {"nll": nll.item(), "log_odds_ratio": log_odds.sum().item() / n, "or_term": odds_term.item()},
        )
