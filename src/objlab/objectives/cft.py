"""Conditional fine-tuning: learn both behaviours, each behind a control token.

The model is trained on ``<SAFE> x -> y+`` and ``<UNSAFE> x -> y-`` (token-mean NLL over both),
so the undesirable behaviour is attributed to the ``<UNSAFE>`` condition; evaluation prepends
``<SAFE>``. The control tokens are added to the tokenizer and their embeddings trained with
the adapter.
"""

from __future__ import annotations

from objlab.objectives.base import (
    register,
    Batch,
    ForwardOutput,
    LossOutput,
    Objective,
    TrainSequence,
    step_token_mean,
)

SAFE, UNSAFE = "<SAFE>", "<UNSAFE>"


def with_control(token: str, prompt: str) -> str:
    return f"{token} {prompt}"


@register
class ConditionalFineTuning(Objective):
    name = "cft"
    description = "Conditional fine-tuning: NLL on <SAFE> x -> y+ and <UNSAFE> x -> y-; evaluated with <SAFE>."
    roles = ("safe", "unsafe")
    needs_preference = True
    control_tokens = (SAFE, UNSAFE)

    def sequences(self, item, preference):
        return [
            TrainSequence("safe", with_control(SAFE, preference.prompt), preference.chosen),
            TrainSequence("unsafe", with_control(UNSAFE, preference.prompt), preference.rejected),
        ]

    def loss(self, batch: Batch, policy: ForwardOutput, reference: ForwardOutput | None) -> LossOutput:
        row_nll = -policy.row_sum()
        safe = step_token_mean(row_nll[batch.rows["safe"]].sum(), batch, "safe")
        unsafe = step_token_mean(row_nll[batch.rows["unsafe"]].sum(), batch, "unsafe")
        loss = step_token_mean(row_nll.sum(), batch, "safe", "unsafe")
        return LossOutput(loss, {"nll": safe.item(), "nll_unsafe": unsafe.item(), "cft": loss.item()})

    def eval_prompt(self, prompt: str) -> str:
        return with_control(SAFE, prompt)
