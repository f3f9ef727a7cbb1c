"""KL-regularised fine-tuning: NLL(y) + lambda * KL(pi_theta || pi_ref) over response tokens.

The KL is exact over the vocabulary at every response position (not a sampled estimate),
token-mean over the step, with the base model (adapter disabled) as pi_ref. At the first step
the adapter is the identity, so KL = 0 and the loss equals SFT's.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from objlab.objectives.base import (
    register,
    Batch,
    ForwardOutput,
    LossOutput,
    Objective,
    Params,
    step_token_mean,
    token_nll,
)


class KLParams(Params):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    lam: float = Field(default=0.001, alias="lambda", ge=0, description="Weight of the KL penalty.")


@register
class KLRegularized(Objective):
    name = "kl"
    description = "KL-regularised SFT: NLL plus lambda * per-token KL(policy || base model) on responses."
    Params = KLParams
    reference = "distribution"

    def loss(self, batch: Batch, policy: ForwardOutput, reference: ForwardOutput | None) -> LossOutput:
        total, _ = token_nll(batch, policy, "sft")
        nll = step_token_mean(total, batch, "sft")
        kl = step_token_mean(policy.head.kl(policy.hidden, reference.hidden).sum(), batch, "sft")
        loss = nll + self.params.lam * kl
        return LossOutput(loss, {"nll": nll.item(), "kl": kl.item()})
