"""Direct Preference Optimization (Rafailov et al. 2023) against the base model as reference.

loss = -log sigmoid(beta * [(log pi(y+) - log ref(y+)) - (log pi(y-) - log ref(y-))]), with
sequence log-probs summed over response tokens (as in TRL's ``sigmoid`` loss). At the first
step the adapter is the identity (LoRA's B = 0), so policy = reference and the loss is log 2.
"""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import Field

from objlab.data.records import PreferenceExample, StreamItem
from objlab.objectives.base import (
    register,
    Batch,
    ForwardOutput,
    LossOutput,
    Objective,
    Params,
    TrainSequence,
)


class DPOParams(Params):
    beta: float = Field(default=0.1, gt=0, description="Inverse temperature of the implicit reward.")


def preference_sequences(item: StreamItem, preference: PreferenceExample) -> list[TrainSequence]:
    """Chosen = the task pair as the stream encoded it (task tokens); rejected = the extra."""
    return [
        TrainSequence("chosen", preference.prompt, preference.chosen, item.encoded),
        TrainSequence("rejected", preference.prompt, preference.rejected),
    ]


@register
class DPO(Objective):
    name = "dpo"
    description = "Direct Preference Optimization: logistic loss on the policy/reference log-ratio margin."
    Params = DPOParams
    roles = ("chosen", "rejected")
    reference = "logps"
    needs_preference = True

    def sequences(self, item, preference):
        return preference_sequences(item, preference)

    def loss(self, batch: Batch, policy: ForwardOutput, reference: ForwardOutput | None) -> LossOutput:
        beta = self.params.beta
        chosen, rejected = batch.rows["chosen"], batch.rows["rejected"]
        policy_logps, reference_logps = policy.row_sum(), reference.row_sum()
        chosen_ratio = policy_logps[chosen] - reference_logps[chosen]
        rejected_ratio = policy_logps[rejected] - reference_logps[rejected]
        margin = beta * (chosen_ratio - rejected_ratio)
        loss = -F.logsigmoid(margin).sum() / batch.step_items
        n = batch.step_items
        nll = -policy_logps[chosen].sum().item() / max(batch.step_response_tokens["chosen"], 1)
        return LossOutput(
            loss,
            {
                "dpo": loss.item(),
                "margin": margin.sum().item() / n,
                "accuracy": (margin > 0).float().sum().item() / n,
                "chosen_reward": beta * chosen_ratio.sum().item() / n,
                "rejected_reward": beta * rejected_ratio.sum().item() / n,
                "nll": nll,
            },
        )
